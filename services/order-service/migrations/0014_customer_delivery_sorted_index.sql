-- A shop's daily list in SAP's order: one customer's orders from a delivery date, sorted by
-- that date and then by SAP's key (`SoldToParty eq '...' and RequestedDeliveryDate ge
-- datetime'...'&$orderby=RequestedDeliveryDate,SalesOrder&$top=20&$inlinecount=allpages`).
-- The search sorts ascending with NULLS FIRST (OData's order), and its tie-breakers are the
-- sales order number SAP knows (`COALESCE(sap_order_number, order_number)`) and the id. 0013's
-- index `(customer_id, requested_delivery_date, id)` sorts NULLS LAST and has no number, so
-- PostgreSQL fetched every match (about 5 900 of a customer's 10 000 orders) and sorted them:
-- 82 ms per list at 100 000 orders. This index hands the window over in order (1 ms), and
-- `status` included lets `$inlinecount`'s count (`status <> 'voided'`) read the index alone.
CREATE INDEX orders_customer_delivery_sorted_idx ON orders (
    customer_id,
    requested_delivery_date NULLS FIRST,
    (COALESCE(sap_order_number, order_number)) NULLS FIRST,
    id
) INCLUDE (status);
DROP INDEX IF EXISTS orders_customer_delivery_idx;
