"""Adapters are found by what a channel's config names, never imported by name in the core: a
registry key (``shopify``) or, for an adapter of one's own, a dotted path to its translator
(``acme_hub.magento:TRANSLATOR``), so a new system needs a package and config, not a change
here. Its native events are ``native.<translator name>.<event>``."""

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
    """The translator for a config key or dotted path; None for ``canonical`` (the channel
    speaks our schema)."""
    if key == "canonical":
        return None
    target = KNOWN.get(key)
    if target is None and not is_path(key):
        raise LookupError(f"no adapter registered as {key!r}; known: {sorted(KNOWN)}")
    module_name, _, attribute = (target or key).partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"cannot load adapter {key!r}: {exc}") from exc
    if not isinstance(getattr(found, "name", None), str) or not callable(
        getattr(found, "to_canonical", None)
    ):
        raise LookupError(
            f"adapter {key!r} is not a translator (name, native_events, to_canonical)"
        )
    translator: Translator = found
    return translator


def is_path(key: str) -> bool:
    """Whether a config's adapter names a translator by ``module:attribute``."""
    module, colon, attribute = key.partition(":")
    return bool(colon) and all(part.isidentifier() for part in (*module.split("."), attribute))


def native_name(key: str) -> str:
    """The ``<adapter>`` of the channel's native types: the key, or a plug-in's own name."""
    translator = load(key) if is_path(key) else None
    return translator.name if translator is not None else key


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
