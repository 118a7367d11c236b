-- The snapshot carries the units open backorders hold beyond the stock (per SKU), so a stock
-- level that brings units in can count them as covered: a backorder's units stay
-- "backordered" (not an oversell) only while the stock does not cover them. Once stock
-- arrived, a later drop below the hub's holds is an oversell again, which the fixed count
-- taken at the grant hid. It also saves the oversell check its own read.
-- CREATE OR REPLACE drops the function's settings, so they are set again below (010, 012).
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
        'backordered', (SELECT coalesce(jsonb_object_agg(sku, units), '{}') FROM (
                       SELECT r.sku, sum(r.backordered) AS units
                       FROM unnest(physical) AS p JOIN stock_reservation_lines AS r
                         ON r.sku = p AND r.active AND r.backordered > 0
                       GROUP BY r.sku) AS r),
        'receipts', (SELECT coalesce(jsonb_agg(jsonb_build_array(i.sku, i.location,
                         i.expected_date, i.quantity)), '[]')
                     FROM unnest(physical) AS p JOIN stock_incoming AS i ON i.sku = p),
        'published', (SELECT coalesce(jsonb_agg(jsonb_build_array(x.channel, x.sku, x.available,
                          x.next_date, x.version)), '[]')
                      FROM unnest(wanted) AS w JOIN stock_published AS x ON x.sku = w),
        'inactive', (SELECT coalesce(jsonb_agg(d.sku), '[]')
                     FROM unnest(wanted) AS w JOIN stock_products AS d
                       ON d.sku = w AND NOT d.active));
END $$;
ALTER FUNCTION stock_snapshot(text[], boolean)
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION stock_snapshot(text[], boolean) SET plan_cache_mode = force_generic_plan;
