-- Units per line the channel or the ERP took off an order while the rest of it went on (a
-- marketplace buyer cancelling some items): the order then waits for, picks and ships only
-- what is left.
ALTER TABLE orders ADD COLUMN withdrawn jsonb NOT NULL DEFAULT '{}'::jsonb;
