-- Orders and their items. Money and quantities are exact decimals that keep the scale the
-- caller sent (at most 3 places, SAP's scale), never floats.

CREATE SEQUENCE order_number_seq AS bigint START WITH 8000000000 MINVALUE 1 MAXVALUE 9999999999;

CREATE TABLE orders (
    id                      uuid PRIMARY KEY,
    order_number            text NOT NULL CHECK (order_number ~ '^[0-9]{10}$'),
    status                  text NOT NULL CHECK (status IN
                                ('created', 'confirmed', 'shipped', 'delivered', 'cancelled', 'voided')),
    status_reason           text,
    version                 bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    customer_id             text NOT NULL,
    customer_reference      text,
    currency                text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    sales_organization      text,
    distribution_channel    text,
    division                text,
    order_type              text,
    requested_delivery_date date,
    total_net_amount        numeric CHECK (total_net_amount >= 0 AND scale(total_net_amount) <= 3),
    specifications          jsonb NOT NULL DEFAULT '{}'::jsonb,
    sap_order_number        text,
    -- The request that created the order: its correlation id (unique, so a replayed request can
    -- never make a second order), the client's Idempotency-Key when sent, and a hash of the
    -- validated body to tell a true replay from a reused key.
    correlation_id          text NOT NULL,
    idempotency_key         text,
    request_hash            text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX orders_order_number_key ON orders (order_number);
CREATE UNIQUE INDEX orders_correlation_id_key ON orders (correlation_id);
CREATE UNIQUE INDEX orders_idempotency_key_key ON orders (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX orders_sap_order_number_key ON orders (sap_order_number) WHERE sap_order_number IS NOT NULL;
-- Keyset pagination is (created_at, id) descending, alone or after an equality filter.
CREATE INDEX orders_created_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_customer_created_idx ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_status_created_idx ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_customer_reference_idx ON orders (customer_reference, created_at DESC, id DESC)
    WHERE customer_reference IS NOT NULL;

CREATE TABLE order_items (
    order_id        uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    item_number     integer NOT NULL CHECK (item_number > 0),
    sku             text NOT NULL,
    quantity        numeric NOT NULL CHECK (quantity > 0 AND scale(quantity) <= 3),
    unit            text NOT NULL,
    unit_price      numeric CHECK (unit_price >= 0 AND scale(unit_price) <= 3),
    net_amount      numeric CHECK (net_amount >= 0 AND scale(net_amount) <= 3),
    specifications  jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (order_id, item_number)
);

CREATE INDEX order_items_sku_idx ON order_items (sku);

-- Transactional outbox: one row per order change, inserted in the same transaction as the
-- change, published to Kafka by the relay.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    aggregate_id    uuid NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    correlation_id  text,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);

CREATE INDEX outbox_pending_idx ON outbox (aggregate_id, id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
