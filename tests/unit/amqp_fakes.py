"""Stand-ins for the slice of aiormq the ack path uses, shared by the unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeChannel:
    """The slice of aiormq's channel the coalescer uses: the ack frames land here."""

    is_closed: bool = False
    frames: list[tuple[int, bool]] = field(default_factory=list)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.frames.append((delivery_tag, multiple))
