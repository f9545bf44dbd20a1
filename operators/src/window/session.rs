//! Session windows: per key, windows that grow and merge as records come (see
//! [`Windows::session`](crate::Windows::session)).
//!
//! Same rules as the other windows (firing when the frontier reaches a window's end, time-ordered
//! folding, lateness against the sending source's watermark, allowed lateness and the late side
//! output), with one difference: a record's window `[ts, ts + gap)` merges with every window of its
//! key that it overlaps or touches, combining their accumulators with `merge`.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::build::{FastMap, TimeBuffer};
use tidal_engine::{Result, Time, WorkerContext, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;

use crate::build::{Activation, EntryWriter, Initial, KeyedStore, Outputs, Owner, keyed_operator};
use crate::keyed::{Key, Value};
use crate::window::Window;
use crate::window::operator::{Arrivals, receive};

struct Session<A> {
    start: Time,
    end: Time,
    acc: A,
    fired: bool,
}

/// Open sessions of one operator on one worker, per key.
pub(crate) struct SessionState<K, A> {
    sessions: FastMap<K, Vec<Session<A>>>,
}

impl<K: Key, A: Value> KeyedStore for SessionState<K, A> {
    type Key = K;
    /// A session: its window, whether it fired, its accumulator.
    type Entry = (Window, bool, A);
    fn key_count(&self) -> usize {
        self.sessions.values().map(Vec::len).sum()
    }
    fn write_entries(&self, _cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        for (k, list) in &self.sessions {
            for s in list {
                let window = Window {
                    start: s.start,
                    end: s.end,
                };
                out.entry(k, &(window, s.fired, &s.acc))?;
            }
        }
        Ok(())
    }
    fn encoded_bytes(&self) -> Option<u64> {
        tidal_engine::state::measure_entries(|out| self.write_entries(Time::MAX, out))
    }
    fn restore(&mut self, entries: Vec<(K, Self::Entry)>, _owner: Owner) -> Result<()> {
        for (k, (w, fired, acc)) in entries {
            self.sessions.entry(k).or_default().push(Session {
                start: w.start,
                end: w.end,
                acc,
                fired,
            });
        }
        Ok(())
    }
}

/// Sessions to fire, by end: the time their results are emitted at and the keys (stale entries,
/// whose session grew or merged, are skipped when they come up), with one capability at or below
/// every such time. (A capability per end — thousands of distinct times — had timely's progress
/// tracking sort them on every step: a third of a session job's time.)
struct Due<K> {
    by_end: BTreeMap<Time, (Time, Vec<K>)>,
    held: Option<Capability<Time>>,
}

impl<K> Due<K> {
    fn new() -> Self {
        Due {
            by_end: BTreeMap::new(),
            held: None,
        }
    }

    /// Makes `key`'s session ending at `end` due, emitted at `at` (at least `end - 1`); `cap` is
    /// at or below `at`.
    fn add(&mut self, end: Time, at: Time, cap: &Capability<Time>, key: K) {
        let (at, keys) = self.by_end.entry(end).or_insert_with(|| (at, Vec::new()));
        keys.push(key);
        if self.held.as_ref().is_none_or(|h| h.time() > at) {
            self.held = Some(cap.delayed(at));
        }
    }

    /// Takes the first sessions due at or before `limit`: their end, the capability to emit
    /// them with, and their keys.
    fn next_up_to(&mut self, limit: Time) -> Option<(Time, Capability<Time>, Vec<K>)> {
        let entry = self.by_end.first_entry()?;
        if *entry.key() > limit {
            return None;
        }
        let end = *entry.key();
        let (at, keys) = entry.remove();
        let cap = self
            .held
            .as_ref()
            .expect("held while sessions are due")
            .delayed(&at);
        Some((end, cap, keys))
    }

    /// Moves the capability up to the first end still due (every time still to be emitted at is
    /// at least that end - 1), or drops it when none is.
    fn settle(&mut self) {
        match self.by_end.first_key_value() {
            None => self.held = None,
            Some((&end, _)) => {
                if let Some(held) = self.held.as_mut()
                    && *held.time() < end - 1
                {
                    held.downgrade(&(end - 1));
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn session_operator<'s, K: Key, V: Value, A: Value, O: 'static>(
    input: timely::dataflow::StreamVec<'s, Time, ((K, V), Time)>,
    name: &str,
    ctx: &Rc<WorkerContext>,
    gap: Time,
    lateness: Time,
    keep_late: bool,
    create: impl Fn(V) -> A + 'static,
    add: impl Fn(&mut A, V) + 'static,
    merge: impl Fn(&mut A, A) + 'static,
    finish: impl Fn(&K, &Window, &A) -> O + 'static,
) -> Outputs<'s, O, (K, V)> {
    let state = SessionState::<K, A> {
        sessions: FastMap::default(),
    };
    keyed_operator(ctx, input, name, state).build(move |setup| {
        let state = setup.state;
        let mut pending: TimeBuffer<Arrivals<K, V>> = TimeBuffer::new();
        let mut due: Due<K> = Due::new();
        // Fired sessions to forget once past their allowed lateness, by end + lateness.
        let mut expiry: BTreeMap<Time, Vec<K>> = BTreeMap::new();
        let mut fired: Time = Time::MIN;
        move |act: Activation<'_, K, V, O, (K, V)>| {
            let Activation {
                input,
                frontier,
                output: mut main,
                side: mut late,
                initial,
                late_dropped,
                ..
            } = act;
            receive(input, &mut pending, keep_late);
            let mut state = state.borrow_mut();
            let sessions = &mut state.sessions;
            // Restored: sessions ending at or before the cut fired before the snapshot; the
            // others are due, with capabilities from the operator's initial one.
            if let Some(Initial {
                restored_cut: Some(cut),
                output: first,
                ..
            }) = initial
            {
                fired = cut;
                for (k, list) in sessions.iter() {
                    for s in list {
                        if s.fired {
                            expiry
                                .entry(s.end.saturating_add(lateness))
                                .or_default()
                                .push(k.clone());
                        } else {
                            due.add(s.end, cut.max(s.end - 1), &first, k.clone());
                        }
                    }
                }
            }

            // Fires every session with end <= limit, then forgets those past their lateness.
            let fire_up_to =
                |limit: Time,
                 sessions: &mut FastMap<K, Vec<Session<A>>>,
                 due: &mut Due<K>,
                 expiry: &mut BTreeMap<Time, Vec<K>>,
                 fired: &mut Time,
                 main: &mut timely::dataflow::operators::generic::OutputBuilderSession<
                    '_,
                    Time,
                    CapacityContainerBuilder<Vec<(O, Time)>>,
                >| {
                    if limit <= *fired {
                        return;
                    }
                    while let Some((end, cap, keys)) = due.next_up_to(limit) {
                        let mut session = main.session(&cap);
                        for k in keys {
                            let Some(list) = sessions.get_mut(&k) else {
                                continue;
                            };
                            if let Some(s) = list.iter_mut().find(|s| s.end == end && !s.fired) {
                                s.fired = true;
                                let window = Window {
                                    start: s.start,
                                    end,
                                };
                                session.give((finish(&k, &window, &s.acc), window.max_timestamp()));
                                expiry
                                    .entry(end.saturating_add(lateness))
                                    .or_default()
                                    .push(k);
                            }
                        }
                    }
                    due.settle();
                    *fired = limit;
                    while let Some(entry) = expiry.first_entry() {
                        if *entry.key() > *fired {
                            break;
                        }
                        for k in entry.remove() {
                            if let Some(list) = sessions.get_mut(&k) {
                                list.retain(|s| {
                                    !(s.fired && s.end.saturating_add(lateness) <= *fired)
                                });
                                if list.is_empty() {
                                    sessions.remove(&k);
                                }
                            }
                        }
                    }
                };

            for (cap, arrivals) in pending.ready(frontier) {
                let t = *cap.time();
                fire_up_to(t, sessions, &mut due, &mut expiry, &mut fired, &mut main);
                let mut refire = Vec::new();
                for ((k, v), ts) in arrivals.records.into_iter().flatten() {
                    let list = sessions.entry(k.clone()).or_default();
                    // Merge with every session of the key that overlaps or touches [ts, ts + gap).
                    let (mut start, mut end) = (ts, ts + gap);
                    let mut acc: Option<A> = None;
                    let mut was_fired = false;
                    let mut i = 0;
                    while i < list.len() {
                        let s = &list[i];
                        if s.start <= end && start <= s.end {
                            let s = list.swap_remove(i);
                            start = start.min(s.start);
                            end = end.max(s.end);
                            was_fired |= s.fired;
                            match acc.as_mut() {
                                Some(a) => merge(a, s.acc),
                                None => acc = Some(s.acc),
                            }
                        } else {
                            i += 1;
                        }
                    }
                    if end.saturating_add(lateness) <= fired {
                        // Too late even for the merged session: put back what was taken.
                        if let Some(a) = acc {
                            list.push(Session {
                                start,
                                end,
                                acc: a,
                                fired: was_fired,
                            });
                        } else if list.is_empty() {
                            sessions.remove(&k);
                        }
                        match (&arrivals.late_cap, keep_late) {
                            (Some(late_cap), true) => late.session(late_cap).give(((k, v), ts)),
                            _ => *late_dropped += 1,
                        }
                        continue;
                    }
                    let acc = match acc {
                        Some(mut a) => {
                            add(&mut a, v);
                            a
                        }
                        None => create(v),
                    };
                    let fired_now = end <= fired;
                    list.push(Session {
                        start,
                        end,
                        acc,
                        fired: fired_now,
                    });
                    if fired_now {
                        refire.push((k, start, end));
                    } else {
                        due.add(end, t.max(end - 1), &cap, k);
                    }
                }
                // Late records within the allowed lateness fire their session again.
                if !refire.is_empty() {
                    let mut session = main.session(&cap);
                    for (k, start, end) in refire {
                        if let Some(s) = sessions
                            .get(&k)
                            .and_then(|l| l.iter().find(|s| s.start == start && s.end == end))
                        {
                            let window = Window { start, end };
                            session.give((finish(&k, &window, &s.acc), window.max_timestamp()));
                        }
                        expiry
                            .entry(end.saturating_add(lateness))
                            .or_default()
                            .push(k);
                    }
                }
            }
            let reached = frontier.frontier().first().copied().unwrap_or(Time::MAX);
            fire_up_to(
                reached,
                sessions,
                &mut due,
                &mut expiry,
                &mut fired,
                &mut main,
            );
        }
    })
}
