-- A stock batch applies its levels and reads the snapshot of the SKUs they changed in one
-- round trip instead of two. The batch transaction is the hub's one serial stage: every
-- round trip in it is paid again by each message queued behind it (bench/findings.md).
-- The snapshot covers the SKUs of the levels that applied (none applied: no snapshot), read
-- after they applied, exactly as the two calls in a row read it.

CREATE FUNCTION stock_apply_levels_snapshot(p_levels jsonb, p_now timestamptz, p_lock boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    applied boolean[];
    changed text[];
BEGIN
    applied := stock_apply_levels(p_levels, p_now);
    SELECT array_agg(DISTINCT e.doc ->> 'sku') INTO changed
    FROM jsonb_array_elements(p_levels) WITH ORDINALITY AS e(doc, pos)
    WHERE applied[e.pos];
    RETURN jsonb_build_object(
        'applied', to_jsonb(coalesce(applied, '{}')),
        'snapshot', CASE WHEN changed IS NULL THEN NULL ELSE stock_snapshot(changed, p_lock) END);
END $$;
