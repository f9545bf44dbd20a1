//! Tidal's standard command-line flags, parsed with clap.
//!
//! Every Tidal program accepts the same worker and cluster flags, in timely's conventions:
//! `-w/--workers` threads per process, `-n/--processes`, `-p/--process` (this process's index),
//! `-h/--hostfile` (one `host:port` per process), `--connect-timeout` and `--tick`. A program adds
//! its own flags next to them by flattening [`JobArgs`] into its own clap parser and parsing with
//! [`parse_args`], which frees `-h` for the hostfile and keeps `--help`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, Parser};

use crate::checkpoint::{CheckpointConfig, Restore};
use crate::cluster::{ClusterSpec, Hostfile};
use crate::error::{Error, Result};
use crate::storage::Location;

/// The flags every Tidal job accepts.
///
/// ```
/// use clap::Parser;
/// use tidal_engine::JobArgs;
///
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     tidal: JobArgs,
///     /// A flag of the program's own.
///     #[arg(long)]
///     input: Option<String>,
/// }
///
/// let args: Args = tidal_engine::parse_args_from(["job", "-w", "2", "--input", "x.txt"]);
/// assert_eq!(args.tidal.workers, 2);
/// assert_eq!(args.input.as_deref(), Some("x.txt"));
/// ```
#[derive(clap::Args, Debug, Clone)]
// The doc comment above is for rustdoc: without this, clap would print it (example included) as
// the help text of every program that flattens these flags into its own.
#[command(about = None, long_about = None)]
pub struct JobArgs {
    /// Worker threads in each process.
    #[arg(short = 'w', long = "workers", default_value_t = 1, value_name = "N")]
    pub workers: usize,
    /// Number of processes in the job (each started with the same flags and its own -p).
    #[arg(short = 'n', long = "processes", default_value_t = 1, value_name = "N")]
    pub processes: usize,
    /// Index of this process, from 0 to N-1.
    #[arg(short = 'p', long = "process", default_value_t = 0, value_name = "I")]
    pub process: usize,
    /// File naming every process's address, one `host:port` per line (blank lines and `#` comments
    /// allowed). Without it, process i listens on localhost:2101+i.
    #[arg(short = 'h', long = "hostfile", value_name = "FILE")]
    pub hostfile: Option<PathBuf>,
    /// How long processes wait for each other to connect before giving up (e.g. 30s, 500ms).
    #[arg(long = "connect-timeout", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,
    /// How often sources close a tick of processing time; rolling results are emitted once per tick.
    #[arg(long = "tick", default_value = "200ms", value_parser = parse_duration, value_name = "DURATION")]
    pub tick: Duration,
    /// Directory for checkpoints (one sub-directory each); without it no checkpoints are taken.
    #[arg(long = "checkpoint-dir", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub checkpoint_dir: Option<String>,
    /// Time from the end of one checkpoint to the start of the next (e.g. 1s, 10s).
    #[arg(long = "checkpoint-interval", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub checkpoint_interval: Duration,
    /// A checkpoint not complete after this long is abandoned (and counts as failed).
    #[arg(long = "checkpoint-timeout", default_value = "2m", value_parser = parse_duration, value_name = "DURATION")]
    pub checkpoint_timeout: Duration,
    /// How many complete checkpoints to keep.
    #[arg(long = "checkpoints-kept", default_value_t = 3, value_name = "K")]
    pub checkpoints_kept: usize,
    /// Failed checkpoints in a row the job tolerates before it fails.
    #[arg(
        long = "tolerable-checkpoint-failures",
        default_value_t = 3,
        value_name = "N"
    )]
    pub tolerable_checkpoint_failures: usize,
    /// Each checkpoint writes only the state entries that changed since the last complete one
    /// (restoring applies the chain); savepoints stay whole.
    #[arg(long = "incremental-checkpoints")]
    pub incremental_checkpoints: bool,
    /// Restore at start: `latest` (the newest complete, valid checkpoint in --checkpoint-dir, or a
    /// fresh start when there is none) or the path of one checkpoint directory.
    #[arg(long = "restore", value_name = "latest|PATH")]
    pub restore: Option<String>,
    /// Directory for savepoints: SIGUSR1 to process 0 takes one, SIGUSR2 takes one and then stops
    /// the job cleanly. Savepoints are never deleted; restore one with --restore PATH.
    #[arg(long = "savepoint-dir", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub savepoint_dir: Option<String>,
    /// Endpoint of an S3-compatible server for s3:// locations (default: $AWS_ENDPOINT_URL_S3,
    /// $AWS_ENDPOINT_URL, or AWS itself). Credentials come from $AWS_ACCESS_KEY_ID and
    /// $AWS_SECRET_ACCESS_KEY.
    #[arg(long = "s3-endpoint", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Region for s3:// locations (default: $AWS_REGION, $AWS_DEFAULT_REGION, or us-east-1).
    #[arg(long = "s3-region", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// A job parameter, read by the job's functions when they open (Flink's global job
    /// parameters); repeat for more.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A file holding the job's cluster secret: every process must prove it knows the same
    /// secret (challenge and response; the secret never crosses the network) before it joins;
    /// others are refused and logged. Also from the environment variable TIDAL_CLUSTER_SECRET.
    #[arg(long = "cluster-secret-file", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Serve the job's metrics in Prometheus's text format on http://HOST:PORT/metrics (process 0,
    /// for the whole job; the job graph as JSON on /api/graph). Off unless given; give a
    /// loopback address unless others should reach it.
    #[arg(long = "metrics-addr", value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Show the progress of a bounded job (% of the input read, records, rate, time left) on one
    /// line of standard error of process 0: when it is a terminal (auto), always, or never.
    #[arg(long = "progress", value_name = "WHEN", default_value = "auto")]
    pub progress: crate::runtime::ProgressMode,
    /// Print the job graph (its operators and the streams between them) and exit without
    /// running the job: as text, or as Graphviz DOT with --explain dot.
    #[arg(long = "explain", value_name = "FORMAT", num_args = 0..=1, default_missing_value = "text")]
    pub explain: Option<crate::metrics::ExplainFormat>,
}

impl Default for JobArgs {
    fn default() -> Self {
        JobArgs {
            workers: 1,
            processes: 1,
            process: 0,
            hostfile: None,
            connect_timeout: Duration::from_secs(30),
            tick: Duration::from_millis(200),
            checkpoint_dir: None,
            checkpoint_interval: Duration::from_secs(10),
            checkpoint_timeout: Duration::from_secs(120),
            checkpoints_kept: 3,
            tolerable_checkpoint_failures: 3,
            incremental_checkpoints: false,
            restore: None,
            savepoint_dir: None,
            s3_endpoint: None,
            s3_region: None,
            params: Vec::new(),
            cluster_secret_file: None,
            metrics_addr: None,
            explain: None,
            progress: crate::runtime::ProgressMode::Auto,
        }
    }
}

impl JobArgs {
    /// The job parameters given with `--param KEY=VALUE`; a later one replaces an earlier one of
    /// the same key.
    ///
    /// ```
    /// let mut args = tidal_engine::JobArgs::default();
    /// args.params = vec!["region=eu".into(), "limit=5".into()];
    /// assert_eq!(args.parameters().unwrap().get("limit").map(String::as_str), Some("5"));
    /// args.params.push("oops".into());
    /// assert!(args.parameters().unwrap_err().to_string().contains("--param 'oops'"));
    /// ```
    pub fn parameters(&self) -> Result<BTreeMap<String, String>> {
        self.params
            .iter()
            .map(|p| match p.split_once('=') {
                Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
                _ => Err(Error::config(format!(
                    "--param '{p}': expected KEY=VALUE, a non-empty key, '=' and the value"
                ))),
            })
            .collect()
    }
    /// The checkpoint settings the flags ask for (`None`: no checkpoints, no restore).
    ///
    /// ```
    /// let mut args = tidal_engine::JobArgs::default();
    /// args.restore = Some("latest".into());
    /// assert!(args.checkpoint_config().unwrap_err().to_string().contains("--checkpoint-dir"));
    /// args.checkpoint_dir = Some("/tmp/chk".into());
    /// assert!(args.checkpoint_config().unwrap().is_some());
    /// ```
    pub fn checkpoint_config(&self) -> Result<Option<CheckpointConfig>> {
        let restore = match self.restore.as_deref() {
            None => None,
            Some("latest") => Some(Restore::Latest),
            Some(path) => Some(Restore::Path(Location::parse(path)?)),
        };
        let checkpoint_dir = self
            .checkpoint_dir
            .as_deref()
            .map(Location::parse)
            .transpose()?;
        let savepoint_dir = self
            .savepoint_dir
            .as_deref()
            .map(Location::parse)
            .transpose()?;
        let periodic = checkpoint_dir.is_some();
        let dir = match (checkpoint_dir, &restore) {
            (Some(dir), _) => dir,
            (None, None) => match &savepoint_dir {
                Some(dir) => dir.clone(),
                None => return Ok(None),
            },
            (None, Some(Restore::Latest)) => {
                return Err(Error::config(
                    "--restore latest needs --checkpoint-dir DIR: the directory to look in",
                ));
            }
            // New checkpoints go next to the restored one.
            (None, Some(Restore::Path(path))) => path.parent(),
        };
        if self.checkpoint_interval.is_zero() {
            return Err(Error::config(
                "--checkpoint-interval must be more than 0 (e.g. 1s)",
            ));
        }
        let mut config = CheckpointConfig::new(dir)
            .interval(self.checkpoint_interval)
            .keep(self.checkpoints_kept);
        config.timeout = self.checkpoint_timeout;
        config.tolerable_failures = self.tolerable_checkpoint_failures;
        config.restore = restore;
        config.savepoint_dir = savepoint_dir;
        config.incremental = self.incremental_checkpoints;
        config.periodic = periodic;
        Ok(Some(config))
    }

    /// Applies `--s3-endpoint` and `--s3-region` to this process's S3 client (see
    /// [`storage`](crate::storage)).
    pub fn configure_s3(&self) {
        if self.s3_endpoint.is_some() || self.s3_region.is_some() {
            crate::storage::configure_s3(crate::storage::S3Settings {
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                credentials: None,
            });
        }
    }

    /// Checks the flags and reads the hostfile, giving what is needed to start this process.
    ///
    /// ```
    /// let mut args = tidal_engine::JobArgs::default();
    /// args.processes = 2;
    /// args.process = 2;
    /// let err = args.cluster_spec().unwrap_err();
    /// assert!(err.to_string().contains("-p 2"));
    /// ```
    pub fn cluster_spec(&self) -> Result<ClusterSpec> {
        if self.workers == 0 {
            return Err(Error::config("-w/--workers must be at least 1"));
        }
        if self.processes == 0 {
            return Err(Error::config("-n/--processes must be at least 1"));
        }
        if self.process >= self.processes {
            return Err(Error::config(format!(
                "-p {} is out of range: with -n {} the process index must be 0..={}",
                self.process,
                self.processes,
                self.processes - 1
            )));
        }
        let addresses = match &self.hostfile {
            Some(path) => {
                let hosts = Hostfile::read(path)?;
                if hosts.addresses.len() < self.processes {
                    return Err(Error::config(format!(
                        "hostfile '{}' names {} process{} but -n is {}: add one host:port line per process",
                        path.display(),
                        hosts.addresses.len(),
                        if hosts.addresses.len() == 1 { "" } else { "es" },
                        self.processes
                    )));
                }
                hosts.addresses[..self.processes].to_vec()
            }
            None => (0..self.processes)
                .map(|i| format!("localhost:{}", 2101 + i))
                .collect(),
        };
        let secret = match (
            &self.cluster_secret_file,
            std::env::var("TIDAL_CLUSTER_SECRET"),
        ) {
            (Some(path), _) => Some(crate::cluster::ClusterSecret::read(path)?),
            (None, Ok(text)) => Some(
                crate::cluster::ClusterSecret::new(&text)
                    .map_err(|e| Error::config(format!("TIDAL_CLUSTER_SECRET: {e}")))?,
            ),
            (None, Err(_)) => None,
        };
        Ok(ClusterSpec {
            workers: self.workers,
            process: self.process,
            addresses,
            connect_timeout: self.connect_timeout,
            secret,
        })
    }
}

/// Parses a duration such as `30s`, `200ms`, `2m`, `1h` or a bare number of seconds.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(tidal_engine::parse_duration("200ms").unwrap(), Duration::from_millis(200));
/// assert_eq!(tidal_engine::parse_duration("1.5").unwrap(), Duration::from_millis(1500));
/// assert!(tidal_engine::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    // A bare number is seconds (`--checkpoint-interval 5`); anything else is humantime's syntax.
    if let Ok(seconds) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("'{text}' is not a duration (examples: 30s, 200ms, 2m)"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("'{text}' is not a duration ({e}; examples: 30s, 200ms, 2m, 1h 30m)"))
}

/// Parses the process's command line into `A`, a clap parser that flattens [`JobArgs`].
///
/// Differs from `A::parse()` in one way: `-h` means `--hostfile` (timely's convention), and help
/// is `--help` only. On a bad flag it prints clap's message and exits with code 2.
pub fn parse_args<A: Parser>() -> A {
    parse_args_from(std::env::args_os())
}

/// Like [`parse_args`], from the given words (the first one is the program name).
pub fn parse_args_from<A, I, T>(words: I) -> A
where
    A: Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let command = A::command().disable_help_flag(true).arg(
        Arg::new("help")
            .long("help")
            .action(ArgAction::Help)
            .help("Print help"),
    );
    let mut matches = command
        .try_get_matches_from(words)
        .unwrap_or_else(|e| e.exit());
    A::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}
