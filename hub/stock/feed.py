"""Stock spreadsheets (CSV, XLSX) read into validated ``StockLevel`` messages, all or nothing.

Columns (header row, any case, any order): ``sku``, ``location`` (or ``--location`` for the
whole file), ``on_hand`` (or ``quantity``), optional ``version`` (left blank: the import gives
the row one more than the version the hub holds, see ``hub.stock.service``), optional
``committed``, and optionally ``incoming_quantity`` with ``expected_date`` for a purchase
receipt. Every row is checked and every bad one reported with its line number (the header is
line 1); a file with any bad row yields no levels at all.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub.intake import describe
from schemas.inventory import StockLevel

ALIASES = {"quantity": "on_hand", "qty": "on_hand", "stock": "on_hand", "warehouse": "location"}
KNOWN = {"sku", "location", "on_hand", "version", "committed", "incoming_quantity", "expected_date"}


@dataclass(frozen=True)
class FeedError:
    """One bad row (or the header), located by line number for the merchant to fix."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Feed:
    """A parsed file: its levels with their line numbers when valid, or its errors."""

    levels: tuple[tuple[int, StockLevel], ...]
    errors: tuple[FeedError, ...]
    digest: str = ""
    unversioned: frozenset[int] = frozenset()
    """Lines without a version of their own (they carry the default one)."""


def _rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for row in reader:
                yield reader.line_num, list(row)
    elif suffix in (".xlsx", ".xlsm"):
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            for number, row in enumerate(book.worksheets[0].iter_rows(values_only=True), 1):
                yield number, list(row)
        finally:
            book.close()
    else:
        raise ValueError(f"{path.name}: only .csv and .xlsx stock feeds are read")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _integer(value: Any, column: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{column}: {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    raise ValueError(f"{column}: {value!r} is not a whole number")


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"expected_date: {value!r} is not a date (YYYY-MM-DD)") from exc


def _level(cells: dict[str, Any], location: str | None, version: int) -> StockLevel:
    data: dict[str, Any] = {
        "sku": str(cells.get("sku") or "").strip(),
        "location": location or str(cells.get("location") or "").strip(),
        "on_hand": _integer(cells.get("on_hand"), "on_hand"),
        "version": version
        if _blank(cells.get("version"))
        else _integer(cells["version"], "version"),
    }
    if not _blank(cells.get("committed")):
        data["committed"] = _integer(cells["committed"], "committed")
    qty, due = cells.get("incoming_quantity"), cells.get("expected_date")
    if _blank(qty) != _blank(due):
        raise ValueError("incoming_quantity and expected_date go together")
    if not _blank(qty):
        data["incoming"] = [
            {"quantity": _integer(qty, "incoming_quantity"), "expected_date": _date(due)}
        ]
    return StockLevel.model_validate(data)


def read_feed(path: Path, *, location: str | None = None, version: int = 0) -> Feed:
    """Every row as a level, or every problem with its line; never a partial result. A row
    without a version gets ``version`` and is listed in ``unversioned``."""
    errors: list[FeedError] = []
    unversioned: set[int] = set()
    levels: list[tuple[int, StockLevel]] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        rows = _rows(path)
        header_line, header = next(rows, (1, []))
        columns = [ALIASES.get(k, k) for k in (str(h or "").strip().lower() for h in header)]
        missing = {"sku", "on_hand"} - set(columns) | (
            set() if location else {"location"} - set(columns)
        )
        unknown = [c for c in columns if c and c not in KNOWN]
        if missing or unknown:
            parts = [f"missing column(s) {', '.join(sorted(missing))}"] if missing else []
            parts += [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
            return Feed((), (FeedError(header_line, "; ".join(parts)),))
        for line, row in rows:
            if all(_blank(v) for v in row):
                continue
            cells = dict(zip(columns, row, strict=False))
            try:
                level = _level(cells, location, version)
            except ValidationError as exc:
                errors.append(FeedError(line, describe(exc)))
                continue
            except ValueError as exc:
                errors.append(FeedError(line, str(exc)))
                continue
            key = (level.sku, level.location)
            if key in seen:
                errors.append(FeedError(line, f"{key[0]} at {key[1]} already on line {seen[key]}"))
                continue
            seen[key] = line
            levels.append((line, level))
            if _blank(cells.get("version")):
                unversioned.add(line)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # unreadable, not a feed
        return Feed((), (FeedError(0, str(exc)),))
    if errors:
        return Feed((), tuple(errors))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    return Feed(tuple(levels), (), digest, frozenset(unversioned))
