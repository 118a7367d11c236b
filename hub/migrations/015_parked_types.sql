-- Messages parked before the hub filed them by type when the AMQP type property was unset
-- (adapters rarely set it): take the type from the routing key where the key is
-- <channel>.<type>, i.e. on hub.in and hub.out, so `hub dlq ... --message-type` finds them too.
UPDATE parked
SET message_type = substr(original_routing_key, strpos(original_routing_key, '.') + 1)
WHERE message_type IS NULL
  AND strpos(original_routing_key, '.') > 0
  AND (original_exchange LIKE '%hub.in' OR original_exchange LIKE '%hub.out');

-- A copy of a fan-out (one publish, the other channels in CC) carries the first channel's
-- routing key; one parked from another channel's queue was filed under the first channel, and
-- replay (which now drops CC) would send it there. File it under the queue it failed in.
UPDATE parked
SET channel = substr(failed_queue, strpos(failed_queue, 'hub.out.') + 8),
    original_routing_key = substr(failed_queue, strpos(failed_queue, 'hub.out.') + 8)
        || '.' || substr(original_routing_key, strpos(original_routing_key, '.') + 1)
WHERE failed_queue LIKE '%hub.out.%'
  AND original_exchange LIKE '%hub.out'
  AND strpos(original_routing_key, '.') > 0;
