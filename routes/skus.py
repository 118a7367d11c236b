"""A channel's own SKUs: renaming the SKU fields of a message between its names and the ERP's.

Marketplaces and shops often list a product under a SKU of their own (an EAN, a listing code).
A channel's ``sku_map`` (its SKU -> the ERP's) renames them on the way in, and the reverse on
the way out, so the hub, its ledger and its routes only ever see the ERP's SKUs. Every SKU
field of the canonical schemas is named ``sku`` (one) or ``skus`` (a list), at any depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def rename_skus(data: Any, names: Mapping[str, str]) -> Any:
    """``data`` with every ``sku`` / ``skus`` value renamed through ``names`` (others kept)."""
    if not names:
        return data
    if isinstance(data, dict):
        renamed: dict[str, Any] = {}
        for key, value in data.items():
            if key == "sku" and isinstance(value, str):
                renamed[key] = names.get(value, value)
            elif key == "skus" and isinstance(value, list | tuple):
                renamed[key] = [names.get(v, v) if isinstance(v, str) else v for v in value]
            else:
                renamed[key] = rename_skus(value, names)
        return renamed
    if isinstance(data, list | tuple):
        return [rename_skus(item, names) for item in data]
    return data
