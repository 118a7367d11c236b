-- A channel limited to some locations (a shop that ships from the main warehouse only) must
-- not reserve units that exist only elsewhere: it would sell what its warehouse cannot pick.
-- stock_reserve_prepare now says, per physical SKU, the net units (on hand - ERP committed) per
-- location and the units open reservations hold, instead of their difference summed over all
-- locations; the hub works out what is free from them, and grants such a channel no more than
-- it shows: the net over its locations less every open reservation (which it also subtracts
-- from the figure it shows), and never more than the SKU has free over all locations.
CREATE OR REPLACE FUNCTION stock_reserve_prepare(p_ids text[], p_skus text[]) RETURNS jsonb
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
        'held', (SELECT coalesce(jsonb_object_agg(p, r.held), '{}')
                 FROM unnest(v_physical) AS p
                 JOIN LATERAL (SELECT sum(quantity) AS held FROM stock_reservation_lines
                               WHERE active AND sku = p) AS r ON r.held IS NOT NULL),
        'nets', (SELECT coalesce(jsonb_object_agg(p, l.nets), '{}')
                 FROM unnest(v_physical) AS p
                 JOIN LATERAL (SELECT jsonb_object_agg(location, on_hand - committed) AS nets
                               FROM stock_ledger WHERE sku = p) AS l ON l.nets IS NOT NULL),
        'known', (SELECT coalesce(jsonb_object_agg(r.reservation_id, jsonb_build_object(
                             'state', r.state, 'granted', r.granted_lines,
                             'shortages', r.shortages,
                             'held', (SELECT coalesce(jsonb_agg(l.sku ORDER BY l.sku), '[]')
                                      FROM stock_reservation_lines AS l
                                      WHERE l.reservation_id = r.reservation_id))), '{}')
                  FROM unnest(p_ids) AS i JOIN stock_reservations AS r ON r.reservation_id = i));
END $$;
-- CREATE OR REPLACE dropped the settings of migrations 010 and 012: set them again.
ALTER FUNCTION stock_reserve_prepare(text[], text[])
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
    SET plan_cache_mode = force_generic_plan;
