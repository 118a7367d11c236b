"""The base every canonical message model shares: frozen, strict, with its bus type name."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class CanonicalModel(BaseModel):
    """Frozen and strict so that a message, once validated, cannot drift or carry stray fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Message(CanonicalModel):
    """A canonical bus message; ``TYPE`` is the CloudEvents ``type`` it travels under."""

    TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[str] = "1.0"
    """MAJOR.MINOR of ``data``: a minor adds optional fields, a major breaks (dataschemaversion)."""
