"""What the hub asks bol.com for, having no webhook for it: new FBR orders, the buyers'
cancellation requests and their registered returns (Retailer API v10).

- Orders: ``GET retailer/orders?fulfilment-method=FBR&status=OPEN`` a page (50) at a time; an
  order not handed to the hub yet is read whole (``GET retailer/orders/{id}``: the list lacks
  the offer reference, prices and address) and becomes the native event ``order``. An open
  order whose items carry ``cancellationRequest`` is read again and becomes
  ``cancellation-request``, once per set of items asked (a later request for another item is
  a new one). bol.com answers a page with no orders as ``{}``.
- Returns: ``GET retailer/returns?handled=false&fulfilment-method=FBR``; each return not handed
  over yet becomes ``return`` as listed (the list carries what the adapter reads: the order,
  EANs, expected quantities and reasons).

Each find is handed over as soon as it is read. An order bol.com refuses to show or answers
unreadably is skipped (logged) and tried again at the next poll; a 429 or a server error
ends the poll (counted as failed), the next waiting any Retry-After. At most ``poll_pages``
pages (20: 1,000 open orders) of orders and ``RETURN_PAGES`` pages (200 unhandled returns)
are read per poll: orders handed over stay listed until they ship, so a merchant with more
open FBR orders at once needs a larger ``poll_pages`` (each page is one of bol.com's list
calls, about 25 a minute).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Mapping
from typing import Any, Protocol

import httpx

from hub.delivery.polling import Found, PollFailed
from hub.delivery.wire import retry_after_s, snippet

log = logging.getLogger(__name__)

PAGE_SIZE = 50  # bol.com's page size for orders and returns
ORDER_PAGES = 20  # the default of the poll_pages setting
RETURN_PAGES = 4
REMEMBERED = 100_000  # finds handed over, so a poll does not read them again


class Send(Protocol):
    """The client's authenticated request (token fetched and renewed as needed)."""

    def __call__(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Awaitable[httpx.Response]:
        """One API request."""
        ...


class BolcomIntake:
    """Finds the orders, cancellation requests and returns the hub has not had yet."""

    def __init__(self, send: Send, poll_s: float, pages: int = ORDER_PAGES) -> None:
        self._send = send
        self.poll_s = poll_s
        self._pages = pages
        self._handed: OrderedDict[str, None] = OrderedDict()

    def handed_over(self, found: Found) -> None:
        """Remember a find the hub has, so later polls skip it."""
        key = f"{found.event}:{found.key}"
        self._handed[key] = None
        self._handed.move_to_end(key)
        if len(self._handed) > REMEMBERED:
            self._handed.popitem(last=False)

    def _has(self, event: str, key: str) -> bool:
        return f"{event}:{key}" in self._handed

    async def poll(self, client: httpx.AsyncClient) -> AsyncGenerator[Found, None]:
        """The new orders and cancellation requests first, then the new returns."""
        for page in range(1, self._pages + 1):
            params = {"fulfilment-method": "FBR", "status": "OPEN", "page": str(page)}
            orders = await self._page(client, "/retailer/orders", params, "orders")
            for reduced in orders:
                for found in await self._order_news(client, reduced):
                    yield found
            if len(orders) < PAGE_SIZE:
                break
        for page in range(1, RETURN_PAGES + 1):
            params = {"handled": "false", "fulfilment-method": "FBR", "page": str(page)}
            returns = await self._page(client, "/retailer/returns", params, "returns")
            for listed in returns:
                return_id = listed.get("returnId") if isinstance(listed, dict) else None
                if return_id is None or str(return_id) == "":
                    log.warning("bol.com listed a return without a returnId; skipped")
                    continue
                if not self._has("return", str(return_id)):
                    yield Found("return", str(return_id), listed)
            if len(returns) < PAGE_SIZE:
                break

    async def _order_news(self, client: httpx.AsyncClient, reduced: Any) -> list[Found]:
        """What is new of one listed order: itself, a cancellation request, or nothing."""
        order_id = reduced.get("orderId") if isinstance(reduced, dict) else None
        if not isinstance(order_id, str) or not order_id:
            log.warning("bol.com listed an order without an orderId; skipped")
            return []
        items = reduced.get("orderItems")
        asked = sorted(
            str(item.get("orderItemId"))
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and item.get("cancellationRequest") is True
        )
        cancel_key = f"{order_id}/{','.join(asked)}" if asked else None
        new_order = not self._has("order", order_id)
        new_request = cancel_key is not None and not self._has("cancellation-request", cancel_key)
        if not new_order and not new_request:
            return []
        read = await self._send(client, "GET", f"/retailer/orders/{order_id}")
        if read.status_code == 404:  # gone since it was listed
            return []
        if read.status_code == 429 or read.status_code >= 500:  # the rest would fail too
            raise _failed(f"orders/{order_id}", read)
        try:
            if read.status_code != 200:
                raise _failed(f"orders/{order_id}", read)
            order = _object(read, f"orders/{order_id}")
        except PollFailed as exc:  # this order only: the others go on, it is read next time
            log.warning("%s; tried again at the next poll", exc)
            return []
        news: list[Found] = []
        if new_order:
            news.append(Found("order", order_id, order))
        if new_request and cancel_key is not None:
            news.append(Found("cancellation-request", cancel_key, order))
        return news

    async def _page(
        self, client: httpx.AsyncClient, path: str, params: Mapping[str, str], key: str
    ) -> list[Any]:
        """One page of a list; ``{}`` (bol.com's empty page) is an empty list."""
        answer = await self._send(client, "GET", path, params=params)
        if answer.status_code != 200:
            raise _failed(path.removeprefix("/retailer/"), answer)
        listed = _object(answer, path).get(key, [])
        if not isinstance(listed, list):
            raise PollFailed(f"bol.com {path}: {key!r} is not a list")
        return listed


def _object(answer: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object bol.com answered, or PollFailed."""
    try:
        found = answer.json()
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise PollFailed(f"bol.com {what}: unreadable answer {snippet(answer.text)}")
    return found


def _failed(what: str, answer: httpx.Response) -> PollFailed:
    """A refused or failed list or read, with bol.com's words and any Retry-After."""
    wait = retry_after_s(answer.headers.get("Retry-After"))
    return PollFailed(f"bol.com {what} answered {answer.status_code}: {snippet(answer.text)}", wait)
