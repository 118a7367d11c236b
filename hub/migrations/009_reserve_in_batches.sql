-- Reservations are now decided a batch at a time in the hub (hub/stock/reservations.py):
-- stock_reserve ran ten statements per order inside PL/pgSQL and cost the database about as
-- much CPU as the whole hub process on the order path. This function takes the locks and
-- reads what the decision needs, once per batch: the kits among the SKUs, the units free per
-- physical SKU (on hand - ERP committed - open hub reservations, at least 0), and the answers
-- already given to any of the reservation ids.
CREATE FUNCTION stock_reserve_prepare(p_ids text[], p_skus text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_kits jsonb;
    v_physical text[];
BEGIN
    SELECT coalesce(jsonb_object_agg(kit_sku, comps), '{}') INTO v_kits FROM (
        SELECT kit_sku, jsonb_object_agg(component_sku, quantity) AS comps
        FROM stock_kit_components WHERE kit_sku = ANY(p_skus) GROUP BY kit_sku) AS k;
    v_physical := ARRAY(
        SELECT s FROM unnest(p_skus) AS s WHERE NOT v_kits ? s
        UNION SELECT jsonb_object_keys(value) FROM jsonb_each(v_kits));
    PERFORM stock_lock(v_physical);
    PERFORM 1 FROM unnest(v_physical) AS p JOIN stock_ledger AS l ON l.sku = p
        ORDER BY l.sku, l.location FOR UPDATE OF l;
    RETURN jsonb_build_object(
        'kits', v_kits,
        'free', (SELECT coalesce(jsonb_object_agg(
                            p, greatest(0, coalesce(l.units, 0) - coalesce(r.held, 0))), '{}')
                 FROM unnest(v_physical) AS p
                 LEFT JOIN LATERAL (SELECT sum(on_hand - committed) AS units FROM stock_ledger
                                    WHERE sku = p) AS l ON true
                 LEFT JOIN LATERAL (SELECT sum(quantity) AS held FROM stock_reservation_lines
                                    WHERE active AND sku = p) AS r ON true),
        'known', (SELECT coalesce(jsonb_object_agg(r.reservation_id, jsonb_build_object(
                             'state', r.state, 'granted', r.granted_lines,
                             'shortages', r.shortages,
                             'held', (SELECT coalesce(jsonb_agg(l.sku ORDER BY l.sku), '[]')
                                      FROM stock_reservation_lines AS l
                                      WHERE l.reservation_id = r.reservation_id))), '{}')
                  FROM unnest(p_ids) AS i JOIN stock_reservations AS r ON r.reservation_id = i));
END $$;

DROP FUNCTION stock_reserve_many(jsonb);
DROP FUNCTION stock_reserve(text, text, text, jsonb, boolean);

-- PL/pgSQL keeps a generic plan after five calls. On a ledger of a few thousand rows the
-- generic plan of ``WHERE sku = ANY($1)`` scans the table and tests every row against the
-- whole array: 133 SKUs against 1,000 rows took 6 ms. Joined to the unnested array, the
-- same read hashes the array (1 ms) or, on bigger tables, looks each SKU up by index.
CREATE OR REPLACE FUNCTION stock_snapshot(p_skus text[], p_lock boolean) RETURNS jsonb
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
    wanted := ARRAY(
        SELECT DISTINCT s FROM unnest(p_skus || ARRAY(SELECT jsonb_object_keys(kits))) AS s);
    physical := ARRAY(
        SELECT s FROM unnest(wanted) AS s WHERE NOT kits ? s
        UNION SELECT c.component_sku FROM stock_kit_components AS c
        WHERE c.kit_sku = ANY(ARRAY(SELECT jsonb_object_keys(kits))));
    IF p_lock THEN
        PERFORM stock_lock(physical);
    END IF;
    RETURN jsonb_build_object(
        'kits', kits,
        'ledger', (SELECT coalesce(jsonb_agg(jsonb_build_array(l.sku, l.location,
                       l.on_hand - l.committed)), '[]')
                   FROM unnest(physical) AS p JOIN stock_ledger AS l ON l.sku = p),
        'reserved', (SELECT coalesce(jsonb_object_agg(sku, held), '{}') FROM (
                       SELECT r.sku, sum(r.quantity) AS held
                       FROM unnest(physical) AS p JOIN stock_reservation_lines AS r
                         ON r.sku = p AND r.active
                       GROUP BY r.sku) AS r),
        'receipts', (SELECT coalesce(jsonb_agg(jsonb_build_array(sku, location, due)), '[]')
                     FROM (SELECT i.sku, i.location, min(i.expected_date) AS due
                           FROM unnest(physical) AS p JOIN stock_incoming AS i ON i.sku = p
                           GROUP BY i.sku, i.location) AS i),
        'published', (SELECT coalesce(jsonb_agg(jsonb_build_array(x.channel, x.sku, x.available,
                          x.next_date, x.version)), '[]')
                      FROM unnest(wanted) AS w JOIN stock_published AS x ON x.sku = w));
END $$;
