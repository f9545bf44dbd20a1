//! Interval and window joins against a from-scratch model on every shape.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{on_every_shape, sorted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tidal::engine::WatermarkStrategy;
use tidal::prelude::*;

/// (key, id, timestamp), at most `disorder` ms out of order.
fn side(seed: u64, n: usize, disorder: i64) -> Arc<Vec<(u8, u32, i64)>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t = 0i64;
    let mut v: Vec<(i64, (u8, u32, i64))> = (0..n as u32)
        .map(|id| {
            t += rng.random_range(0..6);
            (
                t + rng.random_range(0..=disorder),
                (rng.random_range(0..5), id, t),
            )
        })
        .collect();
    v.sort_by_key(|(k, _)| *k);
    Arc::new(v.into_iter().map(|(_, e)| e).collect())
}

fn strategy() -> WatermarkStrategy<(u8, u32, i64)> {
    WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(40))
        .with_timestamps(|e: &(u8, u32, i64)| e.2)
}

/// The two sides keyed by their key, as `(id, timestamp)`, connected.
fn connected<'s>(
    env: &mut Env<'s>,
    a: &[(u8, u32, i64)],
    b: &[(u8, u32, i64)],
) -> ConnectedStreams<'s, u8, (u32, i64), (u32, i64)> {
    let keyed = |env: &mut Env<'s>, v: &[(u8, u32, i64)]| {
        env.from_iter_with(v.to_vec(), strategy())
            .map(|(k, id, ts)| (k, (id, ts)))
            .keyed()
    };
    let left = keyed(env, a);
    left.connect(keyed(env, b))
}

#[test]
fn interval_join_matches_the_model() {
    let (lower, upper) = (-30i64, 50i64);
    let (a, b) = (side(1, 3000, 40), side(2, 3000, 40));
    let mut expected = Vec::new();
    for &(ka, ia, ta) in a.iter() {
        for &(kb, ib, tb) in b.iter() {
            if ka == kb && ta + lower <= tb && tb <= ta + upper {
                expected.push((ka, ia, ib, ta.max(tb)));
            }
        }
    }
    let expected = sorted(expected);
    assert!(expected.len() > 1000);
    let (da, db) = (Arc::clone(&a), Arc::clone(&b));
    on_every_shape(
        "interval_join_matches_the_model",
        move |env| {
            connected(env, &da, &db)
                .interval_join(lower, upper, |k, l, r| (*k, l.0, r.0, l.1.max(r.1)))
                .collect()
        },
        |shape, out| {
            let out = sorted(out);
            assert_eq!(out.len(), expected.len(), "{shape:?}: number of pairs");
            assert!(out == expected, "{shape:?}: pairs differ from the model");
        },
    );
}

/// A join bounded on one side only (the right record at or after the left one, however long
/// after): the left records are kept for as long as the job runs, the right ones dropped as the
/// watermark passes them; every matching pair comes out once, with no overflow at the open end.
#[test]
fn interval_join_bounded_on_one_side_matches_the_model() {
    let (a, b) = (side(5, 1500, 40), side(6, 1500, 40));
    let mut expected = Vec::new();
    for &(ka, ia, ta) in a.iter() {
        for &(kb, ib, tb) in b.iter() {
            if ka == kb && ta <= tb {
                expected.push((ka, ia, ib, ta.max(tb)));
            }
        }
    }
    let expected = sorted(expected);
    assert!(expected.len() > 10_000);
    let (da, db) = (Arc::clone(&a), Arc::clone(&b));
    on_every_shape(
        "interval_join_bounded_on_one_side_matches_the_model",
        move |env| {
            connected(env, &da, &db)
                .interval_join(0, i64::MAX, |k, l, r| (*k, l.0, r.0, l.1.max(r.1)))
                .collect()
        },
        |shape, out| {
            let out = sorted(out);
            assert_eq!(out.len(), expected.len(), "{shape:?}: number of pairs");
            assert!(out == expected, "{shape:?}: pairs differ from the model");
        },
    );
}

/// Both ends open (a regular join of append-only inputs, as SQL plans one): every pair of a key,
/// late records too, and records at the earliest time there is (a SQL row whose event time is
/// NULL is at `i64::MIN`), which no bound arithmetic may push out of the join.
#[test]
fn interval_join_with_both_ends_open_joins_every_pair_of_a_key() {
    let at_min = |v: Arc<Vec<(u8, u32, i64)>>| {
        Arc::new(
            v.iter()
                .map(|&(k, id, t)| (k, id, if id % 50 == 7 { i64::MIN } else { t }))
                .collect::<Vec<_>>(),
        )
    };
    let (a, b) = (at_min(side(7, 800, 40)), at_min(side(8, 800, 40)));
    let mut expected = Vec::new();
    for &(ka, ia, ta) in a.iter() {
        for &(kb, ib, tb) in b.iter() {
            if ka == kb {
                expected.push((ka, ia, ib, ta.max(tb)));
            }
        }
    }
    let expected = sorted(expected);
    assert!(expected.iter().any(|e| e.3 == i64::MIN));
    let (da, db) = (Arc::clone(&a), Arc::clone(&b));
    on_every_shape(
        "interval_join_with_both_ends_open_joins_every_pair_of_a_key",
        move |env| {
            connected(env, &da, &db)
                .interval_join(i64::MIN, i64::MAX, |k, l, r| (*k, l.0, r.0, l.1.max(r.1)))
                .collect()
        },
        |shape, out| {
            let out = sorted(out);
            assert_eq!(out.len(), expected.len(), "{shape:?}: number of pairs");
            assert!(out == expected, "{shape:?}: pairs differ from the model");
        },
    );
}

#[test]
fn window_join_matches_the_model() {
    let windows = Windows::tumbling(Duration::from_millis(100));
    let (a, b) = (side(3, 2000, 40), side(4, 2000, 40));
    let mut expected = Vec::new();
    for &(ka, ia, ta) in a.iter() {
        for &(kb, ib, tb) in b.iter() {
            let (wa, wb) = (windows.windows_of(ta)[0], windows.windows_of(tb)[0]);
            if ka == kb && wa == wb {
                expected.push((ka, ia, ib, wa.start));
            }
        }
    }
    let expected = sorted(expected);
    let (da, db) = (Arc::clone(&a), Arc::clone(&b));
    on_every_shape(
        "window_join_matches_the_model",
        move |env| {
            connected(env, &da, &db)
                .window_join(windows, move |k, l, r| {
                    (*k, l.0, r.0, windows.windows_of(l.1)[0].start)
                })
                .collect()
        },
        |shape, out| {
            assert!(
                sorted(out) == expected,
                "{shape:?}: pairs differ from the model"
            )
        },
    );
}
