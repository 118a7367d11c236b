-- Stock: the ledger, incoming receipts, reservations, product facts, last published figures.

-- Absolute stock per SKU and location as the ERP (or warehouse, or a feed) reports it.
-- A version at or below the stored one is stale and never applied.
CREATE TABLE stock_ledger (
    sku                text        NOT NULL,
    location           text        NOT NULL,
    on_hand            integer     NOT NULL CHECK (on_hand >= 0),
    committed          integer     NOT NULL DEFAULT 0 CHECK (committed >= 0),
    version            bigint      NOT NULL,
    included_order_ids text[]      NOT NULL DEFAULT '{}',
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location)
);

-- Purchase receipts expected in, replaced as a whole by each applied stock.level.
CREATE TABLE stock_incoming (
    sku           text    NOT NULL,
    location      text    NOT NULL,
    expected_date date    NOT NULL,
    quantity      integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (sku, location, expected_date)
);

-- One row per reservation id: the first answer is kept, so a repeated request gets it again.
CREATE TABLE stock_reservations (
    reservation_id   text        PRIMARY KEY,
    channel          text        NOT NULL,
    order_ref        text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('granted', 'refused', 'released')),
    lines            jsonb       NOT NULL,
    granted_lines    jsonb       NOT NULL DEFAULT '[]',
    shortages        jsonb       NOT NULL DEFAULT '{}',
    erp_order_number text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_reservations_erp ON stock_reservations (erp_order_number)
    WHERE erp_order_number IS NOT NULL;

-- Units held per physical SKU; active while the hub (not yet the ERP) accounts for them.
CREATE TABLE stock_reservation_lines (
    reservation_id text    NOT NULL REFERENCES stock_reservations ON DELETE CASCADE,
    sku            text    NOT NULL,
    quantity       integer NOT NULL CHECK (quantity > 0),
    active         boolean NOT NULL DEFAULT true,
    handed_over_at timestamptz,
    PRIMARY KEY (reservation_id, sku)
);
CREATE INDEX stock_reservation_lines_active ON stock_reservation_lines (sku) WHERE active;

-- Product facts the stock rules need, kept as product.upserted passes through.
CREATE TABLE stock_products (
    sku                text    PRIMARY KEY,
    substitution_group text,
    active             boolean NOT NULL DEFAULT true,
    version            bigint  NOT NULL
);
CREATE INDEX stock_products_group ON stock_products (substitution_group)
    WHERE substitution_group IS NOT NULL;

CREATE TABLE stock_kit_components (
    kit_sku       text    NOT NULL,
    component_sku text    NOT NULL,
    quantity      integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (kit_sku, component_sku)
);
CREATE INDEX stock_kit_components_component ON stock_kit_components (component_sku);

-- What each channel was last told, so only changed figures are published.
CREATE TABLE stock_published (
    channel      text        NOT NULL,
    sku          text        NOT NULL,
    available    integer     NOT NULL,
    next_date    date,
    version      bigint      NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, sku)
);
