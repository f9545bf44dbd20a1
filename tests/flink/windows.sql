-- Window aggregations: TUMBLE, HOP, CUMULATE and SESSION window table functions (SESSION rows on
-- their own too); group windows.
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

CREATE TABLE tumbling (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, q INT, total DECIMAL(38, 2),
  lo DECIMAL(10, 2), hi DECIMAL(10, 2), customers BIGINT, dear BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'tumbling');

INSERT INTO tumbling
SELECT window_start, window_end, COUNT(*), SUM(qty), SUM(price), MIN(price), MAX(price),
  COUNT(DISTINCT customer), COUNT(*) FILTER (WHERE price > 50)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;

CREATE TABLE hopping (
  customer BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, q INT
) WITH ('connector' = 'print', 'print-identifier' = 'hopping');

INSERT INTO hopping
SELECT customer, window_start, window_end, COUNT(*), SUM(qty)
FROM TABLE(HOP(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '15' SECOND))
GROUP BY customer, window_start, window_end
HAVING SUM(qty) > 5;

CREATE TABLE cumulating (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, q INT
) WITH ('connector' = 'print', 'print-identifier' = 'cumulating');

INSERT INTO cumulating
SELECT window_start, window_end, COUNT(*), SUM(qty)
FROM TABLE(CUMULATE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECOND))
GROUP BY window_start, window_end;

CREATE TABLE grouped (
  product STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'grouped');

INSERT INTO grouped
SELECT product, TUMBLE_START(ts, INTERVAL '20' SECOND), TUMBLE_END(ts, INTERVAL '20' SECOND), COUNT(*)
FROM orders
GROUP BY product, TUMBLE(ts, INTERVAL '20' SECOND);

CREATE TABLE sessions (
  customer BIGINT, session_start TIMESTAMP(3), session_end TIMESTAMP(3), n BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'sessions');

INSERT INTO sessions
SELECT customer, SESSION_START(ts, INTERVAL '3' SECOND), SESSION_END(ts, INTERVAL '3' SECOND), COUNT(*)
FROM orders
GROUP BY customer, SESSION(ts, INTERVAL '3' SECOND);

CREATE TABLE session_tvf (
  customer BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, q INT
) WITH ('connector' = 'print', 'print-identifier' = 'session_tvf');

INSERT INTO session_tvf
SELECT customer, window_start, window_end, COUNT(*), SUM(qty)
FROM TABLE(SESSION(TABLE orders PARTITION BY customer, DESCRIPTOR(ts), INTERVAL '2' SECOND))
GROUP BY customer, window_start, window_end;

CREATE TABLE session_whole (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, hi DECIMAL(10, 2)
) WITH ('connector' = 'print', 'print-identifier' = 'session_whole');

INSERT INTO session_whole
SELECT window_start, window_end, COUNT(*), MAX(price)
FROM TABLE(SESSION(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY window_start, window_end;

CREATE TABLE session_pairs (
  customer BIGINT, product STRING, window_end TIMESTAMP(3), n BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'session_pairs');

INSERT INTO session_pairs
SELECT customer, product, window_end, COUNT(*)
FROM TABLE(SESSION(TABLE orders PARTITION BY (customer, product), DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end, product, customer;

CREATE TABLE session_rows (
  id BIGINT, customer BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), window_time TIMESTAMP(3)
) WITH ('connector' = 'print', 'print-identifier' = 'session_rows');

INSERT INTO session_rows
SELECT id, customer, window_start, window_end, window_time
FROM TABLE(SESSION(TABLE orders PARTITION BY customer, DESCRIPTOR(ts), INTERVAL '3' SECOND));

-- Sessions found per customer, aggregated per session and product (other keys than the
-- partition's).
CREATE TABLE session_products (
  product STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, q INT
) WITH ('connector' = 'print', 'print-identifier' = 'session_products');

INSERT INTO session_products
SELECT product, window_start, window_end, COUNT(*), SUM(qty)
FROM TABLE(SESSION(TABLE orders PARTITION BY customer, DESCRIPTOR(ts), INTERVAL '4' SECOND))
GROUP BY product, window_start, window_end;

-- Two integer-like keys (INT and DATE): kept inline by the window aggregation.
CREATE TABLE by_qty_day (window_end TIMESTAMP(3), qty INT, day_of DATE, n BIGINT, total DECIMAL(38, 2))
  WITH ('connector' = 'print', 'print-identifier' = 'by_qty_day');

INSERT INTO by_qty_day
SELECT window_end, qty, CAST(ts AS DATE), COUNT(*), SUM(price)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '30' SECOND))
GROUP BY window_start, window_end, qty, CAST(ts AS DATE);

-- Three integer-like keys (BIGINT, INT, DATE): kept inline in four integers.
CREATE TABLE by_customer_qty_day (window_end TIMESTAMP(3), customer BIGINT, qty INT, day_of DATE, n BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'by_customer_qty_day');

INSERT INTO by_customer_qty_day
SELECT window_end, customer, qty, CAST(ts AS DATE), COUNT(*)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '30' SECOND))
GROUP BY window_start, window_end, customer, qty, CAST(ts AS DATE);

-- Integer aggregates kept as integers: NULLs, a FILTER, AVG's integer quotient, a time's
-- MAX; keyed by a string, then by an integer with two aggregates.
CREATE TABLE int_aggs (
  product STRING, window_end TIMESTAMP(3), counted BIGINT, mean INT, latest TIMESTAMP(3), dear INT
) WITH ('connector' = 'print', 'print-identifier' = 'int_aggs');

INSERT INTO int_aggs
SELECT product, window_end, COUNT(qty), AVG(qty), MAX(ts), SUM(qty) FILTER (WHERE price > 50)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY product, window_start, window_end;

CREATE TABLE int_aggs_by_customer (
  customer BIGINT, window_start TIMESTAMP(3), least_cheap INT, last_id BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'int_aggs_by_customer');

INSERT INTO int_aggs_by_customer
SELECT customer, window_start, MIN(qty) FILTER (WHERE price < 50), MAX(id)
FROM TABLE(HOP(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
GROUP BY customer, window_start, window_end;
