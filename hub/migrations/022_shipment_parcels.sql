-- How many parcels the warehouse packed a shipment in, so a shipment request sent again after
-- a carrier timeout asks for as many labels as the first (it asked for one).
ALTER TABLE order_shipments ADD COLUMN parcels integer NOT NULL DEFAULT 1 CHECK (parcels > 0);
