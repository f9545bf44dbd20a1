-- Queries built from others: window Top-N, window joins, an interval join (a regular join
-- with a time range), SELECT DISTINCT, IN (SELECT ...), aggregates without GROUP BY, grouping
-- by an expression, deduplication keeping the last row; OVER aggregations (ROWS and RANGE
-- frames, a named WINDOW); EXISTS and NOT EXISTS with correlated subqueries; NOT IN with NULLs;
-- a cascading window aggregation joined on window bounds, a time bound on a window's end, a
-- join bounded in time on one side, a regular join of append-only tables.
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
  id BIGINT, name STRING, country STRING, since DATE, PRIMARY KEY (id) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = '${data}/customers.csv', 'format' = 'csv');

CREATE TABLE window_top (window_start TIMESTAMP(3), window_end TIMESTAMP(3), customer BIGINT, total DECIMAL(38, 2), rn BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'window_top');
INSERT INTO window_top
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY total DESC, customer) AS rn
  FROM (
    SELECT window_start, window_end, customer, SUM(price) AS total
    FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
    GROUP BY window_start, window_end, customer))
WHERE rn <= 3;

CREATE TABLE distinct_customers (customer BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'distinct_customers');
INSERT INTO distinct_customers SELECT DISTINCT customer FROM orders;

CREATE TABLE overall (n BIGINT, total DECIMAL(38, 2), big BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'overall');
INSERT INTO overall SELECT COUNT(*), SUM(price), SUM(CASE WHEN qty > 5 THEN 1 ELSE 0 END) FROM orders;

CREATE TABLE per_minute (m STRING, n BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'per_minute');
INSERT INTO per_minute SELECT DATE_FORMAT(ts, 'HH:mm'), COUNT(*) FROM orders GROUP BY DATE_FORMAT(ts, 'HH:mm');

CREATE TABLE in_nl (id BIGINT, price DECIMAL(10, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'in_nl');
INSERT INTO in_nl SELECT id, price FROM orders WHERE customer IN (SELECT id FROM customers WHERE country = 'NL');

-- A regular inner join of two append-only tables, no time bound: insert-only rows, late orders
-- and all; a NULL customer matches nothing.
CREATE TABLE order_names (id BIGINT, name STRING, country STRING, price DECIMAL(10, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'order_names');
INSERT INTO order_names SELECT o.id, c.name, c.country, o.price
FROM orders o JOIN customers c ON o.customer = c.id AND o.id > c.id;

CREATE TABLE last_per_customer (customer BIGINT, id BIGINT, price DECIMAL(10, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'last_per_customer');
INSERT INTO last_per_customer SELECT customer, id, price FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY customer ORDER BY ts DESC) AS rn FROM orders) WHERE rn = 1;

CREATE TABLE interval_pairs (a BIGINT, b BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'interval_pairs');
INSERT INTO interval_pairs
SELECT o1.id, o2.id FROM orders o1, orders o2
WHERE o1.customer = o2.customer AND o1.id < o2.id AND o2.ts BETWEEN o1.ts AND o1.ts + INTERVAL '5' SECOND;

CREATE TABLE window_joined (window_end TIMESTAMP(3), customer BIGINT, a BIGINT, b BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'window_joined');
INSERT INTO window_joined
SELECT L.window_end, L.customer, L.n, R.n FROM
  (SELECT window_start, window_end, customer, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND)) WHERE qty > 4 GROUP BY window_start, window_end, customer) L
  JOIN
  (SELECT window_start, window_end, customer, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND)) WHERE qty <= 4 GROUP BY window_start, window_end, customer) R
  ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.customer = R.customer;
-- A window join of window table functions' rows: orders of one customer in the same 5 s window.
CREATE TABLE window_pairs (a BIGINT, b BIGINT, window_end TIMESTAMP(3))
  WITH ('connector' = 'print', 'print-identifier' = 'window_pairs');
INSERT INTO window_pairs
SELECT L.id, R.id, L.window_end FROM
  (SELECT * FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND))) L
  JOIN
  (SELECT * FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND))) R
  ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.customer = R.customer
WHERE L.id < R.id;
CREATE TABLE moving (id BIGINT, customer BIGINT, total DECIMAL(38, 2), n BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'moving');
INSERT INTO moving
SELECT id, customer, SUM(price) OVER w3, COUNT(*) OVER w3 FROM orders
WINDOW w3 AS (PARTITION BY customer ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW);
CREATE TABLE ranged (id BIGINT, product STRING, hi DECIMAL(10, 2), av DECIMAL(38, 6))
  WITH ('connector' = 'print', 'print-identifier' = 'ranged');
INSERT INTO ranged
SELECT id, product, MAX(price) OVER (PARTITION BY product ORDER BY ts RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW),
  AVG(price) OVER (PARTITION BY product ORDER BY ts RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW)
FROM orders;
CREATE TABLE cumulative (id BIGINT, q INT, mn DECIMAL(10, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'cumulative');
INSERT INTO cumulative
SELECT id, SUM(qty) OVER (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), MIN(price) OVER (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
FROM orders;

CREATE TABLE exists_orders (id BIGINT, customer BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'exists_orders');
INSERT INTO exists_orders SELECT o.id, o.customer FROM orders o
WHERE EXISTS (SELECT * FROM customers c WHERE c.id = o.customer AND c.country <> 'FR') AND o.qty > 2;

CREATE TABLE no_customer (id BIGINT, customer BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'no_customer');
INSERT INTO no_customer SELECT id, customer FROM orders o
WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer);

CREATE TABLE big_buyers (id BIGINT, name STRING)
  WITH ('connector' = 'print', 'print-identifier' = 'big_buyers');
INSERT INTO big_buyers SELECT id, name FROM customers c
WHERE EXISTS (SELECT id FROM orders WHERE qty > 7 AND orders.customer = c.id) AND country <> 'DE';

CREATE TABLE not_in_nl (id BIGINT, customer BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'not_in_nl');
INSERT INTO not_in_nl SELECT id, customer FROM orders
WHERE customer NOT IN (SELECT id FROM customers WHERE country = 'NL');

CREATE TABLE not_in_nowhere (id BIGINT, customer BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'not_in_nowhere');
INSERT INTO not_in_nowhere SELECT id, customer FROM orders
WHERE customer NOT IN (SELECT id FROM customers WHERE country = 'XX') AND id < 40;

-- Some of the fig orders have no customer: no id is NOT IN them (unknown), though most ids are
-- no customer's. (Order 0 is added so that the table always prints a row.)
CREATE TABLE not_in_nulls (id BIGINT, qty INT)
  WITH ('connector' = 'print', 'print-identifier' = 'not_in_nulls');
INSERT INTO not_in_nulls SELECT id, qty FROM orders
WHERE id NOT IN (SELECT customer FROM orders WHERE product = 'fig')
UNION ALL SELECT id, qty FROM orders WHERE id = 0;

CREATE TABLE not_in_known (id BIGINT, qty INT)
  WITH ('connector' = 'print', 'print-identifier' = 'not_in_known');
INSERT INTO not_in_known SELECT id, qty FROM orders
WHERE id NOT IN (SELECT customer FROM orders WHERE product = 'fig' AND customer IS NOT NULL) AND id < 30;

-- A cascading window aggregation joined back on the window's bounds (Nexmark q5's shape): per
-- 10 s window, the customers with the most orders.
CREATE TABLE busiest (customer BIGINT, n BIGINT, window_end TIMESTAMP(3))
  WITH ('connector' = 'print', 'print-identifier' = 'busiest');
INSERT INTO busiest
SELECT c.customer, c.n, c.we
FROM (
  SELECT customer, COUNT(*) AS n, window_start AS ws, window_end AS we
  FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
  GROUP BY customer, window_start, window_end
) c
JOIN (
  SELECT MAX(x.n) AS m, x.ws, x.we
  FROM (
    SELECT customer, COUNT(*) AS n, window_start AS ws, window_end AS we
    FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
    GROUP BY customer, window_start, window_end
  ) x
  GROUP BY x.ws, x.we
) w ON c.ws = w.ws AND c.we = w.we AND c.n >= w.m;

-- Orders at their window's highest price, the time bound in WHERE on the window's end
-- (Nexmark q7's shape).
CREATE TABLE dearest (id BIGINT, price DECIMAL(10, 2), ts TIMESTAMP(3))
  WITH ('connector' = 'print', 'print-identifier' = 'dearest');
INSERT INTO dearest
SELECT o.id, o.price, o.ts
FROM orders o
JOIN (
  SELECT MAX(price) AS maxprice, window_end AS we
  FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) m ON o.price = m.maxprice
WHERE o.ts BETWEEN m.we - INTERVAL '10' SECOND AND m.we;

-- A join bounded in time on one side only: later orders of the same customer.
CREATE TABLE later_orders (a BIGINT, b BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'later_orders');
INSERT INTO later_orders
SELECT x.id, y.id FROM orders x, orders y
WHERE x.customer = y.customer AND y.ts > x.ts AND x.product = 'kiwi fruit' AND y.qty = 8;
