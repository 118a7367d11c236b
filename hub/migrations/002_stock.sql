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
CREATE INDEX stock_published_sku ON stock_published (sku);

-- The hot path in one round trip each (a stock.level is applied and measured 500+ times/s).

-- Serialise work on SKUs across transactions, in SKU order (held to commit, re-entrant).
CREATE FUNCTION stock_lock(p_skus text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE s text;
BEGIN
    FOR s IN SELECT DISTINCT u FROM unnest(p_skus) AS u ORDER BY u LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(s, 3517));
    END LOOP;
END $$;

-- Apply a level unless stale (false); replace its receipts; hand included orders to the ERP.
CREATE FUNCTION stock_apply_level(
    p_sku text, p_location text, p_on_hand integer, p_committed integer, p_version bigint,
    p_included text[], p_dates date[], p_quantities integer[], p_now timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stock_lock(ARRAY[p_sku]);
    INSERT INTO stock_ledger AS l
        (sku, location, on_hand, committed, version, included_order_ids, updated_at)
    VALUES (p_sku, p_location, p_on_hand, p_committed, p_version, p_included, p_now)
    ON CONFLICT (sku, location) DO UPDATE SET
        on_hand = EXCLUDED.on_hand, committed = EXCLUDED.committed,
        version = EXCLUDED.version, included_order_ids = EXCLUDED.included_order_ids,
        updated_at = EXCLUDED.updated_at
    WHERE l.version < EXCLUDED.version;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM stock_incoming WHERE sku = p_sku AND location = p_location;
    IF cardinality(p_dates) > 0 THEN
        INSERT INTO stock_incoming (sku, location, expected_date, quantity)
        SELECT p_sku, p_location, d, sum(q) FROM unnest(p_dates, p_quantities) AS t(d, q)
        GROUP BY d;
    END IF;
    IF cardinality(p_included) > 0 THEN
        UPDATE stock_reservation_lines AS rl SET active = false, handed_over_at = p_now
        FROM stock_reservations AS r
        WHERE rl.reservation_id = r.reservation_id AND rl.active AND rl.sku = p_sku
          AND r.erp_order_number = ANY(p_included);
    END IF;
    RETURN true;
END $$;

-- Everything needed to compute figures of p_skus and the kits around them, as one document.
CREATE FUNCTION stock_snapshot(p_skus text[], p_lock boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    kits jsonb;
    wanted text[];
    physical text[];
BEGIN
    SELECT coalesce(jsonb_object_agg(kit_sku, comps), '{}') INTO kits FROM (
        SELECT kit_sku, jsonb_object_agg(component_sku, quantity) AS comps
        FROM stock_kit_components WHERE kit_sku IN (
            SELECT kit_sku FROM stock_kit_components
            WHERE component_sku = ANY(p_skus) OR kit_sku = ANY(p_skus))
        GROUP BY kit_sku) AS k;
    wanted := p_skus || ARRAY(SELECT jsonb_object_keys(kits));
    physical := ARRAY(
        SELECT s FROM unnest(wanted) AS s WHERE NOT kits ? s
        UNION SELECT c.component_sku FROM stock_kit_components AS c
        WHERE c.kit_sku = ANY(ARRAY(SELECT jsonb_object_keys(kits))));
    IF p_lock THEN
        PERFORM stock_lock(physical);
    END IF;
    RETURN jsonb_build_object(
        'kits', kits,
        'ledger', (SELECT coalesce(jsonb_agg(jsonb_build_array(sku, location,
                       on_hand - committed)), '[]') FROM stock_ledger WHERE sku = ANY(physical)),
        'reserved', (SELECT coalesce(jsonb_object_agg(sku, held), '{}') FROM (
                       SELECT sku, sum(quantity) AS held FROM stock_reservation_lines
                       WHERE active AND sku = ANY(physical) GROUP BY sku) AS r),
        'receipts', (SELECT coalesce(jsonb_agg(jsonb_build_array(sku, location, due)), '[]')
                     FROM (SELECT sku, location, min(expected_date) AS due FROM stock_incoming
                           WHERE sku = ANY(physical) GROUP BY sku, location) AS i),
        'published', (SELECT coalesce(jsonb_agg(jsonb_build_array(channel, sku, available,
                          next_date, version)), '[]')
                      FROM stock_published WHERE sku = ANY(wanted)));
END $$;
