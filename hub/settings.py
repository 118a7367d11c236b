"""Runtime settings, read once from ``HUB_``-prefixed environment variables and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _example_config() -> Path:
    from routes import EXAMPLE_CONFIG

    return EXAMPLE_CONFIG


class Settings(BaseSettings):
    """Where the broker, the database and the config live; loopback defaults for local use only."""

    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="ignore")

    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/commerce_hub"
    config_path: Path = Field(default_factory=_example_config)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    name_prefix: str = Field(default="", pattern=r"^[a-z0-9._-]*$")
    prefetch: int = Field(default=512, ge=1, le=65535)
    batch_max: int = Field(default=256, ge=1)
    # Transactions in flight at once. Few keeps batches large under load (one commit, one
    # fsync, one lock round for many messages); publishing does not count against it.
    max_concurrent_batches: int = Field(default=1, ge=1, le=32)
    delivery_limit: int = Field(default=10, ge=1)
    retry_max_attempts: int = Field(default=5, ge=1)  # then the message is parked
    reconnect_interval_s: float = Field(default=1.0, gt=0)
    publish_timeout_s: float = Field(default=10.0, gt=0)
    # Longer than the publish timeout: the relay must not re-send a row the hub that wrote it
    # is still waiting on (a second copy in flight can be credited the other's broker return).
    outbox_grace_s: float = Field(default=15.0, ge=0)
    outbox_poll_s: float = Field(default=1.0, gt=0)
    # An outbox row the broker still refuses after this long goes to the parking lot.
    outbox_park_after_s: float = Field(default=600.0, gt=0)
    # How long a handled message's id turns its copies away (0: for ever). Adapters' retries
    # come within hours or days; past the window the inbox row is deleted.
    inbox_retention_days: float = Field(default=30.0, ge=0, le=36_500)
    inbox_prune_interval_s: float = Field(default=600.0, gt=0)
    parked_depth_interval_s: float = Field(default=15.0, gt=0)  # the DLQ and channel queue gauges
    price_schedule_interval_s: float = Field(default=5.0, gt=0)  # how late a price may start
    receipts_clock_interval_s: float = Field(default=300.0, gt=0)  # how late a new day is seen
    db_pool_max: int = Field(default=10, ge=1)
    # uvloop where it is installed (not on Windows): about 8% lower latency at load, the same
    # throughput (bench/findings.md); "asyncio" runs on the standard library's loop.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    log_level: str = "INFO"
