-- A line added under an Idempotency-Key (the proxy's dual write of SAP's POST to_Item sends
-- its replay entry's id): a repeat of the key, e.g. a replay after a lost answer, adds nothing.
CREATE TABLE order_line_adds (
    idempotency_key text PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id),
    item_number integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
