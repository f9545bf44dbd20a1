//! Broadcast state against a from-scratch model, on 1 worker, 2 threads and 2 processes: rule
//! versions broadcast to every worker while the keyed stream runs.

mod common;
#[path = "common/rules.rs"]
mod rules;

use common::{on_every_shape, sorted};
use rules::{MatchRules, event, model, rule};
use tidal::engine::WatermarkStrategy;
use tidal::prelude::*;

#[test]
fn broadcast_rules_changed_mid_run_match_the_model() {
    const EVENTS: u64 = 30_000;
    // Versions up to a little past the last event (10 s of event time).
    const VERSIONS: u64 = rules::RULES * 8;
    let expected = model(EVENTS, VERSIONS);
    assert!(
        expected.len() > 10_000,
        "the model matches often enough to tell"
    );
    on_every_shape(
        "broadcast_rules_changed_mid_run_match_the_model",
        |env| {
            let by_time = |r: &(u64, i64, i64)| r.2;
            let rules = env
                .generate_with(
                    Generator::new(rule).count(VERSIONS),
                    WatermarkStrategy::monotonous().with_timestamps(|r: &(u64, i64, i64)| r.1),
                )
                .broadcast_state(&MapStateDescriptor::new("rules"));
            env.generate_with(
                Generator::new(event).count(EVENTS),
                WatermarkStrategy::monotonous().with_timestamps(by_time),
            )
            .map(|(account, amount, ts)| (account, (amount, ts)))
            .keyed()
            .connect(rules)
            .process(MatchRules)
            .collect()
        },
        |shape, out| {
            let out = sorted(out);
            if out != expected {
                let extra: Vec<_> = out
                    .iter()
                    .filter(|r| !expected.contains(r))
                    .take(5)
                    .collect();
                let missing: Vec<_> = expected
                    .iter()
                    .filter(|r| !out.contains(r))
                    .take(5)
                    .collect();
                panic!(
                    "{shape:?}: {} records against the model's {}; extra {extra:?}, missing {missing:?}",
                    out.len(),
                    expected.len()
                );
            }
        },
    );
}
