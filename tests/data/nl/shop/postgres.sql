-- E-commerce, PostgreSQL: the same tables as clickhouse.sql, with declared foreign keys.
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    country text NOT NULL,
    segment text NOT NULL,
    signup_date date NOT NULL
);
COMMENT ON TABLE customers IS 'People and companies with an account in the shop';
COMMENT ON COLUMN customers.id IS 'Customer number';
COMMENT ON COLUMN customers.name IS 'Full name';
COMMENT ON COLUMN customers.email IS 'Contact email address';
COMMENT ON COLUMN customers.country IS 'Country of the billing address';
COMMENT ON COLUMN customers.segment IS 'Customer segment: consumer or business';
COMMENT ON COLUMN customers.signup_date IS 'Day the customer registered';

CREATE TABLE products (
    id integer PRIMARY KEY,
    name text NOT NULL,
    category text NOT NULL,
    price numeric(10, 2) NOT NULL
);
COMMENT ON TABLE products IS 'The catalogue of products for sale';
COMMENT ON COLUMN products.id IS 'Product number';
COMMENT ON COLUMN products.name IS 'Product name';
COMMENT ON COLUMN products.category IS 'Product category';
COMMENT ON COLUMN products.price IS 'List price in EUR';

CREATE TABLE orders (
    id integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    order_date timestamp NOT NULL,
    status text NOT NULL,
    channel text NOT NULL,
    total_amount numeric(12, 2) NOT NULL
);
COMMENT ON TABLE orders IS 'One row per checkout';
COMMENT ON COLUMN orders.id IS 'Order number';
COMMENT ON COLUMN orders.customer_id IS 'The customer who placed the order';
COMMENT ON COLUMN orders.order_date IS 'When the order was placed';
COMMENT ON COLUMN orders.status IS 'pending, completed, cancelled or refunded';
COMMENT ON COLUMN orders.channel IS 'Where the order was placed: web, mobile or store';
COMMENT ON COLUMN orders.total_amount IS 'Order value in EUR including VAT; the revenue of the order';

CREATE TABLE order_items (
    id integer PRIMARY KEY,
    order_id integer NOT NULL REFERENCES orders (id),
    product_id integer NOT NULL REFERENCES products (id),
    quantity smallint NOT NULL,
    unit_price numeric(10, 2) NOT NULL
);
COMMENT ON TABLE order_items IS 'Order lines: the products each order contains';
COMMENT ON COLUMN order_items.id IS 'Order line number';
COMMENT ON COLUMN order_items.order_id IS 'The order the line belongs to';
COMMENT ON COLUMN order_items.product_id IS 'The product on the line';
COMMENT ON COLUMN order_items.quantity IS 'Units of the product';
COMMENT ON COLUMN order_items.unit_price IS 'Price of one unit in EUR when ordered';
