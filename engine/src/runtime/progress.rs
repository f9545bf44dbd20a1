//! The progress line of a bounded job in the terminal: how much of its input has been read (%),
//! the records read, the rate and the time left, kept up to date on one line of standard error
//! by process 0, for every worker of every process.
//!
//! Each source instance notes after every activation its records read and its reader's
//! [`Progress`] (bytes of its files, records of a generator); each worker sends its sources'
//! notes twice a second on the control plane (and once more when its dataflow ends), so process
//! 0 sees every worker's. The line shows a percentage only when every source instance knows its
//! total — a bounded job; for others nothing is printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::source::Progress;

/// How often workers send their sources' progress and the line is redrawn.
pub(crate) const EVERY: Duration = Duration::from_millis(500);

/// Whether a progress line is on screen now (other messages clear it first).
pub(crate) static SHOWN: AtomicBool = AtomicBool::new(false);

/// When `--progress` shows the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// When standard error is a terminal.
    #[default]
    Auto,
    /// Always (also into files and pipes).
    Always,
    /// Never.
    Never,
}

/// One source instance's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SourceProgress {
    pub(crate) records: u64,
    pub(crate) progress: Option<Progress>,
    pub(crate) finished: bool,
}

/// Every worker's latest report: its sequence number and its sources' progress.
#[derive(Debug, Default)]
pub(crate) struct ProgressBoard {
    workers: BTreeMap<usize, (u64, Vec<(String, SourceProgress)>)>,
}

/// The job's progress at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    records: u64,
    /// The fraction of the input read, when every source instance knows its total.
    fraction: Option<f64>,
}

impl ProgressBoard {
    /// Keeps `worker`'s report unless a later one is there.
    pub(crate) fn record(
        &mut self,
        worker: usize,
        seq: u64,
        sources: Vec<(String, SourceProgress)>,
    ) {
        match self.workers.get(&worker) {
            Some((have, _)) if *have >= seq => {}
            _ => {
                self.workers.insert(worker, (seq, sources));
            }
        }
    }

    fn summary(&self) -> Summary {
        let mut records = 0;
        let (mut done, mut total, mut known) = (0.0, 0.0, true);
        let mut any = false;
        for (_, sources) in self.workers.values() {
            for (_, s) in sources {
                any = true;
                records += s.records;
                match s.progress {
                    Some(p) => {
                        // An instance that has ended has read everything, whatever it said.
                        let d = if s.finished {
                            p.total
                        } else {
                            p.done.min(p.total)
                        };
                        done += d as f64;
                        total += p.total as f64;
                    }
                    None if s.finished => {}
                    None => known = false,
                }
            }
        }
        let fraction = (any && known).then(|| if total == 0.0 { 1.0 } else { done / total });
        Summary { records, fraction }
    }
}

/// Draws the line on standard error until stopped; then draws it a last time and ends it.
pub(crate) struct Printer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Printer {
    pub(crate) fn start(board: Arc<Mutex<ProgressBoard>>) -> Printer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tidal-progress".into())
            .spawn(move || {
                let started = Instant::now();
                // Recent readings, for the rate and the time left.
                let mut readings: Vec<(Instant, Summary)> = Vec::new();
                loop {
                    let last = stopped.load(Ordering::SeqCst);
                    let now = Instant::now();
                    let summary = board.lock().unwrap_or_else(|p| p.into_inner()).summary();
                    readings.push((now, summary));
                    readings.retain(|(at, _)| now.duration_since(*at) <= Duration::from_secs(3));
                    if let Some(line) = line(&readings, started, last) {
                        let mut err = std::io::stderr().lock();
                        let _ = write!(err, "\r{line}\x1b[K{}", if last { "\n" } else { "" });
                        let _ = err.flush();
                        SHOWN.store(!last, Ordering::SeqCst);
                    }
                    if last {
                        return;
                    }
                    std::thread::park_timeout(EVERY);
                }
            })
            .ok();
        Printer { stop, thread }
    }

    /// Draws the final line (after the last reports came in) and waits for it.
    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The line for the latest of `readings` (`None` while the job's input is not known to be
/// bounded).
fn line(readings: &[(Instant, Summary)], started: Instant, last: bool) -> Option<String> {
    let (now, s) = readings.last()?;
    let fraction = s.fraction?;
    let elapsed = now.duration_since(started).as_secs_f64();
    // The oldest reading that knew the fraction (the first ones may come before any source).
    let (then, old) = readings
        .iter()
        .find(|(_, r)| r.fraction.is_some())
        .unwrap_or(&readings[readings.len() - 1]);
    let window = now.duration_since(*then).as_secs_f64();
    let rate = if last || window < 0.25 {
        s.records as f64 / elapsed.max(1e-3)
    } else {
        (s.records - old.records.min(s.records)) as f64 / window
    };
    if last {
        return Some(format!(
            "tidal: {:.1} % of the input read, {} records in {elapsed:.1} s ({} records/s)",
            fraction * 100.0,
            grouped(s.records),
            grouped(rate as u64)
        ));
    }
    let left = match (old.fraction, window >= 0.25) {
        (Some(f0), true) if fraction > f0 => {
            let secs = (1.0 - fraction) * window / (fraction - f0);
            format!(", about {} left", human(secs))
        }
        _ => String::new(),
    };
    Some(format!(
        "tidal: {:.1} % of the input read, {} records, {} records/s{left}",
        fraction * 100.0,
        grouped(s.records),
        grouped(rate as u64)
    ))
}

/// `1234567` as `1 234 567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(records: u64, done: u64, total: u64, finished: bool) -> (String, SourceProgress) {
        let progress = Some(Progress { done, total });
        (
            "s".into(),
            SourceProgress {
                records,
                progress,
                finished,
            },
        )
    }

    #[test]
    fn the_fraction_is_of_every_instance_and_known_only_when_every_total_is() {
        let mut board = ProgressBoard::default();
        board.record(0, 1, vec![source(10, 30, 100, false)]);
        board.record(1, 1, vec![source(5, 10, 100, false)]);
        assert_eq!(board.summary().fraction, Some(0.2));
        assert_eq!(board.summary().records, 15);
        // An older report does not replace a newer one; an ended instance counts as read.
        board.record(1, 0, vec![source(0, 0, 100, false)]);
        board.record(0, 2, vec![source(40, 60, 100, true)]);
        assert_eq!(board.summary().fraction, Some(0.55));
        board.record(
            2,
            1,
            vec![(
                "k".into(),
                SourceProgress {
                    records: 1,
                    progress: None,
                    finished: false,
                },
            )],
        );
        assert_eq!(board.summary().fraction, None);
    }

    #[test]
    fn the_line_says_percent_records_rate_and_time_left() {
        let t0 = Instant::now();
        let at = |ms: u64, records: u64, f: f64| {
            (
                t0 + Duration::from_millis(ms),
                Summary {
                    records,
                    fraction: Some(f),
                },
            )
        };
        let readings = [at(0, 0, 0.0), at(1000, 1000, 0.25)];
        let l = line(&readings, t0, false).unwrap();
        assert_eq!(
            l,
            "tidal: 25.0 % of the input read, 1 000 records, 1 000 records/s, about 3 s left"
        );
        let done = line(&[at(2000, 4_000_000, 1.0)], t0, true).unwrap();
        assert!(
            done.starts_with("tidal: 100.0 % of the input read, 4 000 000 records in 2.0 s"),
            "{done}"
        );
        assert!(
            line(
                &[(
                    t0,
                    Summary {
                        records: 5,
                        fraction: None
                    }
                )],
                t0,
                false
            )
            .is_none()
        );
    }
}
