"""Runs Flink SQL scripts on Apache Flink (PyFlink's local mini-cluster), as `tidal sql` runs them.

    python run_flink.py [NAME=VALUE ...] SCRIPT.sql [SCRIPT.sql ...]

`${NAME}` in a script is replaced by VALUE (what `tidal sql --var NAME=VALUE` does). Each script
gets a table environment of its own; its statements run in order and all its INSERT INTOs run as
one job (one statement set), as in Tidal. Print tables write Flink's own `+I[...]` lines on this
process's stdout (give each a 'print-identifier' to tell them apart). Parallelism 1, streaming
mode. Used by tests/flink_sql.rs to compare Tidal's rows with Flink's.
"""
import re
import sys


def statements(text):
    """The script's statements, split at semicolons outside strings, quoted names and comments."""
    out, cur, i, n = [], [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "'`\"":
            j = i + 1
            while j < n:
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            cur.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ";":
            out.append("".join(cur))
            cur = []
            i += 1
        else:
            cur.append(c)
            i += 1
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


def run(script, values):
    with open(script) as f:
        text = f.read()
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)

    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", "1")
    inserts = env.create_statement_set()
    any_insert = False
    for s in statements(text):
        if re.match(r"(?is)^insert\s", s):
            inserts.add_insert_sql(s)
            any_insert = True
        else:
            env.execute_sql(s)
    if any_insert:
        inserts.execute().wait()


def main():
    args = sys.argv[1:]
    values = dict(a.split("=", 1) for a in args if "=" in a)
    for script in (a for a in args if "=" not in a):
        run(script, values)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
