"""The hub's HTTP side: /metrics for Prometheus, /healthz and /readyz for orchestrators."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.metrics import Metrics

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def build_app(
    metrics: Metrics, readiness: ReadinessCheck, extra_routes: list[BaseRoute] | None = None
) -> Starlette:
    """The ASGI app; webhook ingress adds its routes through ``extra_routes``."""

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    routes: list[BaseRoute] = [
        Route("/metrics", metrics_endpoint),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *(extra_routes or []),
    ]
    app = Starlette(routes=routes)
    # No redirect from a path with a trailing slash (or an encoded one, "0%2F") to the route
    # without it: webhook senders do not follow a 307 with their POST, so it would be lost.
    app.router.redirect_slashes = False
    return app


class HttpServer:
    """Uvicorn in the hub's own event loop, started and stopped with the hub."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve in the background and wait until the socket is bound."""
        self._task = asyncio.create_task(self._server.serve(), name="http")
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the bind error
                raise RuntimeError("HTTP server stopped before it started")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving."""
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None
