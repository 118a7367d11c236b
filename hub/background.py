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


class Poller(Background):
    """Runs ``tick`` every ``interval_s`` and stops between ticks, not inside one.

    A tick that talks to the broker opens and closes channels; cancelled half-way, aio-pika can
    be left waiting on a channel that never finishes opening or closing, and the hub's stop
    then hangs on its connection. ``stop`` asks the loop to end and waits for the tick in
    progress (up to ``stop_wait_s``), cancelling only a tick that outlives that.
    """

    task_name = "poller"
    stop_wait_s = 10.0

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._stopping = asyncio.Event()

    async def tick(self) -> None:
        """One round of the work; a subclass says what."""
        raise NotImplementedError

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)

    def start(self) -> None:
        """Run in the background."""
        self._stopping.clear()
        super().start()

    async def stop(self) -> None:
        """Let the tick in progress finish, then end (cancel it only if it hangs)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=self.stop_wait_s)
        await cancel_and_wait(task)
