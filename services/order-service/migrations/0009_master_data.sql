-- Master data imported from SAP (`PUT /api/v1/master-data`, `orderctl master-data import`):
-- what SAP derives an order's missing values from. A create that leaves out the unit, the
-- currency or the price gets them from here, as SAP would (see order_domain::master_data).

-- Materials (SAP products): base unit (SAP's code, e.g. PC), its ISO code (e.g. PCE), and the
-- net price per base unit with its currency.
CREATE TABLE materials (
    sku             text PRIMARY KEY,
    base_unit       text NOT NULL,
    iso_unit        text,
    price           numeric CHECK (price >= 0 AND scale(price) <= 3),
    price_currency  text CHECK (price_currency ~ '^[A-Z]{3}$'),
    description     text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((price IS NULL) = (price_currency IS NULL))
);

-- The ISO units that differ from their material's base unit: the create path keeps this small
-- set in memory to know when a unit sent may need mapping (see src/master_data.rs).
CREATE INDEX materials_iso_unit_idx ON materials (iso_unit) WHERE iso_unit IS DISTINCT FROM base_unit;

CREATE TABLE customers (
    customer_id     text PRIMARY KEY,
    name            text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A customer's sales areas, each with the currency SAP uses for the customer there.
CREATE TABLE customer_sales_areas (
    customer_id             text NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    sales_organization      text NOT NULL,
    distribution_channel    text NOT NULL,
    division                text NOT NULL,
    currency                text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, sales_organization, distribution_channel, division)
);
