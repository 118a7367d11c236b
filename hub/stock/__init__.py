"""Stock and availability: the versioned ledger, ATP per channel, reservations and the RPC.

Flow: ``stock.level`` (ERP, warehouse or a file feed) -> ``ledger.apply_levels`` (stale versions
dropped and counted) -> ``availability.availability_changes`` recomputes the SKU and every kit
containing it for each channel that sells it, and publishes ``stock.availability`` only to
channels whose figure changed, in the same transaction (outbox) as the ledger change.

Reservations (``reservations``) hold units per SKU for open orders until the ERP's own
``stock.level`` counts the order (its number in ``included_order_ids``), or until a level
measured after the units shipped counts them out of on hand: the hold is dropped in the same
transaction that applies that level, so a unit is never counted twice or not at all.
``rpc`` answers availability queries on ``hub.rpc``; ``feed`` and ``cli`` import stock
spreadsheets and resync a channel.
"""
