-- Prices the ERP sets ahead (valid_from in the future): kept until they start, then released
-- to the channels and to the order checks, if no newer version of the price was taken
-- meanwhile (the latest version wins, as for every price).
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
