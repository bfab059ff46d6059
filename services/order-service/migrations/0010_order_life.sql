-- The order's life after its create: lines rejected with SAP's reason code, and SAP's billing
-- reported back as a status.

-- A rejected line stays on the order (SAP keeps it, with SalesDocumentRjcnReason) but no
-- longer counts towards total_net_amount. NULL: the line is open.
ALTER TABLE order_items
    ADD COLUMN rejection_reason text CHECK (rejection_reason ~ '^[A-Z0-9]{2}$');

-- 'billed': SAP created the billing document (reported by sap-sync).
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN
    ('created', 'confirmed', 'shipped', 'delivered', 'billed', 'cancelled', 'voided'));

-- The highest item number an order ever had: a line added after a removal gets a new number
-- (max + 10), never the removed line's, so a consumer matching lines by item number (sap-sync,
-- SAP's own SalesOrderItem) never mistakes a new line for the removed one.
ALTER TABLE orders ADD COLUMN last_item_number integer;
