"""The committed AsyncAPI document is the one the code generates, and every reference resolves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.asyncapi import document
from schemas.registry import CANONICAL_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_committed_document_is_up_to_date() -> None:
    assert json.loads(DOC.read_text()) == json.loads(json.dumps(document())), (
        "docs/asyncapi.json is stale: run `hub asyncapi docs/asyncapi.json`"
    )


def test_every_canonical_type_has_a_message_and_refs_resolve() -> None:
    doc = document()
    assert set(doc["components"]["messages"]) == set(CANONICAL_TYPES)
    for ref in refs(doc):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            assert part in node, f"unresolved {ref}"
            node = node[part]
