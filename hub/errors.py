"""The hub's one error tree, split by what the bus must do with the message.

HubError
 ├── PermanentError          park in hub.dead with the reason; retrying cannot help
 │    ├── MalformedMessage   body is not a JSON CloudEvent
 │    ├── UnknownType        type is neither canonical nor a native type of the channel
 │    ├── SchemaViolation    data does not validate against the type's schema
 │    ├── UnknownChannel     source or destination is not a configured channel
 │    └── BusinessRuleViolation  valid message that breaks a domain rule (unknown SKU, ...)
 └── TransientError          retry later with back-off; the message is fine, the world was not
      ├── DatabaseUnavailable
      └── PublishNotConfirmed
"""

from __future__ import annotations


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    error_type = "hub_error"


class PermanentError(HubError):
    """The message itself is at fault: park it with this reason."""

    error_type = "permanent"


class MalformedMessage(PermanentError):
    """The body is not a well-formed CloudEvent."""

    error_type = "malformed"


class UnknownType(PermanentError):
    """Nobody knows how to read this type from this source."""

    error_type = "unknown_type"


class SchemaViolation(PermanentError):
    """The data does not match the schema of its type."""

    error_type = "schema_violation"


class UnknownChannel(PermanentError):
    """A channel named by the message is not in the config."""

    error_type = "unknown_channel"


class Unroutable(PermanentError):
    """No configured route takes this type from this source: parked, never silently dropped."""

    error_type = "no_route"


class BusinessRuleViolation(PermanentError):
    """A valid message that a domain rule refuses (unknown SKU, stale command)."""

    error_type = "business_rule"


class TransientError(HubError):
    """The world was briefly wrong; the same message may succeed later."""

    error_type = "transient"


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or aborted the transaction."""

    error_type = "database_unavailable"


class PublishNotConfirmed(TransientError):
    """The broker nacked, returned or did not confirm a publish in time.

    ``refused``: the message itself cannot go where it is addressed (the broker returned it
    as unroutable, or AMQP cannot carry it); sending it again helps only once the topology
    changes. Everything else (a nack, a timeout, a lost connection) may pass on a retry.
    """

    error_type = "publish_not_confirmed"

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def one_line(exc: BaseException, limit: int = 500) -> str:
    """A single human-readable line for the x-hub-error header."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit]
