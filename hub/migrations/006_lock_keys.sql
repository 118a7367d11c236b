-- Lock a set of keys (SKUs) for the rest of the transaction, in key order: the committer takes
-- every key a batch will touch up front, so concurrent batches never deadlock on them. Same
-- hash as stock_lock, so the stock service's own (re-entrant) locks are the same locks.
CREATE FUNCTION hub_lock_keys(p_keys text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE k text;
BEGIN
    FOR k IN SELECT DISTINCT u FROM unnest(p_keys) AS u ORDER BY u LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(k, 3517));
    END LOOP;
END $$;
