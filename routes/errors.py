"""Config errors: what an operator sees, and how validators hand several problems to the loader.

``Problems`` is internal plumbing: a ``ValueError`` raised inside a pydantic validator that
carries several (relative location, message) pairs, which the loader unpacks into separate
``ConfigError`` entries instead of one run-on message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem in a config file, located so an operator can go straight to it."""

    location: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.location or "<file>"
        if self.line is not None:
            where = f"line {self.line}: {where}"
        return f"{where}: {self.message}"


class ConfigInvalid(Exception):
    """Raised by ``load_config`` so a caller gets every error at once, not just the first."""

    def __init__(self, errors: Sequence[ConfigError], path: str = "") -> None:
        self.errors = tuple(errors)
        self.path = path
        head = f"{path}: " if path else ""
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{head}{len(self.errors)} config error(s)\n{lines}")


class Problems(ValueError):
    """Several located problems found by one validator (locations relative to the field)."""

    def __init__(self, items: Sequence[tuple[Loc, str]]) -> None:
        self.items = tuple(items)
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in self.items))


def format_loc(loc: Loc) -> str:
    """Render a location path as ``channels.webshop-nl.market`` or ``routes[2].to[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else str(part)
    return out
