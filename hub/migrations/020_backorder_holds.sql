-- A backorder holds every unit it ordered, not only the free ones: until the ERP counts the
-- order, units that arrive (a receipt) go to it rather than on sale on another channel. The
-- units held beyond what was free are its backordered ones: they are not an oversell.
ALTER TABLE stock_reservation_lines
    ADD COLUMN backordered integer NOT NULL DEFAULT 0 CHECK (backordered >= 0),
    ADD CONSTRAINT stock_reservation_lines_backordered_held CHECK (backordered <= quantity);
