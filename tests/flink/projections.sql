-- Projections and filters: scalar functions, NULLs, CASE, CAST, strings, dates.
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

CREATE TABLE strings (
  id BIGINT, product STRING, len INT, up STRING, low STRING, sub STRING, cat STRING, pos INT,
  trimmed STRING, replaced STRING, filled STRING, shout STRING
) WITH ('connector' = 'print', 'print-identifier' = 'strings');

INSERT INTO strings
SELECT id, product, CHAR_LENGTH(product), UPPER(product), LOWER(product),
  SUBSTRING(product FROM 2 FOR 3), CONCAT(product, '-', CAST(qty AS STRING)),
  POSITION('p' IN product), TRIM(BOTH 'e' FROM product), REPLACE(product, 'p', 'P'),
  COALESCE(product, 'none'), product || '!'
FROM orders
WHERE id % 3 = 0;

CREATE TABLE numbers (
  id BIGINT, customer BIGINT, total DECIMAL(20, 2), band STRING, cents INT, rounded DECIMAL(10, 1),
  half DOUBLE, neg BIGINT, small BOOLEAN, m INT
) WITH ('connector' = 'print', 'print-identifier' = 'numbers');

INSERT INTO numbers
SELECT id, customer, qty * price,
  CASE WHEN price > 50 THEN 'high' WHEN price > 10 THEN 'mid' ELSE 'low' END,
  CAST(price * 100 AS INT), ROUND(price, 1), CAST(price AS DOUBLE) / 2, -customer,
  qty < 3 AND customer IS NOT NULL, MOD(qty, 4)
FROM orders
WHERE customer IS NULL OR customer IN (1, 2, 3) OR price BETWEEN 20 AND 30;

CREATE TABLE times (
  id BIGINT, ymd STRING, hhmm STRING, sec BIGINT, hr BIGINT, later TIMESTAMP(3), dt DATE
) WITH ('connector' = 'print', 'print-identifier' = 'times');

INSERT INTO times
SELECT id, DATE_FORMAT(ts, 'yyyy-MM-dd'), DATE_FORMAT(ts, 'HH:mm'), EXTRACT(SECOND FROM ts),
  EXTRACT(HOUR FROM ts), ts + INTERVAL '90' MINUTE, CAST(ts AS DATE)
FROM orders
WHERE product LIKE '%e%' AND id < 200;
