-- Reservations are now decided a batch at a time in the hub (hub/stock/reservations.py):
-- stock_reserve ran ten statements per order inside PL/pgSQL and cost the database about as
-- much CPU as the whole hub process on the order path. This function takes the locks and
-- reads what the decision needs, once per batch: the kits among the SKUs, the units free per
-- physical SKU (on hand - ERP committed - open hub reservations, at least 0), and the answers
-- already given to any of the reservation ids.
CREATE FUNCTION stock_reserve_prepare(p_ids text[], p_skus text[]) RETURNS jsonb
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
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
    PERFORM 1 FROM stock_ledger WHERE sku = ANY(v_physical) ORDER BY sku, location FOR UPDATE;
    RETURN jsonb_build_object(
        'kits', v_kits,
        'free', (SELECT coalesce(jsonb_object_agg(
                            p, greatest(0, coalesce(l.units, 0) - coalesce(r.held, 0))), '{}')
                 FROM unnest(v_physical) AS p
                 LEFT JOIN (SELECT sku, sum(on_hand - committed) AS units FROM stock_ledger
                            WHERE sku = ANY(v_physical) GROUP BY sku) AS l ON l.sku = p
                 LEFT JOIN (SELECT sku, sum(quantity) AS held FROM stock_reservation_lines
                            WHERE active AND sku = ANY(v_physical) GROUP BY sku) AS r
                        ON r.sku = p),
        'known', (SELECT coalesce(jsonb_object_agg(r.reservation_id, jsonb_build_object(
                             'state', r.state, 'granted', r.granted_lines,
                             'shortages', r.shortages,
                             'held', (SELECT coalesce(jsonb_agg(l.sku ORDER BY l.sku), '[]')
                                      FROM stock_reservation_lines AS l
                                      WHERE l.reservation_id = r.reservation_id))), '{}')
                  FROM stock_reservations AS r WHERE r.reservation_id = ANY(p_ids)));
END $$;

DROP FUNCTION stock_reserve_many(jsonb);
DROP FUNCTION stock_reserve(text, text, text, jsonb, boolean);
