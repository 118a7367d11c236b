-- Messages parked before the hub filed them by type when the AMQP type property was unset
-- (adapters rarely set it): take the type from the routing key where the key is
-- <channel>.<type>, i.e. on hub.in and hub.out, so `hub dlq ... --message-type` finds them too.
UPDATE parked
SET message_type = substr(original_routing_key, strpos(original_routing_key, '.') + 1)
WHERE message_type IS NULL
  AND strpos(original_routing_key, '.') > 0
  AND (original_exchange LIKE '%hub.in' OR original_exchange LIKE '%hub.out');
