-- Window aggregations: TUMBLE, HOP, CUMULATE window table functions; group windows.
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
