-- ARRAY and ROW values: read from JSON, built, indexed, taken apart, grouped, unnested (also
-- WITH ORDINALITY).
CREATE TABLE events (
  id BIGINT,
  tags ARRAY<STRING>,
  scores ARRAY<INT>,
  owner ROW<name STRING, age INT, home ROW<city STRING>>,
  items ARRAY<ROW<sku STRING, qty INT>>,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/events.json',
  'format' = 'json'
);

CREATE TABLE parts (
  id BIGINT, tags ARRAY<STRING>, owner ROW<name STRING, age INT, home ROW<city STRING>>,
  n INT, first_tag STRING, third_score INT, name STRING, city STRING, older INT,
  made ARRAY<BIGINT>, pair ROW<a BIGINT, b STRING>, lonely STRING
) WITH ('connector' = 'print', 'print-identifier' = 'parts');

INSERT INTO parts
SELECT id, tags, owner, CARDINALITY(tags), tags[1], scores[3], owner.name, e.owner.home.city,
  owner.age + 1, ARRAY[id, id * 2, CARDINALITY(scores)], ROW(id, owner.name),
  CASE WHEN CARDINALITY(tags) = 1 THEN ELEMENT(tags) END
FROM events e
WHERE id % 4 <> 1;

CREATE TABLE by_owner (name STRING, city STRING, events BIGINT, tags INT, most_items INT)
  WITH ('connector' = 'print', 'print-identifier' = 'by_owner');

INSERT INTO by_owner
SELECT owner.name, owner.home.city, COUNT(*), SUM(CARDINALITY(tags)), MAX(CARDINALITY(items))
FROM events
GROUP BY owner.name, owner.home.city;

CREATE TABLE by_row (owner ROW<name STRING, age INT, home ROW<city STRING>>, events BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'by_row');

INSERT INTO by_row
SELECT owner, COUNT(*) FROM events WHERE owner.age > 60 OR owner IS NULL GROUP BY owner;

CREATE TABLE tag_counts (tag STRING, c BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'tag_counts');

INSERT INTO tag_counts
SELECT tag, COUNT(*) FROM events CROSS JOIN UNNEST(tags) AS t(tag) GROUP BY tag;

CREATE TABLE item_rows (id BIGINT, sku STRING, qty INT, tag STRING)
  WITH ('connector' = 'print', 'print-identifier' = 'item_rows');

INSERT INTO item_rows
SELECT e.id, i.sku, i.qty, t.tag
FROM events e
  CROSS JOIN UNNEST(e.items) AS i(sku, qty)
  LEFT JOIN UNNEST(e.tags) AS t(tag) ON TRUE
WHERE e.id < 60;

CREATE VIEW tagged AS
SELECT e.ts, t.tag FROM events AS e, UNNEST(e.tags) AS t(tag);

CREATE TABLE tag_windows (window_end TIMESTAMP(3), tag STRING, c BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'tag_windows');

INSERT INTO tag_windows
SELECT window_end, tag, COUNT(*)
FROM TABLE(TUMBLE(TABLE tagged, DESCRIPTOR(ts), INTERVAL '30' SECOND))
GROUP BY window_start, window_end, tag;

CREATE TABLE csv_events (id BIGINT, tags ARRAY<STRING>, pair ROW<n INT, city STRING>) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/events.csv',
  'format' = 'csv'
);

CREATE TABLE from_csv (id BIGINT, tags ARRAY<STRING>, n INT, pair ROW<n INT, city STRING>, city STRING)
  WITH ('connector' = 'print', 'print-identifier' = 'from_csv');

INSERT INTO from_csv SELECT id, tags, CARDINALITY(tags), pair, pair.city FROM csv_events;

CREATE TABLE positions (id BIGINT, tag STRING, pos INT, sku STRING, qty INT, n INT)
  WITH ('connector' = 'print', 'print-identifier' = 'positions');

INSERT INTO positions
SELECT e.id, t.tag, t.pos, i.sku, i.qty, i.n
FROM events e
  LEFT JOIN UNNEST(e.tags) WITH ORDINALITY AS t(tag, pos) ON TRUE
  CROSS JOIN UNNEST(e.items) WITH ORDINALITY AS i(sku, qty, n)
WHERE e.id < 80;
