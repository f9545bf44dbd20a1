//! `SET 'key' = 'value'` in a script: Flink's configuration keys for parallelism and
//! checkpoints, applied to the job's flags.
//!
//! A key this module knows sets its flag — unless that flag was given on the command line, which
//! wins (the script says what it needs by default; the person starting it has the last word).
//! Other keys are reported and ignored. A value that does not parse is an error that names the
//! key, the value and the form it takes.

use std::collections::BTreeMap;
use std::time::Duration;

use tidal_engine::JobArgs;

/// The keys `SET` applies, and the job flag each sets (its clap id, for [`apply`]'s `given`).
pub const KNOWN: [(&str, &str); 12] = [
    ("parallelism.default", "workers"),
    ("execution.checkpointing.interval", "checkpoint_interval"),
    ("execution.checkpointing.dir", "checkpoint_dir"),
    ("state.checkpoints.dir", "checkpoint_dir"),
    ("execution.checkpointing.timeout", "checkpoint_timeout"),
    (
        "execution.checkpointing.tolerable-failed-checkpoints",
        "tolerable_checkpoint_failures",
    ),
    ("execution.checkpointing.num-retained", "checkpoints_kept"),
    ("state.checkpoints.num-retained", "checkpoints_kept"),
    (
        "execution.checkpointing.incremental",
        "incremental_checkpoints",
    ),
    ("state.backend.incremental", "incremental_checkpoints"),
    ("execution.checkpointing.savepoint-dir", "savepoint_dir"),
    ("state.savepoints.dir", "savepoint_dir"),
];

/// Applies the script's `options` to `args`, except those whose flag `given(flag id)` says was
/// given on the command line. Returns the keys it does not know (to be reported).
///
/// ```
/// use std::collections::BTreeMap;
/// use std::time::Duration;
/// let mut args = tidal_engine::JobArgs { processes: 2, ..Default::default() };
/// let options = BTreeMap::from([
///     ("parallelism.default".to_string(), "4".to_string()),
///     ("execution.checkpointing.interval".to_string(), "30 s".to_string()),
///     ("state.checkpoints.dir".to_string(), "file:///tmp/ckpt".to_string()),
///     ("table.exec.mini-batch.enabled".to_string(), "true".to_string()),
/// ]);
/// // --checkpoint-interval was given on the command line: it stays.
/// let unknown = tidal_sql::options::apply(&options, &mut args, &|flag| flag == "checkpoint_interval").unwrap();
/// assert_eq!(args.workers, 2); // 4 workers over 2 processes
/// assert_eq!(args.checkpoint_interval, Duration::from_secs(10));
/// assert_eq!(args.checkpoint_dir.as_deref(), Some("/tmp/ckpt"));
/// assert_eq!(unknown, vec!["table.exec.mini-batch.enabled"]);
/// ```
pub fn apply(
    options: &BTreeMap<String, String>,
    args: &mut JobArgs,
    given: &dyn Fn(&str) -> bool,
) -> tidal_engine::Result<Vec<String>> {
    let mut unknown = Vec::new();
    for (key, value) in options {
        let Some((_, flag)) = KNOWN.iter().find(|(k, _)| k == key) else {
            unknown.push(key.clone());
            continue;
        };
        if given(flag) {
            continue;
        }
        let bad =
            |form: &str| tidal_engine::Error::config(format!("SET '{key}' = '{value}': {form}"));
        let v = value.trim();
        match *flag {
            "workers" => {
                let total: usize = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a number of workers, 1 or more"))?;
                if !total.is_multiple_of(args.processes) {
                    return Err(bad(&format!(
                        "the job has {} processes: the parallelism is a multiple of it (each process runs parallelism / processes workers)",
                        args.processes
                    )));
                }
                args.workers = total / args.processes;
            }
            "checkpoint_interval" => {
                args.checkpoint_interval = duration(v).map_err(|f| bad(&f))?;
            }
            "checkpoint_timeout" => {
                args.checkpoint_timeout = duration(v).map_err(|f| bad(&f))?;
            }
            "checkpoint_dir" => args.checkpoint_dir = Some(location(v)),
            "savepoint_dir" => args.savepoint_dir = Some(location(v)),
            "tolerable_checkpoint_failures" => {
                args.tolerable_checkpoint_failures =
                    v.parse().map_err(|_| bad("a number, 0 or more"))?;
            }
            "checkpoints_kept" => {
                args.checkpoints_kept = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a number, 1 or more"))?;
            }
            "incremental_checkpoints" => {
                args.incremental_checkpoints = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("true or false")),
                };
            }
            other => unreachable!("a flag of KNOWN: {other}"),
        }
    }
    Ok(unknown)
}

/// A duration as Flink writes one: a number of milliseconds, or a number and a unit (`10 s`,
/// `500ms`, `1 min`, `2h`).
fn duration(text: &str) -> Result<Duration, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    let compact: String = text.split_whitespace().collect();
    tidal_engine::parse_duration(&compact)
        .map_err(|_| "a duration: milliseconds, or a number and a unit ('10 s', '1 min')".into())
}

/// A directory as Flink names one: a path, `file://PATH` or `s3://BUCKET/PREFIX`.
fn location(text: &str) -> String {
    text.strip_prefix("file://").unwrap_or(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn set_options_become_job_flags_unless_given() {
        let mut args = JobArgs::default();
        let unknown = apply(
            &options(&[
                ("parallelism.default", "3"),
                ("execution.checkpointing.interval", "1500"),
                ("execution.checkpointing.timeout", "1 min"),
                ("state.checkpoints.num-retained", "5"),
                ("state.backend.incremental", "TRUE"),
                ("state.savepoints.dir", "s3://b/sp"),
                ("execution.checkpointing.tolerable-failed-checkpoints", "0"),
                ("pipeline.name", "x"),
            ]),
            &mut args,
            &|_| false,
        )
        .unwrap();
        assert_eq!(args.workers, 3);
        assert_eq!(args.checkpoint_interval, Duration::from_millis(1500));
        assert_eq!(args.checkpoint_timeout, Duration::from_secs(60));
        assert_eq!(args.checkpoints_kept, 5);
        assert!(args.incremental_checkpoints);
        assert_eq!(args.savepoint_dir.as_deref(), Some("s3://b/sp"));
        assert_eq!(args.tolerable_checkpoint_failures, 0);
        assert_eq!(unknown, ["pipeline.name"]);
        // A flag given on the command line wins.
        let mut args = JobArgs {
            workers: 2,
            ..JobArgs::default()
        };
        apply(&options(&[("parallelism.default", "8")]), &mut args, &|f| {
            f == "workers"
        })
        .unwrap();
        assert_eq!(args.workers, 2);
    }

    #[test]
    fn bad_set_values_say_what_they_take() {
        for (key, value, says) in [
            ("parallelism.default", "0", "1 or more"),
            ("execution.checkpointing.interval", "soon", "a duration"),
            ("state.backend.incremental", "yes", "true or false"),
            ("state.checkpoints.num-retained", "-1", "1 or more"),
        ] {
            let e = apply(&options(&[(key, value)]), &mut JobArgs::default(), &|_| {
                false
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains(&format!("SET '{key}' = '{value}'")), "{e}");
            assert!(e.contains(says), "{e}");
        }
        let mut args = JobArgs {
            processes: 2,
            ..JobArgs::default()
        };
        let e = apply(
            &options(&[("parallelism.default", "3")]),
            &mut args,
            &|_| false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("multiple"), "{e}");
    }
}
