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

    def data_version(self) -> str:
        """The version to stamp on this message: the oldest a reader may be written for, so a
        message that uses nothing of a newer major version does not lock out older readers."""
        return self.SCHEMA_VERSION
