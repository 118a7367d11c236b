-- A hold ends when the stock source counts the order (a level naming it in
-- included_order_ids) or, for a source that names no orders (a warehouse, a CSV feed, Odoo's
-- quants), once its units have left: the carrier's shipment marks them shipped, and the
-- first level of the SKU measured after that counts them out of on hand, so the hold on
-- them ends there. Before, such a hold never ended and every sale lowered what the channels
-- were shown for good.
ALTER TABLE stock_reservation_lines
    ADD COLUMN shipped integer NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    ADD COLUMN shipped_at timestamptz,
    -- Where they left from, when the order's channel sells from one location (else NULL).
    ADD COLUMN shipped_from text,
    -- Units counted out so far (taken off quantity): what a later keep_only keeps is less them.
    ADD COLUMN counted_out integer NOT NULL DEFAULT 0 CHECK (counted_out >= 0),
    ADD CONSTRAINT stock_reservation_lines_shipped_held CHECK (shipped <= quantity);
-- Each batch of levels looks for these; a popular SKU has many open holds, few shipped ones.
CREATE INDEX stock_reservation_lines_shipped ON stock_reservation_lines (sku)
    WHERE active AND shipped > 0;

CREATE OR REPLACE FUNCTION stock_apply_levels(p_levels jsonb, p_now timestamptz) RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    applied boolean[];
    last_applied bigint[];  -- per (sku, location): the position of its last applied level
    any_applied bigint[];
    winners jsonb;  -- the levels at those positions: what each (sku, location) ends as
BEGIN
    PERFORM hub_lock_keys(ARRAY(SELECT x ->> 'sku' FROM jsonb_array_elements(p_levels) AS x));
    WITH lv AS (
        SELECT e.pos, e.doc ->> 'sku' AS sku, e.doc ->> 'location' AS location,
               (e.doc ->> 'version')::bigint AS version
        FROM jsonb_array_elements(p_levels) WITH ORDINALITY AS e(doc, pos)
    ), judged AS (
        SELECT lv.pos, lv.sku, lv.location,
               (lv.version > greatest(l.version, max(lv.version) OVER earlier)) IS NOT FALSE AS ok
        FROM lv LEFT JOIN stock_ledger AS l ON l.sku = lv.sku AND l.location = lv.location
        WINDOW earlier AS (PARTITION BY lv.sku, lv.location ORDER BY lv.pos
                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ), ranked AS (
        SELECT judged.*,
               max(pos) FILTER (WHERE ok) OVER (PARTITION BY sku, location) AS last_ok
        FROM judged
    )
    SELECT array_agg(ok ORDER BY pos),
           coalesce(array_agg(pos) FILTER (WHERE pos = last_ok), '{}'),
           coalesce(array_agg(pos) FILTER (WHERE ok), '{}')
    INTO applied, last_applied, any_applied
    FROM ranked;
    IF cardinality(last_applied) = 0 THEN
        RETURN coalesce(applied, '{}');
    END IF;
    winners := (SELECT jsonb_agg(p_levels -> (pos - 1)::integer) FROM unnest(last_applied) AS pos);

    INSERT INTO stock_ledger AS l
        (sku, location, on_hand, committed, version, included_order_ids, updated_at)
    SELECT w.doc ->> 'sku', w.doc ->> 'location', (w.doc ->> 'on_hand')::integer,
           (w.doc ->> 'committed')::integer, (w.doc ->> 'version')::bigint,
           ARRAY(SELECT jsonb_array_elements_text(w.doc -> 'included')), p_now
    FROM jsonb_array_elements(winners) AS w(doc)
    ON CONFLICT (sku, location) DO UPDATE SET
        on_hand = EXCLUDED.on_hand, committed = EXCLUDED.committed,
        version = EXCLUDED.version, included_order_ids = EXCLUDED.included_order_ids,
        updated_at = EXCLUDED.updated_at
    WHERE l.version < EXCLUDED.version;

    DELETE FROM stock_incoming AS i
    USING jsonb_array_elements(winners) AS w(doc)
    WHERE i.sku = w.doc ->> 'sku' AND i.location = w.doc ->> 'location';

    INSERT INTO stock_incoming (sku, location, expected_date, quantity)
    SELECT w.doc ->> 'sku', w.doc ->> 'location', r.due::date, sum(r.quantity::integer)
    FROM jsonb_array_elements(winners) AS w(doc),
         ROWS FROM (jsonb_array_elements_text(w.doc -> 'dates'),
                    jsonb_array_elements_text(w.doc -> 'quantities')) AS r(due, quantity)
    GROUP BY 1, 2, 3;

    UPDATE stock_reservation_lines AS rl SET active = false, handed_over_at = p_now
    FROM stock_reservations AS r,
         (SELECT DISTINCT t.doc ->> 'sku' AS sku, o.number
          FROM (SELECT p_levels -> (pos - 1)::integer AS doc FROM unnest(any_applied) AS pos) AS t,
               jsonb_array_elements_text(t.doc -> 'included') AS o(number)) AS h
    WHERE rl.reservation_id = r.reservation_id AND rl.active AND rl.sku = h.sku
      AND r.erp_order_number = h.number;

    -- Units that left before the source measured a level of their SKU (its CloudEvent time,
    -- 'at'), of the location they left from where that is known, are in its on hand no
    -- more: their hold ends, the rest of a hold stays. Ten minutes after the shipment any
    -- such level will do, so a source whose clock runs behind does not keep the hold for good.
    WITH m AS (
        SELECT t.doc ->> 'sku' AS sku, t.doc ->> 'location' AS location,
               least(max(coalesce((t.doc ->> 'at')::timestamptz, p_now)), p_now) AS at
        FROM (SELECT p_levels -> (pos - 1)::integer AS doc FROM unnest(any_applied) AS pos) AS t
        GROUP BY 1, 2)
    UPDATE stock_reservation_lines AS rl
    SET quantity = CASE WHEN rl.quantity > rl.shipped THEN rl.quantity - rl.shipped
                        ELSE rl.quantity END,
        backordered = CASE WHEN rl.quantity > rl.shipped
                           THEN least(rl.backordered, rl.quantity - rl.shipped)
                           ELSE rl.backordered END,
        active = rl.quantity > rl.shipped,
        handed_over_at = CASE WHEN rl.quantity > rl.shipped THEN rl.handed_over_at ELSE p_now END,
        counted_out = rl.counted_out + rl.shipped, shipped = 0, shipped_at = NULL,
        shipped_from = NULL
    WHERE rl.active AND rl.shipped > 0 AND rl.sku IN (SELECT sku FROM m)
      AND EXISTS (SELECT 1 FROM m
                  WHERE m.sku = rl.sku
                    AND (rl.shipped_from IS NULL OR m.location = rl.shipped_from)
                    AND (rl.shipped_at < m.at OR rl.shipped_at < p_now - interval '10 minutes'));
    RETURN applied;
END $$;


-- CREATE OR REPLACE dropped the function's settings (migrations 010 and 012): set them again.
ALTER FUNCTION stock_apply_levels(jsonb, timestamptz)
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION stock_apply_levels(jsonb, timestamptz) SET plan_cache_mode = force_generic_plan;
