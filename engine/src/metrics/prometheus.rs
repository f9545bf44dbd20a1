//! The job's metrics in Prometheus's text exposition format (version 0.0.4), as served on
//! `/metrics`.

use std::fmt::Write;

use super::JobMetrics;

/// Renders `metrics` (every worker's latest snapshot, named by the graph's operators) at
/// `now_ms` (ms since the epoch, for the watermarks' lag behind the clock).
///
/// ```
/// use tidal_engine::metrics::{prometheus, JobMetrics};
/// let text = prometheus::render(&JobMetrics::default(), 0);
/// assert!(text.contains("# TYPE tidal_uptime_seconds gauge"));
/// ```
pub fn render(metrics: &JobMetrics, now_ms: i64) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let uptime = metrics.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    family(
        &mut out,
        "tidal_uptime_seconds",
        "gauge",
        "Time since the job started in this process.",
    );
    let _ = writeln!(out, "tidal_uptime_seconds {uptime:.3}");
    family(
        &mut out,
        "tidal_restarts_total",
        "counter",
        "Times the job was restarted after a failure (by tidal run).",
    );
    let _ = writeln!(out, "tidal_restarts_total {}", metrics.restarts);
    family(
        &mut out,
        "tidal_workers",
        "gauge",
        "Workers that reported metrics.",
    );
    let _ = writeln!(out, "tidal_workers {}", metrics.workers.len());

    let nodes = metrics.graph.as_ref().map(|g| &g.nodes[..]).unwrap_or(&[]);
    let label = |node: usize, worker: usize| match nodes.get(node) {
        Some(n) => format!(
            "operator=\"{}\",kind=\"{}\",worker=\"{worker}\"",
            escape(&n.name),
            escape(&n.kind)
        ),
        None => format!("operator=\"{node}\",kind=\"\",worker=\"{worker}\""),
    };
    type Pick = fn(&super::OperatorMetrics) -> Option<String>;
    let per_operator: [(&str, &str, &str, Pick); 3] = [
        (
            "tidal_operator_records_in_total",
            "counter",
            "Records an operator received.",
            |o| Some(o.records_in.to_string()),
        ),
        (
            "tidal_operator_records_out_total",
            "counter",
            "Records an operator produced (each output once).",
            |o| Some(o.records_out.to_string()),
        ),
        (
            "tidal_operator_busy_seconds_total",
            "counter",
            "Time spent running the operator.",
            |o| Some(format!("{:.6}", o.busy_ns as f64 / 1e9)),
        ),
    ];
    for (name, kind, help, pick) in per_operator {
        family(&mut out, name, kind, help);
        for w in metrics.workers.values() {
            for o in &w.operators {
                if let Some(v) = pick(o) {
                    let _ = writeln!(out, "{name}{{{}}} {v}", label(o.node, w.worker));
                }
            }
        }
    }
    family(
        &mut out,
        "tidal_operator_input_queue_records",
        "gauge",
        "Records sent to an operator (all its instances) and not yet taken in: a backpressure signal.",
    );
    let mut queued: std::collections::BTreeMap<usize, (u64, u64)> =
        std::collections::BTreeMap::new();
    for w in metrics.workers.values() {
        for o in &w.operators {
            let q = queued.entry(o.node).or_default();
            q.0 += o.records_sent_to;
            q.1 += o.records_in;
        }
    }
    for (node, (sent, taken)) in queued {
        let name = nodes.get(node).map_or(String::new(), |n| escape(&n.name));
        let _ = writeln!(
            out,
            "tidal_operator_input_queue_records{{operator=\"{name}\"}} {}",
            sent.saturating_sub(taken)
        );
    }
    family(
        &mut out,
        "tidal_operator_watermark_ms",
        "gauge",
        "An operator's watermark: every record it will still produce has a later time (absent once it has finished).",
    );
    for w in metrics.workers.values() {
        for o in &w.operators {
            if let Some(wm) = o.watermark.filter(|wm| *wm > i64::MIN) {
                let _ = writeln!(
                    out,
                    "tidal_operator_watermark_ms{{{}}} {wm}",
                    label(o.node, w.worker)
                );
            }
        }
    }
    // An operator's input watermark: the least of its upstream operators' watermarks over
    // every worker (an instance may take input from any worker's upstream instance).
    let mut least: std::collections::BTreeMap<usize, Option<i64>> =
        std::collections::BTreeMap::new();
    for w in metrics.workers.values() {
        for o in &w.operators {
            let e = least.entry(o.node).or_insert(None);
            if let Some(wm) = o.watermark {
                *e = Some(e.map_or(wm, |have| have.min(wm)));
            }
        }
    }
    let edges = metrics.graph.as_ref().map(|g| &g.edges[..]).unwrap_or(&[]);
    family(
        &mut out,
        "tidal_operator_input_watermark_ms",
        "gauge",
        "The least watermark of an operator's inputs over every worker (absent once they have all finished).",
    );
    let mut inputs: Vec<(usize, i64)> = Vec::new();
    for (node, n) in nodes.iter().enumerate() {
        let upstream: Vec<i64> = edges
            .iter()
            .filter(|(_, to)| *to == node)
            .filter_map(|(from, _)| least.get(from).copied().flatten())
            .collect();
        // Time::MIN: an upstream instance has not started; no watermark yet.
        if let Some(wm) = upstream.into_iter().min().filter(|wm| *wm > i64::MIN) {
            inputs.push((node, wm));
            let _ = writeln!(
                out,
                "tidal_operator_input_watermark_ms{{operator=\"{}\"}} {wm}",
                escape(&n.name)
            );
        }
    }
    family(
        &mut out,
        "tidal_operator_input_watermark_lag_ms",
        "gauge",
        "How far an operator's input watermark is behind the clock (event time in ms since the epoch).",
    );
    for (node, wm) in inputs.into_iter().filter(|(_, wm)| *wm > 0) {
        let _ = writeln!(
            out,
            "tidal_operator_input_watermark_lag_ms{{operator=\"{}\"}} {}",
            escape(&nodes[node].name),
            now_ms - wm
        );
    }
    family(
        &mut out,
        "tidal_operator_watermark_lag_ms",
        "gauge",
        "How far an operator's watermark is behind the clock (event time in ms since the epoch).",
    );
    for w in metrics.workers.values() {
        for o in &w.operators {
            if let Some(wm) = o.watermark.filter(|wm| *wm > 0) {
                let _ = writeln!(
                    out,
                    "tidal_operator_watermark_lag_ms{{{}}} {}",
                    label(o.node, w.worker),
                    now_ms - wm
                );
            }
        }
    }
    family(
        &mut out,
        "tidal_state_keys",
        "gauge",
        "Keys held in a state on a worker.",
    );
    for w in metrics.workers.values() {
        for s in &w.states {
            let _ = writeln!(
                out,
                "tidal_state_keys{{state=\"{}\",worker=\"{}\"}} {}",
                escape(&s.name),
                w.worker,
                s.keys
            );
        }
    }
    family(
        &mut out,
        "tidal_state_bytes",
        "gauge",
        "Bytes a state's entries take encoded on a worker (a whole snapshot's size), as last measured.",
    );
    for w in metrics.workers.values() {
        for s in &w.states {
            if let Some(bytes) = s.bytes {
                let _ = writeln!(
                    out,
                    "tidal_state_bytes{{state=\"{}\",worker=\"{}\"}} {bytes}",
                    escape(&s.name),
                    w.worker
                );
            }
        }
    }
    let c = &metrics.checkpoints;
    family(
        &mut out,
        "tidal_checkpoints_completed_total",
        "counter",
        "Checkpoints and savepoints completed.",
    );
    let _ = writeln!(out, "tidal_checkpoints_completed_total {}", c.completed);
    family(
        &mut out,
        "tidal_checkpoints_failed_total",
        "counter",
        "Checkpoints abandoned or failed.",
    );
    let _ = writeln!(out, "tidal_checkpoints_failed_total {}", c.failed);
    if let Some(&super::CheckpointRecord {
        id,
        bytes,
        duration_ms: ms,
        completed_ms: at,
        ..
    }) = c.last()
    {
        family(
            &mut out,
            "tidal_last_checkpoint_id",
            "gauge",
            "Id of the last completed checkpoint.",
        );
        let _ = writeln!(out, "tidal_last_checkpoint_id {id}");
        family(
            &mut out,
            "tidal_last_checkpoint_bytes",
            "gauge",
            "Size of the last completed checkpoint.",
        );
        let _ = writeln!(out, "tidal_last_checkpoint_bytes {bytes}");
        family(
            &mut out,
            "tidal_last_checkpoint_duration_ms",
            "gauge",
            "How long the last completed checkpoint took from start to completion.",
        );
        let _ = writeln!(out, "tidal_last_checkpoint_duration_ms {ms}");
        family(
            &mut out,
            "tidal_last_checkpoint_completed_ms",
            "gauge",
            "When the last checkpoint completed (ms since the epoch).",
        );
        let _ = writeln!(out, "tidal_last_checkpoint_completed_ms {at}");
    }
    out
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
