//! `tidal`: the launcher and the checkpoint inspector.
//!
//! ```text
//! tidal run --processes 2 --restart-strategy fixed-delay --restart-attempts 5 -- \
//!     target/release/examples/wordcount --input big.txt --output out/ --checkpoint-dir chk/ --checkpoint-interval 1s
//! tidal sql job.sql -w 2
//! tidal checkpoints list chk/
//! tidal checkpoints inspect chk/chk-000000012
//! ```
//!
//! `tidal run` starts a job's processes on this machine (each with `-n N -p I -h HOSTFILE` added to
//! the program's arguments, on fresh loopback ports), watches them, and when one fails stops the
//! others and restarts all of them after the restart strategy's delay — with `--restore latest`
//! added when the program was given `--checkpoint-dir`, so that the job goes on from its newest
//! complete checkpoint. Every restart is logged with its cause; a job out of restarts makes the
//! launcher exit 1 with the last cause. Ctrl-C or SIGTERM is passed on to the processes (they stop
//! cleanly) and ends the launcher without restarting. With `--web-addr HOST:PORT` the launcher
//! serves the job's REST API and dashboard (see `web.rs`), read-only unless `--web-actions`.

use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use std::fmt::Write as _;

use tidal::engine::checkpoint::{list_checkpoints, read_checkpoint};
use tidal::engine::cluster::supervise::{RestartStrategy, Restarts};
use tidal::engine::parse_duration;
use tidal::engine::storage::{self, Location};

mod web;

// `tidal sql` runs a job in this process: allocate as the examples do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tidal",
    about = "Run Tidal jobs under supervision; inspect checkpoints"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Start a job's processes, watch them, restart them all from the latest checkpoint on failure.
    Run(RunArgs),
    /// Run a Flink SQL script as a Tidal job (every job flag applies: -w, -n, -p, -h,
    /// checkpoints, --restore; under `tidal run` too).
    Sql(Box<SqlArgs>),
    /// Print the token the REST API's actions need when the job has a cluster secret
    /// (`Authorization: Bearer TOKEN`): derived from the secret, which it does not reveal.
    Token {
        /// The job's cluster secret file (or set TIDAL_CLUSTER_SECRET).
        #[arg(long = "cluster-secret-file", value_name = "FILE")]
        cluster_secret_file: Option<std::path::PathBuf>,
    },
    /// What is in a checkpoint directory.
    Checkpoints {
        #[command(subcommand)]
        what: CheckpointCommand,
        /// Endpoint of an S3-compatible server for s3:// locations (default: $AWS_ENDPOINT_URL).
        #[arg(long = "s3-endpoint", value_name = "URL", global = true)]
        s3_endpoint: Option<String>,
    },
}

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
struct SqlArgs {
    /// Print help (`-h` is the job's --hostfile).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// The script: CREATE TABLE / CREATE VIEW / INSERT INTO / SELECT / SET / EXPLAIN statements.
    #[arg(value_name = "SCRIPT.sql")]
    script: std::path::PathBuf,
    /// A value for `${NAME}` in the script (repeatable): paths, sizes.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    #[command(flatten)]
    job: tidal::JobArgs,
}

#[derive(Subcommand)]
enum CheckpointCommand {
    /// One line per checkpoint: id, cut, completion time, parts, bytes, validity.
    List {
        /// The job's --checkpoint-dir (a path or s3://BUCKET/PREFIX).
        dir: String,
    },
    /// One checkpoint in detail: its parts, operators' states and source positions.
    Inspect {
        /// A checkpoint directory (chk-NNNNNNNNN), local or on S3.
        path: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Strategy {
    None,
    FixedDelay,
    ExponentialDelay,
    FailureRate,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Processes to start on this machine.
    #[arg(long, default_value_t = 1, value_name = "N")]
    processes: usize,
    /// What to do when a process fails.
    #[arg(long, value_enum, default_value = "fixed-delay")]
    restart_strategy: Strategy,
    /// fixed-delay: restarts allowed.
    #[arg(long, default_value_t = 3, value_name = "N")]
    restart_attempts: u32,
    /// fixed-delay and failure-rate: wait before a restart; exponential-delay: the first wait.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    restart_delay: Duration,
    /// exponential-delay: the longest wait.
    #[arg(long, default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    restart_max_delay: Duration,
    /// exponential-delay: factor between consecutive waits.
    #[arg(long, default_value_t = 2.0, value_name = "F")]
    restart_multiplier: f64,
    /// exponential-delay: a run this long without failure resets the wait.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    restart_reset_after: Duration,
    /// failure-rate: most failures tolerated within --failure-interval.
    #[arg(long, default_value_t = 3, value_name = "N")]
    max_failures: u32,
    /// failure-rate: the window failures are counted in.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    failure_interval: Duration,
    /// Serve the job's REST API and dashboard on http://HOST:PORT (the job's state, graph,
    /// metrics, checkpoints and restarts; read-only unless --web-actions). Give a loopback
    /// address unless others should reach it.
    #[arg(long, value_name = "HOST:PORT")]
    web_addr: Option<String>,
    /// Allow the REST API's actions: trigger a savepoint, stop with a savepoint, cancel.
    #[arg(long, requires = "web_addr")]
    web_actions: bool,
    /// The job's program and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "PROGRAM ARGS")]
    program: Vec<String>,
}

fn main() -> ExitCode {
    tidal::engine::log::init();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // A job flag given on the command line wins over the script's SET of it.
    let sql_matches = matches.subcommand_matches("sql");
    let given = |id: &str| {
        sql_matches
            .is_some_and(|m| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
    };
    let result = match cli.command {
        Commands::Run(args) => run(args),
        Commands::Sql(args) => match std::fs::read_to_string(&args.script) {
            Err(e) => Err(format!("cannot read {}: {e}", args.script.display())),
            Ok(text) => tidal::sql::substitute(&text, &args.vars)
                .map_err(|e| tidal::Error::config(e.to_string()))
                .and_then(|text| tidal::sql::run_script_with(&text, &args.job, &given))
                .map_err(|e| format!("{}: {e}", args.script.display())),
        },
        Commands::Token {
            cluster_secret_file,
        } => match cluster_secret(cluster_secret_file.as_deref()) {
            Ok(Some(secret)) => {
                println!("{}", secret.token(REST_TOKEN));
                Ok(())
            }
            Ok(None) => Err(
                "no cluster secret: give --cluster-secret-file FILE or set TIDAL_CLUSTER_SECRET"
                    .into(),
            ),
            Err(e) => Err(e),
        },
        Commands::Checkpoints { what, s3_endpoint } => {
            if s3_endpoint.is_some() {
                storage::configure_s3(storage::S3Settings {
                    endpoint: s3_endpoint,
                    region: None,
                    credentials: None,
                });
            }
            let (CheckpointCommand::List { dir: at } | CheckpointCommand::Inspect { path: at }) =
                &what;
            match (Location::parse(at), what) {
                (Err(e), _) => Err(e.to_string()),
                (Ok(dir), CheckpointCommand::List { .. }) => list(&dir),
                (Ok(path), CheckpointCommand::Inspect { .. }) => inspect(&path),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tidal::engine::log::line(tidal::engine::log::Level::Error, format_args!("tidal: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// `NAME=VALUE` of `tidal sql --var`.
fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("'{text}': give NAME=VALUE")),
    }
}

fn strategy(args: &RunArgs) -> RestartStrategy {
    match args.restart_strategy {
        Strategy::None => RestartStrategy::None,
        Strategy::FixedDelay => RestartStrategy::FixedDelay {
            attempts: args.restart_attempts,
            delay: args.restart_delay,
        },
        Strategy::ExponentialDelay => RestartStrategy::ExponentialDelay {
            initial: args.restart_delay,
            max: args.restart_max_delay,
            multiplier: args.restart_multiplier,
            reset_after: args.restart_reset_after,
        },
        Strategy::FailureRate => RestartStrategy::FailureRate {
            max_failures: args.max_failures,
            interval: args.failure_interval,
            delay: args.restart_delay,
        },
    }
}

fn run(args: RunArgs) -> Result<(), String> {
    if args.processes == 0 {
        return Err("--processes must be at least 1".into());
    }
    let (program, program_args) = args.program.split_first().expect("required by clap");
    let checkpoints = program_args
        .iter()
        .any(|a| a == "--checkpoint-dir" || a.starts_with("--checkpoint-dir="));
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    let hostfile =
        tempfile::NamedTempFile::new().map_err(|e| format!("cannot create a hostfile: {e}"))?;
    let strategy = strategy(&args);
    let mut restarts = Restarts::new(strategy.clone());
    let state = Arc::new(std::sync::Mutex::new(web::JobState {
        state: "STARTING",
        started_ms: tidal::engine::now_millis(),
        ..web::JobState::default()
    }));
    // With --web-addr, process 0 serves its metrics where the launcher can ask for them: the
    // program's own --metrics-addr, or a free loopback port given to it.
    let mut extra_args: Vec<String> = Vec::new();
    if let Some(addr) = &args.web_addr {
        let metrics_addr = match flag_value(program_args, "--metrics-addr") {
            Some(a) => a,
            None => {
                let free = TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map_err(|e| format!("cannot find a free port: {e}"))?
                    .to_string();
                extra_args.extend(["--metrics-addr".to_string(), free.clone()]);
                free
            }
        };
        let bound = web::serve(
            addr,
            web::Web {
                state: Arc::clone(&state),
                metrics_addr,
                cancel: Arc::clone(&stop),
                actions: args.web_actions,
                processes: args.processes,
                token: cluster_secret(
                    flag_value(program_args, "--cluster-secret-file")
                        .as_deref()
                        .map(std::path::Path::new),
                )?
                .map(|s| s.token(REST_TOKEN)),
            },
        )?;
        tidal::engine::say(format_args!(
            "tidal: dashboard and REST API on http://{bound}/{}",
            if args.web_actions {
                " (actions allowed)"
            } else {
                ""
            }
        ));
    }
    let set_state = |f: &dyn Fn(&mut web::JobState)| {
        f(&mut state.lock().unwrap_or_else(|p| p.into_inner()));
    };
    let outcome = supervise(
        &args,
        program,
        program_args,
        &extra_args,
        checkpoints,
        &stop,
        &hostfile,
        &strategy,
        &mut restarts,
        &set_state,
    );
    set_state(&|s| {
        s.pids.clear();
        s.state = match &outcome {
            Ok(()) => "FINISHED",
            Err(e) if e.starts_with("stopped") => "CANCELLED",
            Err(_) => "FAILED",
        };
    });
    outcome
}

/// What the REST API's action token is derived for.
const REST_TOKEN: &str = "rest actions";

/// The cluster secret from `file`, or from TIDAL_CLUSTER_SECRET; `None` without either.
fn cluster_secret(
    file: Option<&std::path::Path>,
) -> Result<Option<tidal::engine::cluster::ClusterSecret>, String> {
    use tidal::engine::cluster::ClusterSecret;
    match (file, std::env::var("TIDAL_CLUSTER_SECRET")) {
        (Some(path), _) => ClusterSecret::read(path)
            .map(Some)
            .map_err(|e| e.to_string()),
        (None, Ok(text)) => ClusterSecret::new(&text)
            .map(Some)
            .map_err(|e| format!("TIDAL_CLUSTER_SECRET: {e}")),
        (None, Err(_)) => Ok(None),
    }
}

/// The value given to `flag` among `args` (`--flag VALUE` or `--flag=VALUE`).
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&prefix).map(String::from)
        }
    })
}

/// Updates the job's state as the web server shows it.
type SetState<'a> = dyn Fn(&dyn Fn(&mut web::JobState)) + 'a;

/// Starts the processes, watches them and restarts them as the strategy says, until the job
/// finishes, is stopped, or is out of restarts.
#[allow(clippy::too_many_arguments)]
fn supervise(
    args: &RunArgs,
    program: &str,
    program_args: &[String],
    extra_args: &[String],
    checkpoints: bool,
    stop: &AtomicBool,
    hostfile: &tempfile::NamedTempFile,
    strategy: &RestartStrategy,
    restarts: &mut Restarts,
    set_state: &SetState<'_>,
) -> Result<(), String> {
    loop {
        // Fresh loopback ports for every attempt: the old ones may still be held.
        let ports: Vec<TcpListener> = (0..args.processes)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot find free ports: {e}"))?;
        let hosts: String = ports
            .iter()
            .map(|l| format!("{}\n", l.local_addr().expect("bound")))
            .collect();
        drop(ports);
        std::fs::write(hostfile.path(), hosts)
            .map_err(|e| format!("cannot write the hostfile: {e}"))?;
        let restoring = restarts.restarts() > 0 && checkpoints;
        let mut children = Vec::with_capacity(args.processes);
        for p in 0..args.processes {
            let mut command = Command::new(program);
            command
                .args(without_restore(program_args, restoring))
                .args(extra_args)
                .args([
                    "-n",
                    &args.processes.to_string(),
                    "-p",
                    &p.to_string(),
                    "-h",
                    &hostfile.path().display().to_string(),
                ]);
            if restoring {
                command.args(["--restore", "latest"]);
            }
            // For the job's metrics (tidal_restarts_total).
            command.env("TIDAL_RESTARTS", restarts.restarts().to_string());
            let child = command
                .spawn()
                .map_err(|e| format!("cannot start '{program}': {e}"))?;
            tidal::engine::say(format_args!(
                "tidal: started process {p} (pid {})",
                child.id()
            ));
            children.push(Some(child));
        }
        restarts.started(Instant::now());
        let pids: Vec<u32> = children.iter().flatten().map(Child::id).collect();
        set_state(&|s| {
            s.state = "RUNNING";
            s.attempt_started_ms = tidal::engine::now_millis();
            s.pids = pids.clone();
        });
        match watch(&mut children, stop) {
            Outcome::Finished => return Ok(()),
            Outcome::Stopped => return Err("stopped by a signal or the REST API".into()),
            Outcome::Failed(cause) => match restarts.after_failure(Instant::now()) {
                Some(delay) => {
                    set_state(&|s| {
                        s.state = "RESTARTING";
                        s.pids.clear();
                        s.restarts
                            .push((tidal::engine::now_millis(), cause.clone()));
                    });
                    tidal::engine::warn(format_args!(
                        "tidal: {cause}; restarting all processes in {delay:?} (restart {}, strategy {}){}",
                        restarts.restarts(),
                        strategy.describe(),
                        if checkpoints {
                            " from the latest checkpoint"
                        } else {
                            " from the beginning (the job has no --checkpoint-dir)"
                        }
                    ));
                    std::thread::sleep(delay);
                }
                None => {
                    return Err(format!(
                        "{cause}; not restarting (strategy {}, {} restart(s) made)",
                        strategy.describe(),
                        restarts.restarts()
                    ));
                }
            },
        }
    }
}

/// The program's arguments, without any `--restore` of its own when the launcher adds one.
fn without_restore(args: &[String], restoring: bool) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for a in args {
        if skip_value {
            skip_value = false;
        } else if restoring && a == "--restore" {
            skip_value = true;
        } else if !(restoring && a.starts_with("--restore=")) {
            out.push(a.clone());
        }
    }
    out
}

enum Outcome {
    Finished,
    Stopped,
    Failed(String),
}

/// Waits until every process has ended well, one has failed (the others are then killed), or
/// the launcher is asked to stop (the processes are asked to stop too, and waited for).
fn watch(children: &mut [Option<Child>], stop: &AtomicBool) -> Outcome {
    let mut forwarded = false;
    loop {
        if stop.load(Ordering::Relaxed) && !forwarded {
            for child in children.iter().flatten() {
                // Ask for a clean stop (sources end, results are flushed).
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
            forwarded = true;
        }
        let mut running = 0;
        for (p, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait() {
                Ok(Some(status)) if status.success() => *slot = None,
                Ok(Some(status)) => {
                    let cause = root_cause(children, p, status);
                    kill_all(children);
                    return if forwarded {
                        Outcome::Stopped
                    } else {
                        Outcome::Failed(cause)
                    };
                }
                Ok(None) => running += 1,
                Err(e) => {
                    let cause = format!("cannot watch process {p}: {e}");
                    kill_all(children);
                    return Outcome::Failed(cause);
                }
            }
        }
        if running == 0 {
            return if forwarded {
                Outcome::Stopped
            } else {
                Outcome::Finished
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long the other processes are given to end by themselves once one has failed, so that the
/// cause found is the first failure rather than its echo.
const SETTLE: Duration = Duration::from_secs(2);

/// The failure to report when process `first` was seen failing: a process killed by a signal
/// comes first (the others then fail because they lost it), then the first one seen.
///
/// A process killed with `kill -9` is not always reaped before its peers notice the closed
/// connection and exit with code 1, so when the first failure seen is an exit code, the others
/// are given up to [`SETTLE`] to end (they do, having lost a peer) before the cause is chosen.
fn root_cause(children: &mut [Option<Child>], first: usize, status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if status.signal().is_none() {
        let deadline = Instant::now() + SETTLE;
        let mut ended: Vec<Option<ExitStatus>> = vec![None; children.len()];
        ended[first] = Some(status);
        loop {
            for (p, slot) in children.iter_mut().enumerate() {
                if ended[p].is_none()
                    && let Some(child) = slot
                    && let Ok(Some(other)) = child.try_wait()
                {
                    if other.signal().is_some() {
                        return format!("process {p} {}", describe(other));
                    }
                    ended[p] = Some(other);
                }
            }
            let all_ended = ended
                .iter()
                .zip(children.iter())
                .all(|(e, c)| e.is_some() || c.is_none());
            if all_ended || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    format!("process {first} {}", describe(status))
}

fn kill_all(children: &mut [Option<Child>]) {
    for mut child in children.iter_mut().filter_map(Option::take) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "ended abnormally".into(),
    }
}

fn list(dir: &Location) -> Result<(), String> {
    let mut out = String::new();
    let found = list_checkpoints(dir).map_err(|e| e.to_string())?;
    if found.is_empty() {
        outln!(out, "no checkpoints in {dir}");
        return print(&out);
    }
    outln!(
        out,
        "{:>10}  {:>16}  {:>15}  {:>5}  {:>12}  status",
        "id",
        "cut",
        "completed_ms",
        "parts",
        "bytes"
    );
    for (id, path) in found {
        match read_checkpoint(&path) {
            Ok(c) => outln!(
                out,
                "{id:>10}  {:>16}  {:>15}  {:>5}  {:>12}  valid",
                c.cut,
                c.created_ms,
                c.parts.len(),
                c.bytes
            ),
            Err(e) => outln!(
                out,
                "{id:>10}  {:>16}  {:>15}  {:>5}  {:>12}  INVALID: {e}",
                "-",
                "-",
                "-",
                "-"
            ),
        }
    }
    print(&out)
}

fn inspect(path: &Location) -> Result<(), String> {
    let mut out = String::new();
    let c = read_checkpoint(path).map_err(|e| e.to_string())?;
    outln!(out, "checkpoint {} at {path}", c.id);
    outln!(out, "cut {} (restored sources start at this time)", c.cut);
    if !c.needs.is_empty() {
        let ids: Vec<String> = c.needs.iter().map(u64::to_string).collect();
        outln!(
            out,
            "incremental: builds on checkpoints {} (sizes below are restored sizes)",
            ids.join(" ")
        );
    }
    for part in &c.parts {
        outln!(out, "part of worker {} of {}:", part.worker, part.peers);
        for (name, state) in &part.states {
            // Keyed states (the usual format) also tell their number of keys.
            match tidal::engine::state::snapshot_entries(state, name) {
                Ok((_, entries)) if !entries.is_empty() => outln!(
                    out,
                    "  state '{name}': {} bytes, {} keys ({:.1} bytes per key)",
                    state.len(),
                    entries.len(),
                    state.len() as f64 / entries.len() as f64
                ),
                _ => outln!(out, "  state '{name}': {} bytes", state.len()),
            }
        }
        for (name, position) in &part.sources {
            match position {
                tidal::engine::SourcePosition::Done => outln!(out, "  source '{name}': done"),
                tidal::engine::SourcePosition::At {
                    position,
                    watermark,
                } => outln!(
                    out,
                    "  source '{name}': {} bytes of position, watermark {watermark}",
                    position.len()
                ),
            }
        }
    }
    print(&out)
}

/// A line of a command's output (into a `String`, which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}
use outln;

/// Writes a command's output to stdout; a reader that went away (`| head`) is not an error.
fn print(out: &str) -> Result<(), String> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("writing: {e}")),
        _ => Ok(()),
    }
}
