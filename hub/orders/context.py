"""What the order steps share: config, routes, names, metrics, and the timeout policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter

from hub.stock.availability import StockContext
from hub.topology import Names
from routes.config import HubConfig, OrderRules
from routes.matching import RouteTable

Party = Literal["erp", "warehouse", "carrier"]
"""Whose answer an order waits for; each has its own timeout."""


class OrderMetrics:
    """The order process's own metrics, registered once on the hub's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.placed = Counter(
            "hub_orders_total",
            "Channel orders by first outcome (accepted, rejected, duplicate, cancelled first)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.transitions = Counter(
            "hub_order_transitions_total",
            "Order process transitions, by the state reached",
            ["state"],
            registry=registry,
        )
        self.timeouts = Counter(
            "hub_order_timeouts_total",
            "Overdue answers: retried (request sent again), then rejected or stalled (alert)",
            ["party", "action"],
            registry=registry,
        )
        # Every series exists from the start: increase() reads a series' first sample as its
        # base, so the first timeout after a start would never raise the alert otherwise.
        for party in get_args(Party):
            for action in ("retried", "rejected", "stalled"):
                self.timeouts.labels(party, action)


@dataclass(frozen=True)
class OrderDeps:
    """The parts of the hub the order process needs, injected by the handler factory."""

    config: HubConfig
    table: RouteTable
    names: Names
    metrics: OrderMetrics
    stock: StockContext

    def rules(self, party: Party) -> OrderRules:
        """The timeout rules of the system awaited: the ERP's, the warehouse's or carrier's."""
        if party == "erp":
            return self.config.channels[self.config.erp].orders
        kinds = self.config.channels_of_kind(party)
        return self.config.channels[kinds[0]].orders if kinds else OrderRules()

    def deadline(self, party: Party, now: datetime) -> datetime:
        """When an answer from ``party`` asked for at ``now`` is overdue."""
        rules = self.rules(party)
        seconds = rules.erp_timeout_seconds if party == "erp" else rules.warehouse_timeout_seconds
        return now + timedelta(seconds=seconds)

    def on_partial_stock(self, channel: str) -> str:
        """The channel's policy for an order only partly in stock: reject or backorder."""
        return self.config.channels[channel].orders.on_partial_stock
