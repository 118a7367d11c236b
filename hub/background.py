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


async def wait_or_stop(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait this long, or less when asked to stop; True when asked."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    return stopping.is_set()


async def finish_then_cancel(task: asyncio.Task[None] | None, wait_s: float) -> None:
    """Let a loop that was asked to stop end its round (up to ``wait_s``), then make sure it
    has ended: cancelled half-way through opening or closing an AMQP channel, aio-pika can be
    left waiting on it, and the connection's close then hangs."""
    if task is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), timeout=wait_s)
    await cancel_and_wait(task)


class Poller(Background):
    """Runs ``tick`` every ``interval_s`` and stops between ticks, not inside one.

    A tick that talks to the broker opens and closes channels (``finish_then_cancel`` says
    why that must not be cut off): ``stop`` asks the loop to end and waits for the tick in
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
            await wait_or_stop(self._stopping, self.interval_s)

    def start(self) -> None:
        """Run in the background."""
        self._stopping.clear()
        super().start()

    async def stop(self) -> None:
        """Let the tick in progress finish, then end (cancel it only if it hangs)."""
        self._stopping.set()
        task, self._task = self._task, None
        await finish_then_cancel(task, self.stop_wait_s)
