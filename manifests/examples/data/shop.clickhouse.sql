-- The demo's sample schema (make demo fills it with `duet mock` and asks it questions).
-- E-commerce: customers place orders of products. ClickHouse declares no foreign keys; the
-- joins are inferred from the column names (orders.customer_id -> customers.id, ...).
CREATE TABLE shop.customers
(
    id UInt32 COMMENT 'Customer number',
    name String COMMENT 'Full name',
    email String COMMENT 'Contact email address',
    country LowCardinality(String) COMMENT 'Country of the billing address',
    segment LowCardinality(String) COMMENT 'Customer segment: consumer or business',
    signup_date Date COMMENT 'Day the customer registered'
)
ENGINE = MergeTree
ORDER BY id
COMMENT 'People and companies with an account in the shop';

CREATE TABLE shop.products
(
    id UInt32 COMMENT 'Product number',
    name String COMMENT 'Product name',
    category LowCardinality(String) COMMENT 'Product category',
    price Decimal(10, 2) COMMENT 'List price in EUR'
)
ENGINE = MergeTree
ORDER BY id
COMMENT 'The catalogue of products for sale';

CREATE TABLE shop.orders
(
    id UInt32 COMMENT 'Order number',
    customer_id UInt32 COMMENT 'The customer who placed the order',
    order_date DateTime COMMENT 'When the order was placed',
    status LowCardinality(String) COMMENT 'pending, completed, cancelled or refunded',
    channel LowCardinality(String) COMMENT 'Where the order was placed: web, mobile or store',
    total_amount Decimal(12, 2) COMMENT 'Order value in EUR including VAT; the revenue of the order'
)
ENGINE = MergeTree
ORDER BY (order_date, id)
COMMENT 'One row per checkout';

CREATE TABLE shop.order_items
(
    id UInt32 COMMENT 'Order line number',
    order_id UInt32 COMMENT 'The order the line belongs to',
    product_id UInt32 COMMENT 'The product on the line',
    quantity UInt16 COMMENT 'Units of the product',
    unit_price Decimal(10, 2) COMMENT 'Price of one unit in EUR when ordered'
)
ENGINE = MergeTree
ORDER BY (order_id, id)
COMMENT 'Order lines: the products each order contains';
