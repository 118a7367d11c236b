"""Reading bol.com's offer export: the merchant's reference -> the offer id, by column name."""

from __future__ import annotations

from hub.delivery.bolcom_api import offers_by_reference


def test_references_are_read_by_column_name_and_blank_ones_left_out() -> None:
    export = (
        "\ufeffofferId,ean,conditionName,stockAmount,referenceCode\n"
        "o-1,8712345678906,NEW,5,DESK-1\n"
        'o-2,8712345678913,NEW,0,"LAMP, BRASS"\n'
        "o-3,8712345678920,NEW,1,\n"
    )
    assert offers_by_reference(export) == {"DESK-1": "o-1", "LAMP, BRASS": "o-2"}


def test_an_export_naming_the_column_reference_is_read_too() -> None:
    assert offers_by_reference("reference,offerId\nDESK-1,o-9\n") == {"DESK-1": "o-9"}
