-- The units each return asks back, per order: a second return, or a cancellation after part
-- of the order shipped, asks back only what no earlier return covers, and a repeat is known.
CREATE TABLE order_returns (
    order_id  text        NOT NULL REFERENCES orders (order_id),
    return_id text        NOT NULL,
    sku       text        NOT NULL,
    quantity  int         NOT NULL CHECK (quantity > 0),
    at        timestamptz NOT NULL,
    PRIMARY KEY (order_id, return_id, sku)
);

-- Orders already awaiting or past a return asked every shipped unit back, as far as the hub
-- knew before this table (it took one return per order, and ignored any later one).
INSERT INTO order_returns (order_id, return_id, sku, quantity, at)
SELECT o.order_id, 'before-016', line ->> 'sku', sum((o.shipped ->> (line ->> 'line_id'))::int),
       o.updated_at
FROM orders o, jsonb_array_elements(o.placed -> 'lines') AS line
WHERE o.state IN ('return_requested', 'returned')
  AND (o.shipped ->> (line ->> 'line_id'))::int > 0
GROUP BY o.order_id, line ->> 'sku', o.updated_at;
