-- The carrier's label for a shipment, kept with the parcel: the warehouse prints it, an
-- operator finds it again with `hub orders show`, and a re-sent shipment.created carries it.
ALTER TABLE order_shipments ADD COLUMN label_url text;
