"""A live demo: simulated ERP, shops, marketplace, warehouse and carrier trading through the hub."""
