"""The bus contract as a generated AsyncAPI 2.6 document, so adapter authors get it machine-read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.envelope import CONTENT_TYPE, CloudEvent
from schemas.registry import CANONICAL_TYPES

REF = "#/components/schemas/{model}"


def _message(name: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else name,
        "contentType": CONTENT_TYPE,
        "payload": {
            "allOf": [
                {"$ref": REF.format(model="CloudEvent")},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": name},
                        "data": {"$ref": REF.format(model=model.__name__)},
                    },
                },
            ]
        },
        "bindings": {"amqp": {"deliveryMode": 2, "messageType": name}},
        "x-dataschemaversion": getattr(model, "SCHEMA_VERSION", "1.0"),
    }


def document(version: str = "2.4.0") -> dict[str, Any]:
    """The AsyncAPI document for every canonical type on hub.in and hub.out.<channel>."""
    models: list[tuple[type[BaseModel], Any]] = [(CloudEvent, "validation")]
    models += [(cls, "validation") for _, cls in sorted(CANONICAL_TYPES.items())]
    _, defs = models_json_schema(models, ref_template=REF)
    messages = {name: _message(name, cls) for name, cls in sorted(CANONICAL_TYPES.items())}
    one_of = [{"$ref": f"#/components/messages/{name}"} for name in messages]
    queue_binding = {
        "is": "queue",
        "queue": {"durable": True, "exclusive": False, "autoDelete": False},
    }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "commerce-hub bus contract",
            "version": version,
            "description": (
                "CloudEvents 1.0 (structured JSON) on RabbitMQ. Publish to exchange hub.in with "
                "routing key <channel>.<type>; consume hub.out.<channel>. The id is the "
                "idempotency key. Native types native.<adapter>.<event> carry the system's own "
                "payload and are translated by the channel's adapter."
            ),
        },
        "servers": {
            "local": {"url": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}
        },
        "channels": {
            "{channel}.{type}": {
                "description": "What adapters publish to the hub (exchange hub.in).",
                "parameters": {
                    "channel": {"schema": {"type": "string"}},
                    "type": {"schema": {"type": "string"}},
                },
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": {"name": "hub.in", "type": "topic", "durable": True},
                    }
                },
                "publish": {"operationId": "publishToHub", "message": {"oneOf": one_of}},
            },
            "hub.out.{channel}": {
                "description": "What the hub sends one channel (bound to hub.out '<channel>.#').",
                "parameters": {"channel": {"schema": {"type": "string"}}},
                "bindings": {"amqp": queue_binding},
                "subscribe": {"operationId": "consumeFromHub", "message": {"oneOf": one_of}},
            },
        },
        "components": {"schemas": defs.get("$defs", {}), "messages": messages},
    }
