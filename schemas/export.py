"""JSON Schema export, so adapters in other languages can validate what they put on the bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.envelope import CloudEvent
from schemas.registry import CANONICAL_TYPES

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """The validation-mode schema of a model: what a publisher may send."""
    schema = model.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "title": title}


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<type>.schema.json`` per canonical type and ``cloudevent.schema.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = {name: json_schema(cls, name) for name, cls in sorted(CANONICAL_TYPES.items())}
    documents["cloudevent"] = json_schema(CloudEvent, "cloudevent")
    written = []
    for name, schema in documents.items():
        path = directory / f"{name}.schema.json"
        path.write_bytes(
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        written.append(path)
    return written
