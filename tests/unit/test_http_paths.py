"""The hub's HTTP app answers a path it does not serve with 404, never with a redirect."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.http import build_app
from hub.metrics import Metrics


async def _ready() -> dict[str, bool]:
    return {"broker": True}


async def _accept(_: Request) -> Response:
    return Response(status_code=202)


async def test_a_trailing_or_encoded_slash_is_not_redirected() -> None:
    route = Route("/webhooks/{channel}/{event}", _accept, methods=["POST"])
    app = build_app(Metrics(), _ready, [route])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        assert (await client.post("/webhooks/shop-a/0")).status_code == 202
        for path in ("/webhooks/shop-a/0/", "/webhooks/shop-a/0%2F", "/healthz/"):
            answer = await client.post(path) if "webhooks" in path else await client.get(path)
            assert answer.status_code == 404, (path, answer.status_code)
