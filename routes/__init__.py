"""Channels and routes as data: the config format, its loader, and routing as a pure function."""

from __future__ import annotations

from pathlib import Path

from routes.config import (
    ChannelConfig,
    DeliveryConfig,
    HubConfig,
    MarketConfig,
    OrderRules,
    RouteConfig,
    RouteFilter,
    StockRules,
)
from routes.errors import ConfigError, ConfigInvalid
from routes.loader import check_config, load_config
from routes.matching import RouteTable, RoutingError

EXAMPLE_CONFIG: Path = Path(__file__).with_name("hub.example.yaml")
"""The shipped example config: what ``hub run`` uses by default and operators copy from."""

__all__ = [
    "EXAMPLE_CONFIG",
    "ChannelConfig",
    "ConfigError",
    "ConfigInvalid",
    "DeliveryConfig",
    "HubConfig",
    "MarketConfig",
    "OrderRules",
    "RouteConfig",
    "RouteFilter",
    "RouteTable",
    "RoutingError",
    "StockRules",
    "check_config",
    "load_config",
]
