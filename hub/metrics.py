"""Every Prometheus metric the hub exports, defined once, on a registry of its own."""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


@cache
def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, remembered: prometheus-client validates and locks on every
    ``labels`` call, a cost the hot paths pay per message for a handful of distinct children."""
    return metric.labels(*values)


class Metrics:
    """One instance per hub process; tests create their own to read values in isolation."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.native_ignored = Counter(
            "hub_native_ignored_total",
            "Native events their adapter found nothing in for the hub (acked, not routed)",
            ["source", "type"],
            registry=r,
        )
        self.received = Counter(
            "hub_messages_received_total",
            "Messages taken from hub.in",
            ["source", "type"],
            registry=r,
        )
        self.published = Counter(
            "hub_messages_published_total",
            "Messages published with a broker confirm",
            ["exchange"],
            registry=r,
        )
        self.parked = Counter(
            "hub_messages_parked_total",
            "Messages parked in hub.dead, by reason",
            ["error_type"],
            registry=r,
        )
        self.retried = Counter(
            "hub_messages_retried_total",
            "Messages sent to a delay queue for a later retry",
            ["error_type"],
            registry=r,
        )
        self.duplicates = Counter(
            "hub_duplicates_dropped_total",
            "Redelivered messages whose effect had already happened",
            ["consumer"],
            registry=r,
        )
        self.handle_seconds = Histogram(
            "hub_handle_seconds",
            "From receipt on hub.in to ack, per message",
            ["type"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.batch_size = Histogram(
            "hub_commit_batch_size",
            "Messages committed per database transaction",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.outbox_relayed = Counter(
            "hub_outbox_relayed_total",
            "Outbox rows published by the relay (after a crash or outage)",
            registry=r,
        )
        self.inbox_pruned = Counter(
            "hub_inbox_pruned_total",
            "Inbox entries deleted past the retention window (HUB_INBOX_RETENTION_DAYS)",
            registry=r,
        )
        self.channel_queue_messages = Gauge(
            "hub_channel_queue_messages",
            "Messages waiting in hub.out.<channel> for the channel's adapter (or HTTP delivery)",
            ["channel"],
            registry=r,
        )
        self.channel_queue_consumers = Gauge(
            "hub_channel_queue_consumers",
            "Consumers of hub.out.<channel>: 0 means nothing takes the channel's messages",
            ["channel"],
            registry=r,
        )
        self.parked_waiting = Gauge(
            "hub_parked_waiting",
            "Parked messages not yet replayed or purged (in hub.dead or the parking-lot store)",
            registry=r,
        )
        self.ready = Gauge("hub_ready", "1 when connected to broker and database", registry=r)
        self.stock_propagation_seconds = Histogram(
            "hub_stock_propagation_seconds",
            "From the ERP stock change's event time to the availability publish confirm",
            ["channel"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.stale_stock = Counter(
            "hub_stock_stale_dropped_total",
            "Stock levels dropped because their version was old",
            registry=r,
        )
        self.stale_catalog = Counter(
            "hub_catalog_stale_dropped_total",
            "Products and prices not passed on: their version was not newer than the one kept",
            ["type"],
            registry=r,
        )
        self.price_schedule = Counter(
            "hub_price_schedule_total",
            "Prices set ahead (valid_from later): scheduled, released when they started,"
            " superseded by a newer version taken meanwhile, or parked (its event no longer reads)",
            ["what"],
            registry=r,
        )
        self.delivery_active = Gauge(
            "hub_delivery_active",
            "1 where this hub holds the channel's HTTP delivery lease (one hub per channel)",
            ["channel"],
            registry=r,
        )
        self.deliveries = Counter(
            "hub_deliveries_total",
            "HTTP delivery to a channel's API: ok, retry (per failed attempt), parked, coalesced,"
            " not_needed (the channel has no call for that message)",
            ["channel", "outcome"],
            registry=r,
        )
        self.polls = Counter(
            "hub_channel_polls_total",
            "Polls of channels' APIs for what they push to no webhook (bol.com), by outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.polled = Counter(
            "hub_channel_polled_total",
            "Events found by polling a channel's API and handed to the hub, by native event",
            ["channel", "event"],
            registry=r,
        )
        self.delivery_responses = Counter(
            "hub_delivery_responses_total",
            "Answers from channels' APIs by HTTP status ('error'/'timeout': none); alert on 429",
            ["channel", "status"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "hub_delivery_seconds",
            "From taking a message off hub.out.<channel> to the channel API's 2xx",
            ["channel"],
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.oversell = Counter(
            "hub_oversell_total",
            "Stock levels that left open reservations above the stock on hand (the ERP sold units"
            " the hub had promised); must stay 0",
            registry=r,
        )
