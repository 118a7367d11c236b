-- stock_lock and hub_lock_keys were the same function written twice; stock_lock now is
-- hub_lock_keys, so the committer's up-front locks and the stock service's are one mechanism.
CREATE OR REPLACE FUNCTION stock_lock(p_skus text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM hub_lock_keys(p_skus);
END $$;
