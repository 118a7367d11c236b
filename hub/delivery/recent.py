"""A mapping that keeps only its most recently written keys, so what a client remembers per
message stays bounded however long the hub runs."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Up to ``limit`` keys; writing a key makes it the newest, and the oldest goes first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value last written for the key, if it is still remembered."""
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        """Remember the key as the newest; forget the oldest beyond the limit."""
        self._items.pop(key, None)
        self._items[key] = value
        if len(self._items) > self._limit:
            self._items.popitem(last=False)

    def forget(self, key: K) -> None:
        """No longer remember the key."""
        self._items.pop(key, None)
