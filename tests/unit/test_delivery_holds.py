"""Which capped stock figures a shop's client holds for a newer one (``wire.Holds``)."""

from __future__ import annotations

from hub.delivery.wire import Holds


def test_a_key_is_held_once_in_a_row_and_again_after_a_figure_went_through() -> None:
    holds = Holds(settle_s=10)
    assert holds.hold("DESK-1")
    assert not holds.hold("DESK-1")  # capped again on the retry: the cap stands
    assert holds.hold("DESK-1")  # a new cap after that one may be held again
    holds.done("DESK-1")
    assert holds.hold("DESK-1")


def test_no_more_than_the_limit_are_held_at_once() -> None:
    holds = Holds(settle_s=10, limit=2)
    assert holds.hold("A") and holds.hold("B")
    assert not holds.hold("C")  # the channel's slots are for its other messages too
    holds.done("A")
    assert holds.hold("C")


def test_a_hold_that_ran_out_frees_its_place() -> None:
    holds = Holds(settle_s=0.0, limit=1)  # each hold ends at once
    assert holds.hold("A")
    assert holds.hold("B")


def test_nothing_is_held_where_no_newer_figure_could_take_its_place() -> None:
    holds = Holds(settle_s=None)
    assert not holds.hold("A")
    holds.forget()
    assert not holds.hold("A")
