"""Flink SQL's updating join and group-by on the same Debezium files as cdc_revenue; prints the
final table (region,orders,revenue_cents), sorted, folding the changelog Flink emits."""
import sys
from pyflink.table import EnvironmentSettings, TableEnvironment
from pyflink.common import RowKind

customers, orders = sys.argv[1], sys.argv[2]
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("parallelism.default", "1")
env.execute_sql(f"""CREATE TABLE customers (id BIGINT, name STRING, region STRING)
  WITH ('connector'='filesystem','path'='{customers}','format'='debezium-json')""")
env.execute_sql(f"""CREATE TABLE orders (id BIGINT, customer_id BIGINT, amount_cents BIGINT)
  WITH ('connector'='filesystem','path'='{orders}','format'='debezium-json')""")
result = env.execute_sql("""SELECT c.region, COUNT(*) AS orders, SUM(o.amount_cents) AS revenue
  FROM orders AS o JOIN customers AS c ON o.customer_id = c.id GROUP BY c.region""")
table = {}
with result.collect() as rows:
    for row in rows:
        key = (row[0], row[1], row[2])
        kind = row.get_row_kind()
        if kind in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            table[key] = table.get(key, 0) + 1
        else:
            table[key] = table.get(key, 0) - 1
for (region, n, revenue), count in sorted(table.items()):
    assert count in (0, 1), (region, n, revenue, count)
    if count:
        print(f"{region},{n},{revenue}")
