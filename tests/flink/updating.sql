-- Updating results: GROUP BY without windows, regular joins, Top-N and deduplication; a change
-- log (Debezium JSON) read as an updating table.
CREATE TABLE orders (
  id BIGINT,
  customer BIGINT,
  product STRING,
  qty INT,
  price DECIMAL(10, 2),
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/orders.csv',
  'format' = 'csv',
  'csv.null-literal' = ''
);

CREATE TABLE customers (
  id BIGINT,
  name STRING,
  country STRING,
  since DATE,
  PRIMARY KEY (id) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = '${data}/customers.csv', 'format' = 'csv');

CREATE TABLE per_customer (
  customer BIGINT, n BIGINT, total DECIMAL(38, 2), biggest INT, products BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'per_customer');

INSERT INTO per_customer
SELECT customer, COUNT(*), SUM(qty * price), MAX(qty), COUNT(DISTINCT product)
FROM orders
GROUP BY customer
HAVING COUNT(*) > 2;

CREATE VIEW enriched AS
SELECT o.id, o.price, c.name, c.country
FROM orders AS o LEFT JOIN customers AS c ON o.customer = c.id;

CREATE TABLE orders_with_names (id BIGINT, name STRING, country STRING, price DECIMAL(10, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'orders_with_names');

INSERT INTO orders_with_names SELECT id, name, country, price FROM enriched WHERE id < 150;

CREATE TABLE per_country (country STRING, n BIGINT, total DECIMAL(38, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'per_country');

INSERT INTO per_country
SELECT c.country, COUNT(o.id), SUM(o.price)
FROM customers AS c FULL JOIN orders AS o ON o.customer = c.id
GROUP BY c.country;

CREATE TABLE top2 (customer BIGINT, id BIGINT, price DECIMAL(10, 2), rn BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'top2');

INSERT INTO top2
SELECT * FROM (
  SELECT customer, id, price,
    ROW_NUMBER() OVER (PARTITION BY customer ORDER BY price DESC, id) AS rn
  FROM orders)
WHERE rn <= 2;

CREATE TABLE first_of_product (product STRING, id BIGINT, ts TIMESTAMP(3))
  WITH ('connector' = 'print', 'print-identifier' = 'first_of_product');

INSERT INTO first_of_product
SELECT product, id, ts FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY product ORDER BY ts ASC) AS rn FROM orders)
WHERE rn = 1;

CREATE TABLE union_counts (kind STRING, n BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'union_counts');

INSERT INTO union_counts
SELECT kind, COUNT(*) FROM (
  SELECT 'cheap' AS kind, id FROM orders WHERE price < 20
  UNION ALL
  SELECT 'many' AS kind, id FROM orders WHERE qty > 6)
GROUP BY kind;

-- A change log read (Debezium JSON: inserts, snapshot reads, updates with the row before,
-- deletions): an updating table, aggregated and joined.
CREATE TABLE order_changes (
  id BIGINT,
  customer BIGINT,
  price DECIMAL(10, 2)
) WITH ('connector' = 'filesystem', 'path' = '${data}/order_changes.json', 'format' = 'debezium-json');

CREATE TABLE change_totals (customer BIGINT, n BIGINT, total DECIMAL(38, 2), hi DECIMAL(10, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'change_totals');
INSERT INTO change_totals
SELECT customer, COUNT(*), SUM(price), MAX(price) FROM order_changes GROUP BY customer;

CREATE TABLE change_names (name STRING, n BIGINT, cheap BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'change_names');
INSERT INTO change_names
SELECT c.name, COUNT(*), COUNT(*) FILTER (WHERE o.price < 50)
FROM order_changes o JOIN customers c ON o.customer = c.id
GROUP BY c.name;

CREATE TABLE dear_changes (id BIGINT, customer BIGINT, price DECIMAL(10, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'dear_changes');
INSERT INTO dear_changes SELECT * FROM order_changes WHERE price > 150;
