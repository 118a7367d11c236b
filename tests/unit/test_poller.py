"""Background pollers stop between ticks, so a broker call is never cut off half-way."""

from __future__ import annotations

import asyncio

from hub.background import Poller


class SlowTicks(Poller):
    """Each tick takes a while and records whether it ran to its end."""

    def __init__(self) -> None:
        super().__init__(interval_s=0.01)
        self.started = 0
        self.finished = 0
        self.stop_wait_s = 5.0

    async def tick(self) -> None:
        self.started += 1
        await asyncio.sleep(0.3)
        self.finished += 1


class StuckTick(SlowTicks):
    """A tick that never ends: stop gives up waiting and cancels it."""

    async def tick(self) -> None:
        self.started += 1
        await asyncio.Event().wait()


async def test_stop_lets_the_tick_in_progress_finish_and_starts_no_other() -> None:
    poller = SlowTicks()
    poller.start()
    await asyncio.sleep(0.05)  # inside the first tick

    await poller.stop()

    assert (poller.started, poller.finished) == (1, 1)
    await asyncio.sleep(0.1)
    assert poller.started == 1


async def test_a_tick_that_hangs_is_cancelled_after_the_wait() -> None:
    poller = StuckTick()
    poller.stop_wait_s = 0.1
    poller.start()
    await asyncio.sleep(0.05)

    await asyncio.wait_for(poller.stop(), timeout=2.0)

    assert (poller.started, poller.finished) == (1, 0)
