"""Work orders for inspectors: lifecycle, storage, evidence packs and the service around them."""
