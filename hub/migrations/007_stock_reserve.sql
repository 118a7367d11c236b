-- A reservation in one round trip (the order path makes one per order): same rules as before,
-- all lines or none (or what there is, with p_allow_partial), kits reserve their components,
-- exactly once per reservation id (a repeat returns the first answer).
-- p_wanted: {"sku": quantity, ...}. Returns {"state", "granted": [[sku, qty]], "shortages":
-- {"sku": [requested, available]}, "held": [physical SKUs whose units it holds]}.
CREATE FUNCTION stock_reserve(
    p_id text, p_channel text, p_ref text, p_wanted jsonb, p_allow_partial boolean
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_row stock_reservations%ROWTYPE;
    v_kits jsonb;
    v_physical text[];
    v_left jsonb;
    v_granted jsonb := '[]';
    v_short jsonb := '{}';
    v_holds jsonb := '{}';
    v_sku text;
    v_qty integer;
    v_parts jsonb;
    v_can integer;
    v_take integer;
    v_part text;
    v_per integer;
BEGIN
    INSERT INTO stock_reservations (reservation_id, channel, order_ref, state, lines)
    SELECT p_id, p_channel, p_ref, 'refused',
           (SELECT jsonb_agg(jsonb_build_array(key, value::integer) ORDER BY key)
            FROM jsonb_each_text(p_wanted))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO v_row FROM stock_reservations WHERE reservation_id = p_id;
        RETURN jsonb_build_object('state', v_row.state, 'granted', v_row.granted_lines,
                                  'shortages', v_row.shortages, 'held',
                                  (SELECT coalesce(jsonb_agg(sku ORDER BY sku), '[]')
                                   FROM stock_reservation_lines WHERE reservation_id = p_id));
    END IF;

    SELECT coalesce(jsonb_object_agg(kit_sku, comps), '{}') INTO v_kits FROM (
        SELECT kit_sku, jsonb_object_agg(component_sku, quantity) AS comps
        FROM stock_kit_components
        WHERE kit_sku IN (SELECT key FROM jsonb_each(p_wanted)) GROUP BY kit_sku) AS k;
    v_physical := ARRAY(
        SELECT key FROM jsonb_each(p_wanted) WHERE NOT v_kits ? key
        UNION SELECT jsonb_object_keys(value) FROM jsonb_each(v_kits));

    PERFORM stock_lock(v_physical);
    PERFORM 1 FROM stock_ledger WHERE sku = ANY(v_physical) ORDER BY sku, location FOR UPDATE;
    SELECT coalesce(jsonb_object_agg(p, greatest(0, net)), '{}') INTO v_left FROM (
        SELECT p,
               coalesce((SELECT sum(on_hand - committed) FROM stock_ledger WHERE sku = p), 0)
             - coalesce((SELECT sum(quantity) FROM stock_reservation_lines
                         WHERE active AND sku = p), 0) AS net
        FROM unnest(v_physical) AS p) AS t;

    FOR v_sku, v_qty IN SELECT key, value::integer FROM jsonb_each_text(p_wanted) ORDER BY key
    LOOP
        v_parts := coalesce(v_kits -> v_sku, jsonb_build_object(v_sku, 1));
        SELECT min(coalesce((v_left ->> key)::integer, 0) / value::integer) INTO v_can
        FROM jsonb_each_text(v_parts);
        v_take := least(v_can, v_qty);
        IF v_take < v_qty THEN
            v_short := v_short || jsonb_build_object(v_sku, jsonb_build_array(v_qty, v_can));
        END IF;
        IF v_take > 0 THEN
            v_granted := v_granted || jsonb_build_array(jsonb_build_array(v_sku, v_take));
            FOR v_part, v_per IN SELECT key, value::integer FROM jsonb_each_text(v_parts) LOOP
                v_left := jsonb_set(v_left, ARRAY[v_part],
                                    to_jsonb((v_left ->> v_part)::integer - v_take * v_per));
                v_holds := jsonb_set(v_holds, ARRAY[v_part],
                                     to_jsonb(coalesce((v_holds ->> v_part)::integer, 0)
                                              + v_take * v_per));
            END LOOP;
        END IF;
    END LOOP;

    IF jsonb_array_length(v_granted) > 0 AND (p_allow_partial OR v_short = '{}') THEN
        INSERT INTO stock_reservation_lines (reservation_id, sku, quantity)
        SELECT p_id, key, value::integer FROM jsonb_each_text(v_holds) ORDER BY key;
        UPDATE stock_reservations SET state = 'granted', granted_lines = v_granted,
            shortages = v_short, updated_at = now() WHERE reservation_id = p_id;
        RETURN jsonb_build_object('state', 'granted', 'granted', v_granted,
                                  'shortages', v_short, 'held',
                                  (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]')
                                   FROM jsonb_object_keys(v_holds) AS k));
    END IF;
    UPDATE stock_reservations SET state = 'refused', granted_lines = '[]', shortages = v_short,
        updated_at = now() WHERE reservation_id = p_id;
    RETURN jsonb_build_object('state', 'refused', 'granted', '[]'::jsonb, 'shortages', v_short,
                              'held', '[]'::jsonb);
END $$;

-- Many reservations in one round trip, answered in order (first come, first served).
CREATE FUNCTION stock_reserve_many(p_items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_item jsonb;
    v_out jsonb := '[]';
BEGIN
    FOR v_item IN SELECT x FROM jsonb_array_elements(p_items) AS x LOOP
        v_out := v_out || jsonb_build_array(stock_reserve(
            v_item ->> 'id', v_item ->> 'channel', v_item ->> 'ref', v_item -> 'wanted',
            (v_item ->> 'partial')::boolean));
    END LOOP;
    RETURN v_out;
END $$;
