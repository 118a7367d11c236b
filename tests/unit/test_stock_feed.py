"""Stock spreadsheets: every bad row reported with its line, a bad file yields nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from hub.cli import app
from hub.stock.feed import read_feed

FIXTURES = Path(__file__).parents[1] / "fixtures" / "stock"


def test_a_good_csv_becomes_levels_with_aliases_and_receipts() -> None:
    feed = read_feed(FIXTURES / "good.csv")
    assert feed.errors == ()
    assert [(line, lv.sku, lv.location, lv.on_hand, lv.version) for line, lv in feed.levels] == [
        (2, "DESK-1", "main", 12, 7),
        (3, "DESK-1", "store", 3, 7),
        (4, "CHAIR-1", "main", 0, 7),
    ]
    receipt = feed.levels[2][1].incoming[0]
    assert (receipt.quantity, receipt.expected_date) == (40, date(2030, 1, 15))
    assert len(feed.digest) == 24


def test_a_bad_csv_reports_every_bad_line_and_yields_no_levels() -> None:
    feed = read_feed(FIXTURES / "bad.csv")
    assert feed.levels == ()
    lines = {e.line: e.message for e in feed.errors}
    assert sorted(lines) == [3, 4, 5, 6, 7]
    assert "sku" in lines[3]
    assert "on_hand" in lines[4]
    assert "ten" in lines[5]
    assert "line 2" in lines[6]  # duplicate of DESK-1 at main
    assert "location" in lines[7]


def test_missing_columns_are_reported_on_the_header_line(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text("sku,colour\nA,red\n")
    [error] = read_feed(path).errors
    assert error.line == 1 and "on_hand" in error.message and "colour" in error.message


def test_location_option_covers_a_file_without_the_column(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text("sku,on_hand\nA,5\n\nB,6\n")
    feed = read_feed(path, location="store", version=3)
    assert [(lv.sku, lv.location, lv.version) for _, lv in feed.levels] == [
        ("A", "store", 3),
        ("B", "store", 3),
    ]
    assert feed.unversioned == {2, 4}  # given a version by the import (the hub's next one)


def test_xlsx_is_read_like_csv_with_row_numbers(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["sku", "location", "on_hand", "version", "incoming_quantity", "expected_date"])
    sheet.append(["A", "main", 5.0, 2, 10, date(2030, 2, 1)])
    sheet.append(["B", "main", 2.5, 2, None, None])
    sheet.append(["C", "main", 1, 2, 4, None])
    path = tmp_path / "feed.xlsx"
    book.save(path)
    feed = read_feed(path)
    assert {e.line for e in feed.errors} == {3, 4}
    good = tmp_path / "good.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["SKU", "Quantity", "Version"])
    book.active.append(["A", 5, 9])
    book.save(good)
    [(line, level)] = read_feed(good, location="main").levels
    assert (line, level.sku, level.on_hand, level.version) == (2, "A", 5, 9)


def test_other_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "feed.txt"
    path.write_text("sku,on_hand\n")
    assert "only .csv and .xlsx" in read_feed(path).errors[0].message
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    assert read_feed(broken).errors and read_feed(broken).levels == ()


def test_cli_rejects_a_bad_file_with_line_numbers_and_exit_code(monkeypatch) -> None:
    monkeypatch.setenv("HUB_BROKER_URL", "amqp://nobody:nothing@127.0.0.1:1/")  # never reached
    monkeypatch.setenv("HUB_CONFIG_PATH", str(FIXTURES / "hub.yaml"))
    result = CliRunner().invoke(app, ["stock", "import", str(FIXTURES / "bad.csv")])
    assert result.exit_code == 1
    for line in (3, 4, 5, 6, 7):
        assert f"line {line}:" in result.output
    assert "nothing was applied" in result.output
