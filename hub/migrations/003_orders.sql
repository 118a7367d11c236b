-- Orders: the price projection used to validate orders, and the order process manager's state.

-- The ERP's price per SKU and price list (latest version wins), so an order's unit price can
-- be checked against what the channel was told to show.
CREATE TABLE catalog_prices (
    sku          text        NOT NULL,
    price_list   text        NOT NULL,
    amount       numeric     NOT NULL,
    currency     text        NOT NULL,
    includes_vat boolean     NOT NULL,
    vat_rate     numeric     NOT NULL,
    version      bigint      NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, price_list)
);

-- One row per channel order: (channel, channel_order_id) is unique, so a redelivered or
-- re-sent order finds its row and has no second effect.
CREATE TABLE orders (
    order_id         text        PRIMARY KEY,
    channel          text        NOT NULL,
    channel_order_id text        NOT NULL,
    state            text        NOT NULL,
    awaiting         text,                      -- erp | warehouse | carrier: whose answer is due
    deadline         timestamptz,               -- when that answer is overdue (durable timeout)
    attempts         int         NOT NULL DEFAULT 0,
    version          int         NOT NULL DEFAULT 1,
    reservation_id   text,
    erp_order_number text,
    placed           jsonb       NOT NULL,      -- the order.placed data as validated
    picked           jsonb       NOT NULL DEFAULT '{}',  -- line_id -> units picked
    shipped          jsonb       NOT NULL DEFAULT '{}',  -- line_id -> units shipped
    correlation_id   text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (channel, channel_order_id)
);
CREATE INDEX orders_deadline ON orders (deadline) WHERE deadline IS NOT NULL;

-- Every transition and notable event, for the operator answering a customer's call.
CREATE TABLE order_history (
    id         bigserial   PRIMARY KEY,
    order_id   text        NOT NULL REFERENCES orders (order_id),
    at         timestamptz NOT NULL,
    event      text        NOT NULL,
    state      text        NOT NULL,
    detail     text        NOT NULL DEFAULT '',
    message_id text
);
CREATE INDEX order_history_order ON order_history (order_id, id);

-- Shipments asked of the carrier and what it answered (partial shipments are several rows).
CREATE TABLE order_shipments (
    order_id        text        NOT NULL REFERENCES orders (order_id),
    shipment_id     text        NOT NULL,
    status          text        NOT NULL,       -- requested | created
    lines           jsonb       NOT NULL,
    carrier         text,
    tracking_number text,
    tracking_url    text,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (order_id, shipment_id)
);
