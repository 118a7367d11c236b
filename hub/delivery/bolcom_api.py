"""The bol.com Retailer API (v10) as the hub calls it: the adapter's payloads (``adapters.bolcom``)
sent to their resources with an OAuth token from the channel's client id and secret.

- Token: ``POST login.bol.com/token`` (client credentials, Basic auth; the ``login_url``
  setting points elsewhere for a test double), kept until shortly before it expires and
  fetched again once when a call answers 401.
- Offers are named by the merchant's reference (``referenceCode``), which v10 can look up only
  in the offer export: the client asks for one (``POST retailer/offers/export``), follows its
  process status and reads the CSV into a reference -> offer id table. A reference missing from
  an export older than ``offer_export_max_age_s`` asks for a new one; missing from a fresh one,
  it is answered 404 (parked: the offer is not on bol.com yet). An export still being prepared
  is answered 503 with Retry-After, and the retry follows the same export.
- Stock and price: ``PUT retailer/offers/{id}/stock`` and ``.../price`` (202: bol.com applies
  them in the background; a newer figure follows soon anyway).
- Shipment: ``POST retailer/shipments``, unless the order's shipments already carry the hub's
  shipment reference (a retry after a lost answer); cancellation: ``PUT retailer/orders/
  cancellation``, one order item per request (v10 takes one), skipping items with nothing
  open; a return's goods back: ``PUT retailer/returns/{rma-id}`` per item not handled yet
  (an item whose confirmation bol.com is still processing is not confirmed again on a retry:
  its process status is asked instead). Each follows its process status for up to
  ``process_wait_s``: a FAILURE is refused with bol.com's words.
- In: new orders, cancellation requests and returns are polled every ``poll_s`` (120; 0 does
  not poll) by the hub delivering the channel (``hub.delivery.bolcom_poll``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx
import orjson

from hub.delivery.bolcom_poll import BolcomIntake
from hub.delivery.polling import Found
from hub.delivery.recent import Recent
from hub.delivery.wire import Request, seconds
from routes.config import BOLCOM_POLL_PAGES

JSON = "application/vnd.retailer.v10+json"
CSV = "application/vnd.retailer.v10+csv"
TOKEN_URL = "https://login.bol.com/token"
REMEMBERED_CONFIRMATIONS = 10_000
"""Return items whose confirmation's process status is kept, for retries to look up."""
TOKEN_MARGIN_S = 30.0
OFFER_TYPES = frozenset({"stock.availability", "price.changed"})
CANCEL_TYPES = frozenset({"order.rejected", "order.status"})


class BolcomApi:
    """Calls bol.com's Retailer API for each delivery, with the channel's API credentials."""

    def __init__(self, base_url: str, settings: Mapping[str, str]) -> None:
        self._base = base_url.rstrip("/")
        self._login_url = settings.get("login_url") or TOKEN_URL
        self._auth = httpx.BasicAuth(
            settings.get("client_id", ""), settings.get("client_secret", "")
        )
        self._export_max_age_s = seconds(settings, "offer_export_max_age_s", 900)
        self._export_wait_s = seconds(settings, "offer_export_wait_s", 60)
        self._process_wait_s = seconds(settings, "process_wait_s", 10, zero_ok=True)
        self._poll_s = seconds(settings, "process_poll_s", 1)
        # An offer gone on bol.com that an export this young named is not looked up again.
        self._reexport_after_s = seconds(settings, "offer_reexport_after_s", 60, zero_ok=True)
        self._token: tuple[str, float] | None = None  # (access token, monotonic expiry)
        self._token_lock = asyncio.Lock()
        self._offers: dict[str, str] = {}  # reference -> offer id
        self._exported_at: float | None = None
        self._export_pending: str | None = None  # process status id of the export asked for
        self._export_lock = asyncio.Lock()
        # rma id -> process status id of its confirmation
        self._confirming: Recent[str, str] = Recent(REMEMBERED_CONFIRMATIONS)
        self._intake = BolcomIntake(
            self._send,
            seconds(settings, "poll_s", 120, zero_ok=True),
            int(settings.get("poll_pages") or BOLCOM_POLL_PAGES),  # checked by the config
        )
        self.poll_s = self._intake.poll_s

    def poll(self, client: httpx.AsyncClient) -> AsyncGenerator[Found, None]:
        """New orders, cancellation requests and returns (``hub.delivery.bolcom_poll``)."""
        return self._intake.poll(client)

    def handed_over(self, found: Found) -> None:
        """The hub has this find: later polls skip it."""
        self._intake.handed_over(found)

    async def call(self, client: httpx.AsyncClient, request: Request) -> httpx.Response:
        """The API calls (after a token and any offer lookup) that deliver the payload."""
        kind = request.headers.get("X-Hub-Message-Type", "")
        body: dict[str, Any] = orjson.loads(request.body)
        if kind in OFFER_TYPES:
            return await self._update_offer(client, kind, body)
        if kind == "shipment.tracking":
            return await self._ship(client, body)
        if kind in CANCEL_TYPES and "orderItems" in body:
            return await self._cancel(client, body)
        if kind == "return.received":
            return await self._confirm_return(client, body)
        return httpx.Response(400, text=f"the hub has no bol.com call for {kind!r}")

    async def _update_offer(
        self, client: httpx.AsyncClient, kind: str, body: dict[str, Any]
    ) -> httpx.Response:
        reference = str(body.pop("reference"))
        found = await self._offer_id(client, reference)
        if isinstance(found, httpx.Response):
            return found
        what = "stock" if kind == "stock.availability" else "price"
        answer = await self._send(client, "PUT", f"/retailer/offers/{found}/{what}", body)
        if answer.status_code == 404:  # the offer was deleted, perhaps made again: a new export
            if self._offers.get(reference, found) != found:  # read anew meanwhile: try that
                return httpx.Response(503, headers={"Retry-After": "1"}, text="offer id changed")
            self._offers = {ref: offer for ref, offer in self._offers.items() if offer != found}
            if self._exported_at is not None and self._age() < self._reexport_after_s:
                return answer  # the export that named it is new: it is gone, not remade
            self._exported_at = None
            return httpx.Response(
                503, headers={"Retry-After": "1"}, text=f"offer {found} is gone: looking again"
            )
        return answer

    async def _ship(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        """Confirm the shipment, unless it was (a repeat); a later track and trace of one
        confirmed before changes its transport (``PUT retailer/transports/{id}``)."""
        order_id = body.pop("orderId", None)
        replaces = body.pop("replaces", None)
        reference = body.get("shipmentReference")
        if order_id and reference:
            listed = await self._send(
                client, "GET", "/retailer/shipments", params={"order-id": str(order_id)}
            )
            if listed.status_code != 200:
                return listed
            for shipment in _document(listed).get("shipments") or []:
                if shipment.get("shipmentReference") != reference:
                    continue
                if not replaces or replaces == body["transport"].get("trackAndTrace"):
                    return httpx.Response(200, text=f"shipment {reference} was confirmed before")
                transport_id = (shipment.get("transport") or {}).get("transportId")
                if not transport_id:
                    return _unreadable(listed)
                path = f"/retailer/transports/{transport_id}"
                changed = await self._send(client, "PUT", path, dict(body["transport"]))
                return await self._settled(client, changed)
            if replaces:  # confirmed moments ago, perhaps, and not listed yet: ask again
                return httpx.Response(
                    503,
                    headers={"Retry-After": "2"},
                    text=f"shipment {reference} is not listed by bol.com (yet): its track and"
                    " trace is changed once it is",
                )
        sent = await self._send(client, "POST", "/retailer/shipments", body)
        return await self._settled(client, sent)

    async def _cancel(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        order_id = body.get("orderId")
        items: list[dict[str, Any]] = body["orderItems"]
        if order_id:
            found = await self._send(client, "GET", f"/retailer/orders/{order_id}")
            if found.status_code != 200:
                return found
            open_ids = {
                str(item["orderItemId"])
                for item in _document(found).get("orderItems") or []
                if _open_units(item) > 0
            }
            items = [item for item in items if str(item["orderItemId"]) in open_ids]
        answer = httpx.Response(200, text="nothing open to cancel on bol.com")
        for item in items:  # v10 cancels one order item per request
            sent = await self._send(
                client, "PUT", "/retailer/orders/cancellation", {"orderItems": [item]}
            )
            answer = await self._settled(client, sent)
            if not answer.is_success:
                return answer
        return answer

    async def _confirm_return(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> httpx.Response:
        """Confirm the goods back on the return's items bol.com has not seen handled
        (``PUT retailer/returns/{rma-id}``): all of a one-item return's units received, or,
        for several items, each one's expected units once the receipt covers every item. A
        return bol.com does not have (one the hub asked back itself) needs nothing there."""
        return_id = str(body["returnId"])
        if not return_id.isdigit():  # bol.com's return ids are numbers; the hub's own are not
            return httpx.Response(200, text=f"{return_id} is not a bol.com return")
        found = await self._send(client, "GET", f"/retailer/returns/{return_id}")
        if found.status_code == 404:
            return httpx.Response(200, text=f"bol.com has no return {return_id}: nothing to do")
        if found.status_code != 200:
            return found
        items = _document(found).get("returnItems")
        if not isinstance(items, list) or not items:
            return _unreadable(found)
        if not all(isinstance(i, dict) and str(i.get("rmaId") or "").isdigit() for i in items):
            return _unreadable(found)
        waiting = [item for item in items if not item.get("handled")]
        if not waiting:
            return httpx.Response(200, text=f"return {return_id} is handled on bol.com already")
        received = int(body.get("quantityReturned") or 0)
        expected = sum(_units(item, "expectedQuantity") for item in items)
        if len(items) == 1:
            plan = [(items[0], min(received, expected) or received)]
        elif received == expected:
            plan = [(item, _units(item, "expectedQuantity")) for item in waiting]
        else:
            return httpx.Response(
                422,
                text=f"{received} unit(s) back for bol.com return {return_id}, whose"
                f" {len(items)} items expect {expected}: confirm them on bol.com by hand",
            )
        answer = found
        for item, units in plan:
            rma_id = str(item["rmaId"])
            try:
                if await self._being_confirmed(client, rma_id):
                    continue
            except _Unsure as exc:  # tried again later (after bol.com's Retry-After, if any)
                wait = exc.answer.headers.get("Retry-After")
                return httpx.Response(
                    503,
                    headers={"Retry-After": wait} if wait else None,
                    text=f"process status of return item {rma_id} unknown: {exc.answer.text[:200]}",
                )
            handled = {"handlingResult": body["handlingResult"], "quantityReturned": units}
            sent = await self._send(client, "PUT", f"/retailer/returns/{rma_id}", handled)
            answer = await self._settled(client, sent)
            if not answer.is_success:
                return answer
            self._confirmed(rma_id, _document(sent).get("processStatusId"))
        return answer

    async def _being_confirmed(self, client: httpx.AsyncClient, rma_id: str) -> bool:
        """Whether this client's earlier confirmation of the item is pending or done at bol.com,
        which lists the item as not handled until it has processed it; confirming it again
        would be refused."""
        status_id = self._confirming.get(rma_id)
        if status_id is None:
            return False
        polled = await self._process_status(client, status_id)
        if polled.status_code not in (200, 404):  # cannot tell now: not confirmed twice
            raise _Unsure(polled)
        state = _document(polled).get("status") if polled.status_code == 200 else None
        if state in ("PENDING", "SUCCESS"):
            return True
        self._confirming.forget(rma_id)  # failed, timed out or forgotten there: confirm again
        return False

    def _confirmed(self, rma_id: str, status_id: object) -> None:
        """Keep the process status of an item's confirmation for a retry to look up."""
        if status_id:
            self._confirming.put(rma_id, str(status_id))

    async def _settled(self, client: httpx.AsyncClient, sent: httpx.Response) -> httpx.Response:
        """Follow a 202's process status for a while: FAILURE is a refusal with bol.com's
        reason, TIMEOUT worth another try; SUCCESS or still PENDING count as done."""
        status = _document(sent)
        if sent.status_code != 202 or "processStatusId" not in status:
            return sent
        deadline = time.monotonic() + self._process_wait_s
        while status.get("status") == "PENDING" and time.monotonic() < deadline:
            await asyncio.sleep(self._poll_s)
            polled = await self._process_status(client, str(status["processStatusId"]))
            if polled.status_code != 200 or not _document(polled):
                return sent  # the status expired or cannot be read: bol.com took the request
            status = _document(polled)
        return _judged(status, sent)

    async def _offer_id(self, client: httpx.AsyncClient, reference: str) -> str | httpx.Response:
        """The offer id bol.com gave the merchant's reference, from the latest offer export."""
        if reference in self._offers:
            return self._offers[reference]
        async with self._export_lock:
            fresh = self._exported_at is not None and self._age() < self._export_max_age_s
            if not fresh:
                made = await self._export(client)
                if made is not None:
                    return made
        if reference in self._offers:
            return self._offers[reference]
        return httpx.Response(404, text=f"no offer with reference {reference!r} on bol.com")

    async def _export(self, client: httpx.AsyncClient) -> httpx.Response | None:
        """Read a new offer export into the table; None when done, else why it is not."""
        if self._export_pending is None:
            asked = await self._send(client, "POST", "/retailer/offers/export", {"format": "CSV"})
            status_id = _document(asked).get("processStatusId")
            if asked.status_code != 202 or not status_id:
                return asked if asked.status_code != 202 else _unreadable(asked)
            self._export_pending = str(status_id)
        deadline = time.monotonic() + self._export_wait_s
        while True:
            polled = await self._process_status(client, self._export_pending)
            if polled.status_code == 404:  # expired before it was read: ask again next time
                self._export_pending = None
                return httpx.Response(503, headers={"Retry-After": "5"}, text="offer export lost")
            if polled.status_code != 200:
                return polled
            status = _document(polled)
            if status.get("status") != "PENDING":
                break
            if time.monotonic() >= deadline:
                return httpx.Response(
                    503, headers={"Retry-After": "30"}, text="bol.com is preparing the offer export"
                )
            await asyncio.sleep(self._poll_s)
        self._export_pending = None
        if status.get("status") != "SUCCESS" or not status.get("entityId"):
            reason = status.get("errorMessage") or status.get("status") or "no report id"
            return httpx.Response(502, text=f"bol.com offer export failed: {reason}")
        report = await self._send(
            client, "GET", f"/retailer/offers/export/{status['entityId']}", accept=CSV
        )
        if report.status_code != 200:  # expired meanwhile, say: ask for a new one
            return httpx.Response(
                503, headers={"Retry-After": "5"}, text=f"offer export not read: {report.text}"
            )
        self._offers = offers_by_reference(report.text)
        self._exported_at = time.monotonic()
        return None

    def _age(self) -> float:
        """Seconds since the offer table was read from an export."""
        return time.monotonic() - (self._exported_at or 0.0)

    async def _process_status(self, client: httpx.AsyncClient, status_id: str) -> httpx.Response:
        return await self._send(client, "GET", f"/shared/process-status/{status_id}")

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        accept: str = JSON,
    ) -> httpx.Response:
        """One API request with a valid token; a 401 (the token expired early) gets a new
        token and one more try."""
        refused: str | None = None
        for _ in range(2):
            token = await self._access_token(client, refused)
            if isinstance(token, httpx.Response):
                return token
            headers = {"Authorization": f"Bearer {token}", "Accept": accept}
            if body is not None:
                headers["Content-Type"] = JSON
            response = await client.request(
                method,
                f"{self._base}{path}",
                content=None if body is None else orjson.dumps(body),
                headers=headers,
                params=params,
            )
            if response.status_code != 401 or refused is not None:
                return response
            refused = token
        raise AssertionError("unreachable")  # pragma: no cover

    async def _access_token(
        self, client: httpx.AsyncClient, refused: str | None = None
    ) -> str | httpx.Response:
        """The token to call with: the kept one while it lasts and was not just refused (bol.com
        blocks clients that ask too often, so of calls refused together one asks), else a new
        one; or the token endpoint's refusal."""
        async with self._token_lock:
            kept = self._token
            if kept is not None and kept[0] != refused and time.monotonic() < kept[1]:
                return kept[0]
            response = await client.post(
                self._login_url,
                data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"},
                auth=self._auth,
            )
            if response.status_code != 200:
                return response
            granted = _document(response)
            if not granted.get("access_token"):
                return _unreadable(response)
            try:
                lifetime = float(granted.get("expires_in") or 299)
            except (TypeError, ValueError):
                lifetime = 299.0
            expiry = time.monotonic() + max(lifetime - TOKEN_MARGIN_S, lifetime / 2)
            self._token = (str(granted["access_token"]), expiry)
            return self._token[0]


def offers_by_reference(text: str) -> dict[str, str]:
    """Reference -> offer id from an offer export (columns read by name: ``referenceCode``,
    or ``reference`` in other versions); offers without a reference are left out."""
    table: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff"))):
        reference = (row.get("referenceCode") or row.get("reference") or "").strip()
        offer_id = (row.get("offerId") or "").strip()
        if reference and offer_id:
            table[reference] = offer_id
    return table


class _Unsure(Exception):
    """bol.com did not say how an earlier confirmation went (a 429 or 5xx on its status)."""

    def __init__(self, answer: httpx.Response) -> None:
        super().__init__(answer.status_code)
        self.answer = answer


def _document(response: httpx.Response) -> dict[str, Any]:
    """A JSON object answer, or an empty one for anything else (which the caller judges)."""
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _unreadable(response: httpx.Response) -> httpx.Response:
    """An answer the hub cannot read, as one worth another try."""
    return httpx.Response(502, text=f"unreadable bol.com answer: {response.text[:200]}")


def _units(item: Mapping[str, Any], key: str) -> int:
    """A count of a bol.com document, 0 where it does not read."""
    try:
        return int(item.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _open_units(item: Mapping[str, Any]) -> int:
    """Units of a bol.com order item neither shipped nor cancelled."""
    try:
        return (
            int(item.get("quantity") or 0)
            - int(item.get("quantityShipped") or 0)
            - int(item.get("quantityCancelled") or 0)
        )
    except (TypeError, ValueError):
        return 1  # unreadable: asking bol.com to cancel it is safer than leaving it open


def _judged(status: Mapping[str, Any], sent: httpx.Response) -> httpx.Response:
    """The answer a process status amounts to."""
    state = status.get("status")
    reason = status.get("errorMessage") or status.get("description") or state
    if state == "FAILURE":
        return httpx.Response(422, text=f"bol.com {status.get('eventType')}: {reason}")
    if state == "TIMEOUT":
        return httpx.Response(503, text=f"bol.com {status.get('eventType')} timed out: {reason}")
    return sent
