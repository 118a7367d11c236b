"""``hub run`` freezes what start-up built out of the collector (a latency-tail fix)."""

from __future__ import annotations

import gc

from hub.app import YOUNG_GENERATION, freeze_startup_objects


def test_startup_objects_are_frozen_out_of_the_collector() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    threshold = gc.get_threshold()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (YOUNG_GENERATION, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
