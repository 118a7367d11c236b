"""Adapters are found by the key a channel's config names, never imported by name in the core."""

from __future__ import annotations

import importlib

from adapters.base import Translator

# registry key -> "module:attribute" of a Translator instance
KNOWN: dict[str, str] = {
    "shopify": "adapters.shopify:TRANSLATOR",
    "woocommerce": "adapters.woocommerce:TRANSLATOR",
    "bolcom": "adapters.bolcom:TRANSLATOR",
    "sendcloud": "adapters.sendcloud:TRANSLATOR",
    "odoo": "adapters.odoo:TRANSLATOR",
}


def register(key: str, target: str) -> None:
    """Make an adapter available under a config key (plug-ins may call this)."""
    KNOWN[key] = target


def load(key: str) -> Translator | None:
    """The translator for a config key; None for ``canonical`` (the channel speaks our schema)."""
    if key == "canonical":
        return None
    target = KNOWN.get(key)
    if target is None:
        raise LookupError(f"no adapter registered as {key!r}; known: {sorted(KNOWN)}")
    module_name, _, attribute = target.partition(":")
    translator: Translator = getattr(importlib.import_module(module_name), attribute)
    return translator


def native_types_for(canonical: str) -> tuple[str, ...]:
    """The ``native.<adapter>.<event>`` types that translate into a canonical type."""
    found: list[str] = []
    for key in sorted(KNOWN):
        translator = load(key)
        canonical_types = getattr(translator, "canonical_types", None)
        if translator is None or canonical_types is None:
            continue
        found.extend(
            f"native.{key}.{event}"
            for event in sorted(translator.native_events())
            if canonical in canonical_types(event)
        )
    return tuple(found)


def known_keys() -> frozenset[str]:
    """Every adapter key a config may name."""
    return frozenset({"canonical", *KNOWN})
