-- Indexes behind the order search (POST /api/v1/orders/search, the SAP face's reads in the
-- proxy's events and retired modes). The daily filters already had theirs (0001): customer
-- (orders_customer_created_idx), customer reference (orders_customer_reference_idx), creation
-- date ranges (orders_created_idx) and status (orders_status_created_idx). Added here:

-- Last change (SAP LastChangeDateTime: "what changed since my last poll").
CREATE INDEX orders_updated_idx ON orders (updated_at DESC, id DESC);

-- The number SAP knows the order by (SAP SalesOrder: key reads, SalesOrder ranges and the
-- default key order of a list).
CREATE INDEX orders_sales_order_number_idx ON orders ((COALESCE(sap_order_number, order_number)));

-- The derived rejection and processing statuses ask whether an order has a rejected line.
CREATE INDEX order_items_rejected_idx ON order_items (order_id) WHERE rejection_reason IS NOT NULL;
