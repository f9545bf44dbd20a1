//! Running `tidal sql` scripts and reading what their print tables wrote.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Shape, launch_once, launcher, wait_with_limit};

/// Runs `tidal sql SCRIPT` on `shape`; returns (exit success, stdout, stderr).
pub fn tidal_sql(script: &Path, shape: Shape) -> (bool, String, String) {
    tidal_sql_with(script, &[], shape)
}

/// Runs `tidal sql SCRIPT ARGS` on `shape` (ARGS: `--var NAME=VALUE`, job flags); returns (exit
/// success, stdout, stderr).
pub fn tidal_sql_with(script: &Path, args: &[String], shape: Shape) -> (bool, String, String) {
    let mut command = match shape {
        Shape::OneWorker => {
            let mut c = Command::new(launcher());
            c.arg("sql").arg(script).args(args);
            c
        }
        Shape::TwoThreads => {
            let mut c = Command::new(launcher());
            c.arg("sql").arg(script).args(args).args(["-w", "2"]);
            c
        }
        Shape::TwoProcesses => {
            let mut c = launch_once(2);
            c.arg(launcher()).arg("sql").arg(script).args(args);
            c
        }
    };
    let (status, out, err) = run_captured(&mut command, Duration::from_secs(180));
    (status.success(), out, err)
}

/// Runs `command` with no stdin, reading its stdout and stderr in full, for at most `limit`
/// (longer fails: it hangs); returns its exit status, stdout and stderr.
pub fn run_captured(
    command: &mut Command,
    limit: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let status = wait_with_limit(&mut child, limit);
    (status, reader.join().unwrap(), err_reader.join().unwrap())
}

/// Folds a changelog (`+I`/`+U` add a row, `-U`/`-D` take one away) into the final table,
/// failing when a change takes away a row that is not there.
pub fn fold(changes: &[(String, String)], what: &str) -> Vec<String> {
    let mut table: BTreeMap<String, i64> = BTreeMap::new();
    for (kind, row) in changes {
        let n = table.entry(row.clone()).or_insert(0);
        match kind.as_str() {
            "+I" | "+U" => *n += 1,
            "-U" | "-D" => {
                assert!(
                    *n > 0,
                    "{what}: {kind}[{row}] takes away a row that is not there"
                );
                *n -= 1;
            }
            other => panic!("{what}: unknown change {other}"),
        }
    }
    let mut rows = Vec::new();
    for (row, n) in table {
        for _ in 0..n {
            rows.push(row.clone());
        }
    }
    rows
}

/// The changes a print table with `'print-identifier' = 'id'` wrote to `stdout` (`None`: one
/// without an identifier), as (kind, row) pairs: `id> +U[a, b]` gives `("+U", "a, b")`.
pub fn printed_changes(stdout: &str, id: Option<&str>) -> Vec<(String, String)> {
    let prefix = id.map_or(String::new(), |id| format!("{id}> "));
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|l| {
            let (kind, rest) = l.split_at_checked(2)?;
            let row = rest.strip_prefix('[')?.strip_suffix(']')?;
            ["+I", "-U", "+U", "-D"]
                .contains(&kind)
                .then(|| (kind.to_string(), row.to_string()))
        })
        .collect()
}
