-- The product as the ERP last sent it, so `hub catalog resync` can give a channel that joins
-- (or lost its state) the current catalog without the ERP sending every product again.
-- A product kept before this migration gets its data when the ERP next sends it, at the same
-- version or a newer one; until then a resync leaves it out and says how many it left out.
ALTER TABLE stock_products ADD COLUMN data jsonb;
