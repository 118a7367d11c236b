-- The units each return brought back, per order: an order is "returned" only once every
-- shipped unit is back; a return of part of it leaves the order shipped (or awaiting the
-- returns still announced). A return's receipt sent again counts once (the larger count).
CREATE TABLE order_returns_received (
    order_id  text        NOT NULL REFERENCES orders (order_id),
    return_id text        NOT NULL,
    sku       text        NOT NULL,
    quantity  int         NOT NULL CHECK (quantity > 0),
    at        timestamptz NOT NULL,
    PRIMARY KEY (order_id, return_id, sku)
);

-- Orders already "returned" had every return they asked for back, as far as the hub knew.
INSERT INTO order_returns_received (order_id, return_id, sku, quantity, at)
SELECT r.order_id, r.return_id, r.sku, r.quantity, r.at
FROM order_returns r JOIN orders o USING (order_id)
WHERE o.state = 'returned';
