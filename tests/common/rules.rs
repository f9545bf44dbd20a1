//! A rule-matching job on broadcast state, and its model: thresholds per rule arrive on a
//! broadcast stream as versions that take effect at their event time; each account's amounts are
//! matched, when the watermark passes their timestamp, against the versions then in effect.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tidal::engine::Time;
use tidal::prelude::*;

/// Number of rules; each gets a new threshold every `RULE_EVERY` ms of event time.
pub const RULES: u64 = 3;
pub const RULE_EVERY: i64 = 1_500;
/// Marks "a rule version was accepted" records (emitted by worker 0's broadcast side) in the
/// output, in place of an account.
pub const ACCEPTED: u64 = u64::MAX;

/// Rule version `i`: rule `i % RULES`, taking effect at `(i / RULES) * RULE_EVERY`, threshold
/// between 20 and 80.
pub fn rule(i: u64) -> (u64, i64, i64) {
    let rule = i % RULES;
    let version = (i / RULES) as i64;
    (
        rule,
        version * RULE_EVERY,
        20 + ((version * 37 + rule as i64 * 11) % 61),
    )
}

/// Event `i`: account `i % 7`, amount `(i * 13) % 100`, timestamp `i / 3` ms (in order).
pub fn event(i: u64) -> (u64, i64, i64) {
    (i % 7, ((i * 13) % 100) as i64, (i / 3) as i64)
}

/// Per rule, its thresholds by the event time they take effect.
type Versions = BTreeMap<u64, BTreeMap<Time, i64>>;

/// Matches amounts against the rules in effect at their timestamp. Output: `(account, timestamp,
/// amount, rule)` per amount over a rule's threshold, and `(ACCEPTED, effective, threshold,
/// rule)` once per rule version (from worker 0).
pub struct MatchRules;

#[derive(Default, Serialize, Deserialize)]
pub struct Pending {
    amounts: BTreeMap<Time, Vec<i64>>,
}

impl KeyedBroadcastProcessFunction<u64, (i64, Time), (u64, i64, i64)> for MatchRules {
    type State = Pending;
    type MapKey = u64;
    type MapValue = BTreeMap<Time, i64>;
    type Out = (u64, Time, i64, u64);
    type Side = ();
    fn process_element(
        &mut self,
        (amount, ts): (i64, Time),
        _rules: &BroadcastState<u64, BTreeMap<Time, i64>>,
        ctx: &mut ProcessContext<'_, u64, Pending, Self::Out, ()>,
    ) {
        ctx.state().amounts.entry(ts).or_default().push(amount);
        ctx.register_event_time_timer(ts);
    }
    fn process_broadcast_element(
        &mut self,
        (rule, effective, threshold): (u64, i64, i64),
        ctx: &mut BroadcastContext<'_, u64, BTreeMap<Time, i64>, Self::Out, ()>,
    ) {
        // Versions in effect before the next timer that can fire are no longer needed.
        let next_timer = ctx.current_watermark() + 1;
        let versions = ctx.state().entry(rule).or_default();
        versions.insert(effective, threshold);
        if let Some((&current, _)) = versions.range(..=next_timer).next_back() {
            versions.retain(|t, _| *t >= current);
        }
        if ctx.worker_index() == 0 {
            ctx.output((ACCEPTED, effective, threshold, rule));
        }
    }
    fn on_timer(
        &mut self,
        at: Time,
        _: TimeDomain,
        rules: &BroadcastState<u64, BTreeMap<Time, i64>>,
        ctx: &mut ProcessContext<'_, u64, Pending, Self::Out, ()>,
    ) {
        let account = *ctx.key();
        let amounts = ctx.state().amounts.remove(&at).unwrap_or_default();
        for (rule, versions) in rules.iter() {
            let Some((_, threshold)) = versions.range(..=at).next_back() else {
                continue;
            };
            for &amount in &amounts {
                if amount > *threshold {
                    ctx.output((account, at, amount, *rule));
                }
            }
        }
        if ctx.state().amounts.is_empty() {
            ctx.clear_state();
        }
    }
}

/// The model: what `MatchRules` emits for `events` events and `rules` rule versions, sorted.
pub fn model(events: u64, rules: u64) -> Vec<(u64, Time, i64, u64)> {
    let mut versions: Versions = BTreeMap::new();
    let mut out = Vec::new();
    for i in 0..rules {
        let (rule, effective, threshold) = rule(i);
        versions
            .entry(rule)
            .or_default()
            .insert(effective, threshold);
        out.push((ACCEPTED, effective, threshold, rule));
    }
    for i in 0..events {
        let (account, amount, ts) = event(i);
        for (rule, v) in &versions {
            if let Some((_, threshold)) = v.range(..=ts).next_back()
                && amount > *threshold
            {
                out.push((account, ts, amount, *rule));
            }
        }
    }
    out.sort();
    out
}
