-- Prices the ERP sets ahead (valid_from in the future): kept until they start, then released
-- to the channels and to the order checks. Of the prices in force, the one that started last
-- wins: a promotion scheduled before a later change of the regular price still starts on its
-- day, and ends with the price the ERP schedules for its end.
CREATE TABLE catalog_prices_scheduled (
    sku         text        NOT NULL,
    price_list  text        NOT NULL,
    version     bigint      NOT NULL,
    valid_from  timestamptz NOT NULL,
    event       jsonb       NOT NULL, -- the ERP's event as received: sent on as it is
    routing_key text        NOT NULL,
    PRIMARY KEY (sku, price_list, version)
);
CREATE INDEX catalog_prices_scheduled_due ON catalog_prices_scheduled (valid_from);

-- When the price in force started: its valid_from, or when the hub took it.
ALTER TABLE catalog_prices ADD COLUMN effective_from timestamptz;
UPDATE catalog_prices SET effective_from = updated_at;
ALTER TABLE catalog_prices ALTER COLUMN effective_from SET NOT NULL;
