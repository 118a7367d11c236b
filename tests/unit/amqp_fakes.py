"""Stand-ins for the slice of aiormq the ack path uses, shared by the unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace


@dataclass
class FakeChannel:
    """The slice of aiormq's channel the coalescer uses: the ack frames land here."""

    is_closed: bool = False
    frames: list[tuple[int, bool]] = field(default_factory=list)
    nacks: list[tuple[int, bool]] = field(default_factory=list)  # (tag, requeue)
    nack_fails: bool = False
    connection: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(basic_nack=True))

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.frames.append((delivery_tag, multiple))

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        if self.nack_fails:
            raise ConnectionResetError("the channel is gone")
        self.nacks.append((delivery_tag, requeue))

    async def close(self) -> None:
        self.is_closed = True
