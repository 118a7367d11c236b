-- Units a channel withdrew from an order before the ERP had made its sales order: the ERP is
-- told of them, with its number, once it has (and not of units it withdrew itself).
ALTER TABLE orders ADD COLUMN withdrawn_untold jsonb NOT NULL DEFAULT '{}'::jsonb;
