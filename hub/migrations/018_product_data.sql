-- The product as the ERP last sent it, so `hub catalog resync` can give a channel that joins
-- (or lost its state) the current catalog without the ERP sending every product again.
-- Products kept before this migration have no data until the ERP next sends them.
ALTER TABLE stock_products ADD COLUMN data jsonb;
