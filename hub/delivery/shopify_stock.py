"""Shopify stock set compare-and-swap (GraphQL ``inventorySetQuantities``), so that a sale the
shop made since the hub's last figure is never put back on sale.

Shopify takes an order's units off ``available`` the moment it is placed, seconds before its
webhook brings the order to the hub. A figure the hub computed in between counts those units
as still free: set blindly, it would list them again. So each set names the quantity the hub
last set there (``compareQuantity``). When the shop's differs (COMPARE_QUANTITY_STALE), it has
moved on its own: the hub reads it and sets the lower of its own figure and the shop's, never
more than the shop has left. Where the channel coalesces stock figures, such a capped set
is answered 409 with Retry-After (``stock_settle_s``, default 10): the order, once in,
brings a newer figure that takes the held one's place; if none comes by then (a sale the
hub will not hear of, a manual edit, a slow webhook), the retry sets the hub's own figure
where the shop did not move, and a cap met again on the retry stands (the next figure
corrects it), so a busy SKU is never held twice in a row, and at most four are held at once
(``wire.Holds``). After a restart, or a lease taken back from another hub, the hub knows no
earlier figure and compares with what the shop shows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from hub.delivery.wire import Holds

SET_AVAILABLE = """
mutation ($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) { userErrors { code field message } }
}
"""
READ_AVAILABLE = """
query ($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    inventoryLevel(locationId: $location) { quantities(names: ["available"]) { quantity } }
  }
}
"""
STALE = "COMPARE_QUANTITY_STALE"
TRIES = 3

GraphQL = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | httpx.Response]]
"""Runs a query with its variables: the ``data`` document, or the response that says why not."""


class StockLevels:
    """Sets available quantities compare-and-swap, remembering what it last set where."""

    def __init__(self, settle_s: float | None = 10.0) -> None:
        self._told: dict[tuple[int, int], int] = {}  # (inventory item, location) -> quantity
        self._holds = Holds(settle_s)

    def forget(self) -> None:
        """Remember no figure: another hub may have set the shop's since (a lease taken)."""
        self._told.clear()
        self._holds.forget()

    async def set(
        self, graphql: GraphQL, item_id: int, location_id: int, wanted: int
    ) -> httpx.Response:
        """Set ``wanted`` units available, or fewer if the shop has sold some meanwhile."""
        key = (item_id, location_id)
        item = f"gid://shopify/InventoryItem/{item_id}"
        location = f"gid://shopify/Location/{location_id}"
        told = self._told.get(key)
        quantity = wanted
        for _ in range(TRIES):
            if told is None:
                shown = await _available(graphql, item, location)
                if isinstance(shown, httpx.Response):
                    return shown
                told = shown
            data = await graphql(SET_AVAILABLE, _input(item, location, quantity, told))
            if isinstance(data, httpx.Response):
                return data
            errors = (data.get("inventorySetQuantities") or {}).get("userErrors") or []
            if not errors:
                self._told[key] = quantity
                if quantity < wanted and (held := self._holds.held(key, quantity, wanted)):
                    return held
                if quantity == wanted:
                    self._holds.done(key)
                return httpx.Response(200, text=f"available set to {quantity}")
            if all(e.get("code") != STALE for e in errors):
                return _refused(errors)
            shown = await _available(graphql, item, location)
            if isinstance(shown, httpx.Response):
                return shown
            quantity = max(min(wanted, shown), 0)  # what the shop sold meanwhile stays sold
            told = shown
        self._told.pop(key, None)
        return httpx.Response(409, text="the shop's available quantity keeps changing")


def _input(item: str, location: str, quantity: int, compare: int) -> dict[str, Any]:
    level = {
        "inventoryItemId": item,
        "locationId": location,
        "quantity": quantity,
        "compareQuantity": compare,
    }
    return {"input": {"name": "available", "reason": "correction", "quantities": [level]}}


async def _available(graphql: GraphQL, item: str, location: str) -> int | httpx.Response:
    """What the shop shows available at the location now."""
    data = await graphql(READ_AVAILABLE, {"item": item, "location": location})
    if isinstance(data, httpx.Response):
        return data
    level = (data.get("inventoryItem") or {}).get("inventoryLevel")
    if not level:
        return httpx.Response(404, text=f"{item} is not stocked at {location}")
    quantities = level.get("quantities") or [{}]
    return int(quantities[0].get("quantity") or 0)


def _refused(errors: list[dict[str, Any]]) -> httpx.Response:
    """Shopify's user errors as a refusal in its own words."""
    text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    return httpx.Response(422, text=f"inventorySetQuantities: {text}")
