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
pages (20: 1,000 open orders) of orders and 4 pages (200 unhandled returns)
are read per poll: orders handed over stay listed until they ship, so a merchant with more
open FBR orders at once needs a larger ``poll_pages`` (each page is one of bol.com's list
calls, about 25 a minute).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Mapping
from typing import Any, Protocol

import httpx

from hub.delivery.polling import Found, PollFailed
from hub.delivery.recent import Recent
from hub.delivery.wire import retry_after_s, snippet
from routes.config import BOLCOM_POLL_PAGES, BOLCOM_RETURN_PAGES

log = logging.getLogger(__name__)

PAGE_SIZE = 50  # bol.com's page size for orders and returns
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

    def __init__(self, send: Send, poll_s: float, pages: int = BOLCOM_POLL_PAGES) -> None:
        self._send = send
        self.poll_s = poll_s
        self._pages = pages
        self._handed: Recent[tuple[str, str], None] = Recent(REMEMBERED)

    def handed_over(self, found: Found) -> None:
        """Remember a find the hub has, so later polls skip it."""
        self._handed.put((found.event, found.key), None)

    def _has(self, event: str, key: str) -> bool:
        return (event, key) in self._handed

    async def poll(self, client: httpx.AsyncClient) -> AsyncGenerator[Found, None]:
        """The new orders and cancellation requests first, then the new returns."""
        orders = {"fulfilment-method": "FBR", "status": "OPEN"}
        async for reduced in self._listed(client, "orders", orders, self._pages):
            for found in await self._order_news(client, reduced):
                yield found
        returns = {"handled": "false", "fulfilment-method": "FBR"}
        async for listed in self._listed(client, "returns", returns, BOLCOM_RETURN_PAGES):
            return_id = listed.get("returnId") if isinstance(listed, dict) else None
            if return_id is None or str(return_id) == "":
                log.warning("bol.com listed a return without a returnId; skipped")
            elif not self._has("return", str(return_id)):
                yield Found("return", str(return_id), listed)

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
        what = f"orders/{order_id}"
        read = await self._send(client, "GET", f"/retailer/{what}")
        if read.status_code == 404:  # gone since it was listed
            return []
        if read.status_code == 429 or read.status_code >= 500:  # the rest would fail too
            raise _failed(what, read)
        try:  # a refusal or an unreadable answer holds up this order only: read next time
            if read.status_code != 200:
                raise _failed(what, read)
            order = _object(read, what)
        except PollFailed as exc:
            log.warning("%s; tried again at the next poll", exc)
            return []
        news: list[Found] = []
        if new_order:
            news.append(Found("order", order_id, order))
        if new_request and cancel_key is not None:
            news.append(Found("cancellation-request", cancel_key, order))
        return news

    async def _listed(
        self, client: httpx.AsyncClient, what: str, params: Mapping[str, str], pages: int
    ) -> AsyncGenerator[Any, None]:
        """The entries of a list (``orders``, ``returns``), a page at a time up to ``pages``,
        until a page is not full; ``{}`` (bol.com's empty page) has none."""
        for page in range(1, pages + 1):
            answer = await self._send(
                client, "GET", f"/retailer/{what}", params={**params, "page": str(page)}
            )
            if answer.status_code != 200:
                raise _failed(what, answer)
            listed = _object(answer, what).get(what, [])
            if not isinstance(listed, list):
                raise PollFailed(f"bol.com {what}: {what!r} is not a list")
            for entry in listed:
                yield entry
            if len(listed) < PAGE_SIZE:
                return


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
