"""Work the hub runs beside its consumer until it stops: the outbox relay, sweeps, pruning."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended (what it had begun rolls back)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Background:
    """Runs ``_run`` as one named task, from ``start`` until ``stop``."""

    task_name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Stop and wait until stopped; work in progress is rolled back and redone later."""
        await cancel_and_wait(self._task)
        self._task = None
