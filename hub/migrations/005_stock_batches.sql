-- A batch of stock levels in one round trip: every SKU locked first, in SKU order (so batches
-- never deadlock each other), then each level applied in arrival order. Returns, per input
-- position, whether it was applied (false = stale).
CREATE FUNCTION stock_apply_levels(p_levels jsonb, p_now timestamptz) RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    lvl jsonb;
    applied boolean[] := '{}';
BEGIN
    PERFORM stock_lock(ARRAY(SELECT x ->> 'sku' FROM jsonb_array_elements(p_levels) AS x));
    FOR lvl IN SELECT x FROM jsonb_array_elements(p_levels) AS x LOOP
        applied := applied || stock_apply_level(
            lvl ->> 'sku', lvl ->> 'location', (lvl ->> 'on_hand')::integer,
            (lvl ->> 'committed')::integer, (lvl ->> 'version')::bigint,
            ARRAY(SELECT jsonb_array_elements_text(lvl -> 'included')),
            ARRAY(SELECT jsonb_array_elements_text(lvl -> 'dates'))::date[],
            ARRAY(SELECT jsonb_array_elements_text(lvl -> 'quantities'))::integer[],
            p_now);
    END LOOP;
    RETURN applied;
END $$;
