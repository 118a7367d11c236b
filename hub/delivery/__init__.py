"""Built-in HTTP delivery: the hub POSTs a channel's messages to its API itself.

For every channel configured with ``delivery.transport: http`` the hub consumes
``hub.out.<channel>`` and POSTs each message to ``delivery.url``: the adapter's native payload
when it writes one, else the CloudEvent as published. A token bucket per channel
(``rate_per_second``, ``burst``) paces the requests; Retry-After pauses the channel (a 409's
only its message); a backlog
of stock figures is coalesced to the newest per SKU. ``service`` wires it into the hub,
``worker`` decides each message's fate, ``bucket``, ``coalesce``, ``wire`` and ``policy``
hold the parts.
"""

from hub.delivery.policy import DeliveryPolicy
from hub.delivery.service import DeliveryService

__all__ = ["DeliveryPolicy", "DeliveryService"]
