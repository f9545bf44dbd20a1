//! Fraud rules that change while the job runs (the broadcast-state pattern): a stream of rule
//! versions is broadcast to every worker, and every card transaction is checked against the
//! rules in effect at its timestamp.
//!
//! Rules (`--rules FILE`, CSV with a header, in order of `effectiveFrom`; without it, an embedded
//! set with changes mid-run):
//! `effectiveFrom,ruleId,kind,limit,windowMs` where `kind` is
//! - `max_amount`: alert on a transaction of more than `limit`;
//! - `max_count`: alert on a transaction when the account has more than `limit` transactions
//!   within the `windowMs` ms up to and including its timestamp;
//! - `off`: the rule no longer applies.
//!
//! A version takes effect at `effectiveFrom` (event time) and replaces the rule's earlier version.
//!
//! Transactions: generated (`--count N`, default 10 000, 10 accounts, one every 100 ms of event
//! time; `--rate R` per second) or `--input FILE`: CSV `accountId,timestamp,amount` with a header.
//!
//! Output: one `ruleId,accountId,timestamp,amount` line per alert, no header.
//!
//! How it stays exact: each transaction waits in its account's state until the watermark of
//! both streams passes its timestamp (an event-time timer); by then every rule version that takes
//! effect at or before it has arrived, so the alerts do not depend on how fast either stream was
//! read, nor on the number of workers. A version that arrives after transactions it covers were
//! checked applies only to later ones (a warning says so).
//!
//! ```text
//! cargo run --release --example fraud_rules [-- --rules R.csv --input T.csv -w 2 --output DIR]
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_RULES: &str = include_str!("data/fraud_rules.csv");

/// A card transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transaction {
    account_id: u32,
    timestamp: i64,
    amount: f64,
}

/// What a rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    MaxAmount,
    MaxCount,
    Off,
}

/// A version of a rule, in effect from `effective_from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleVersion {
    effective_from: i64,
    rule_id: u32,
    kind: Kind,
    limit: f64,
    window_ms: Option<i64>,
}

/// Per rule, its versions by the time they take effect (`None`: off from then on).
type Versions = BTreeMap<Time, Option<RuleVersion>>;

/// Per account: transactions waiting for the watermark, and the timestamps of those checked
/// within the longest window a rule may have.
#[derive(Default, Serialize, Deserialize)]
struct Account {
    waiting: BTreeMap<Time, Vec<f64>>,
    recent: VecDeque<Time>,
}

/// Checks transactions against the rules; `max_window` is the longest window a `max_count` rule
/// may have (the transactions of each account within it are kept).
struct CheckRules {
    max_window: i64,
}

impl KeyedBroadcastProcessFunction<u32, Transaction, RuleVersion> for CheckRules {
    type State = Account;
    type MapKey = u32;
    type MapValue = Versions;
    type Out = String;
    type Side = ();

    fn process_element(
        &mut self,
        t: Transaction,
        _rules: &BroadcastState<u32, Versions>,
        ctx: &mut ProcessContext<'_, u32, Account, String, ()>,
    ) {
        ctx.state()
            .waiting
            .entry(t.timestamp)
            .or_default()
            .push(t.amount);
        ctx.register_event_time_timer(t.timestamp);
    }

    fn process_broadcast_element(
        &mut self,
        mut rule: RuleVersion,
        ctx: &mut BroadcastContext<'_, u32, Versions, String, ()>,
    ) {
        let watermark = ctx.current_watermark();
        if let Some(window) = rule.window_ms.filter(|w| *w > self.max_window) {
            if ctx.worker_index() == 0 {
                eprintln!(
                    "warning: rule {} version effective from {}: windowMs {window} is longer than \
                     the {} ms of transactions kept; it counts within {} ms (raise \
                     --max-window-ms)",
                    rule.rule_id, rule.effective_from, self.max_window, self.max_window
                );
            }
            rule.window_ms = Some(self.max_window);
        }
        if rule.effective_from <= watermark && ctx.worker_index() == 0 {
            eprintln!(
                "warning: rule {} version effective from {} arrived after transactions up to {} \
                 were checked; it applies only to later ones (keep the rules file in order of \
                 effectiveFrom)",
                rule.rule_id, rule.effective_from, watermark
            );
        }
        let versions = ctx.state().entry(rule.rule_id).or_default();
        let from = rule.effective_from;
        versions.insert(from, (rule.kind != Kind::Off).then_some(rule));
        // Only the version in effect at the next timer that can fire, and later ones, are needed.
        if let Some((&current, _)) = versions.range(..=watermark + 1).next_back() {
            versions.retain(|t, _| *t >= current);
        }
    }

    fn on_timer(
        &mut self,
        at: Time,
        _domain: TimeDomain,
        rules: &BroadcastState<u32, Versions>,
        ctx: &mut ProcessContext<'_, u32, Account, String, ()>,
    ) {
        let account_id = *ctx.key();
        let in_effect: Vec<&RuleVersion> = rules
            .iter()
            .filter_map(|(_, versions)| versions.range(..=at).next_back()?.1.as_ref())
            .collect();
        let state = ctx.state();
        let amounts = state.waiting.remove(&at).unwrap_or_default();
        state.recent.extend(amounts.iter().map(|_| at));
        while state
            .recent
            .front()
            .is_some_and(|t| *t <= at - self.max_window)
        {
            state.recent.pop_front();
        }
        let mut alerts = Vec::new();
        for rule in &in_effect {
            let hit = |amount: f64| match rule.kind {
                Kind::MaxAmount => amount > rule.limit,
                Kind::MaxCount => {
                    let window = rule.window_ms.unwrap_or(0);
                    let within = state.recent.iter().filter(|t| **t > at - window).count();
                    within as f64 > rule.limit
                }
                Kind::Off => false,
            };
            for amount in amounts.iter().filter(|a| hit(**a)) {
                alerts.push(format!("{},{account_id},{at},{amount:.2}", rule.rule_id));
            }
        }
        if state.waiting.is_empty() && state.recent.is_empty() {
            ctx.clear_state();
        }
        for alert in alerts {
            ctx.output(alert);
        }
    }
}

/// Transactions of 10 accounts, one every 100 ms of event time (deterministic).
fn transaction(i: u64) -> Transaction {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    Transaction {
        account_id: 1 + ((x >> 8) % 10) as u32,
        timestamp: 1_577_880_000_000 + 100 * i as i64,
        amount: (1 + x % 100_000) as f64 / 100.0,
    }
}

/// Check card transactions against fraud rules that change while the job runs.
#[derive(Parser)]
#[command(name = "fraud_rules")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// Rule versions (CSV, in order of effectiveFrom); without it, an embedded set.
    #[arg(long, value_name = "FILE")]
    rules: Option<String>,
    /// Read transactions from CSV files instead of generating them.
    #[arg(long, value_name = "FILE")]
    input: Option<String>,
    /// Number of transactions to generate.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Generated transactions per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// The longest window a `max_count` rule may have, in ms (each account's transactions within
    /// it are kept).
    #[arg(long, default_value_t = 3_600_000, value_name = "MS")]
    max_window_ms: i64,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
}

fn main() -> ExitCode {
    tidal::main_with(|args: Args| {
        let job = Job::new(&args.tidal)?;
        let Args {
            rules,
            input,
            count,
            rate,
            output,
            max_window_ms,
            ..
        } = args;
        if max_window_ms <= 0 {
            return Err(tidal::Error::config("--max-window-ms must be positive"));
        }
        let embedded = embedded_rules()?;
        job.run(move |env| {
            let by_effect =
                WatermarkStrategy::monotonous().with_timestamps(|r: &RuleVersion| r.effective_from);
            let rules = match &rules {
                Some(path) => env.read_with(CsvFiles::<RuleVersion>::new(path), by_effect),
                None => env.from_iter_with(embedded.clone(), by_effect),
            }
            .name("rules")
            .broadcast_state(&MapStateDescriptor::new("rules"));
            let by_time =
                WatermarkStrategy::monotonous().with_timestamps(|t: &Transaction| t.timestamp);
            let transactions = match &input {
                Some(path) => env.read_with(CsvFiles::<Transaction>::new(path), by_time),
                None => {
                    let mut generator = Generator::new(transaction).count(count);
                    if let Some(r) = rate {
                        generator = generator.rate(r);
                    }
                    env.generate_with(generator, by_time)
                }
            }
            .name("transactions");
            let alerts = transactions
                .key_by(|t| t.account_id)
                .connect(rules)
                .process(CheckRules {
                    max_window: max_window_ms,
                })
                .name("check rules");
            match &output {
                Some(dir) => alerts.write_text(dir.clone()),
                None => alerts.print(),
            }
        })
    })
}

/// The embedded rule versions.
fn embedded_rules() -> tidal::Result<Vec<RuleVersion>> {
    let mut lines = DEFAULT_RULES.lines().enumerate();
    lines.next();
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let bad = |what: &str| {
                tidal::Error::config(format!("embedded rules, line {}: {what}", n + 1))
            };
            let number = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok());
            Ok(RuleVersion {
                effective_from: number(0).ok_or_else(|| bad("effectiveFrom"))? as i64,
                rule_id: number(1).ok_or_else(|| bad("ruleId"))? as u32,
                kind: match f.get(2) {
                    Some(&"max_amount") => Kind::MaxAmount,
                    Some(&"max_count") => Kind::MaxCount,
                    Some(&"off") => Kind::Off,
                    _ => return Err(bad("kind")),
                },
                limit: number(3).ok_or_else(|| bad("limit"))?,
                window_ms: number(4).map(|w| w as i64),
            })
        })
        .collect()
}
