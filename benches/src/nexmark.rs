//! Nexmark queries written directly on timely: the overhead floor for the `nexmark` example.
//!
//! Each worker generates the events `n` with `n % peers == index` (the same events as Tidal's
//! generator, from `NexmarkConfig::event`) in batches; a batch is sent at the time of its first
//! event and the source's capability then follows the event time, so every input frontier is the
//! event time still to come (a monotonous watermark, as the example uses). Windows keep a
//! capability per window end and fire when the frontier passes their last timestamp. The results
//! are the example's lines, written as they are made to one part file per worker.
//!
//! The queries: q0, q1, q2 (stateless), q3 (incremental join of sellers and auctions), q4 and q6
//! (winning bids of closed auctions, averaged per category / over each seller's last 10), q5 (hot
//! items, sliding windows), q7 (highest bid, tumbling windows), q8 (new users, a window join),
//! q11 (bids per user session) and q12 (bids per bidder per processing-time window).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use tidal::connectors::nexmark::{Event, NexmarkConfig};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::{Scope, StreamVec};

use crate::baselines::{Out, fx_hash};

/// The queries with a baseline.
pub const QUERIES: [&str; 11] = [
    "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q11", "q12",
];

/// `(auction, bidder, price, date_time)`.
type BidRow = (u64, u64, u64, i64);

const TEN_SECONDS: i64 = 10_000;

/// Runs `query` over `events` events (`event_rate` per second of event time) on `workers` threads.
pub fn run(query: &str, events: u64, event_rate: u64, workers: usize, out: Out) {
    assert!(QUERIES.contains(&query), "no timely baseline for {query}");
    let query = query.to_string();
    let config = NexmarkConfig {
        events_per_second: event_rate.max(1),
        ..NexmarkConfig::default()
    };
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers() as u64;
        let out = out.clone();
        worker.dataflow::<i64, _, _>(|scope| {
            let events = generate(scope, config, events, index as u64, peers);
            match query.as_str() {
                "q0" | "q1" | "q2" => {
                    let q = query.clone();
                    events
                        .flat_map(move |e| match e {
                            Event::Bid(b) => match q.as_str() {
                                "q0" => Some(format!(
                                    "{},{},{},{}",
                                    b.auction, b.bidder, b.price, b.date_time
                                )),
                                "q1" => Some(format!(
                                    "{},{},{},{}",
                                    b.auction,
                                    b.bidder,
                                    b.price * 908 / 1000,
                                    b.date_time
                                )),
                                _ => (b.auction % 123 == 0)
                                    .then(|| format!("{},{}", b.auction, b.price)),
                            },
                            _ => None,
                        })
                        .sink(Pipeline, "write", {
                            let mut writer = out.writer(index);
                            move |(input, _)| {
                                input.for_each(|_, data| writer.write_lines(data.drain(..)))
                            }
                        })
                }
                "q3" => q3(events, out, index),
                "q4" => q4(closed_auctions(events), out, index),
                "q5" => q5(events, out, index),
                "q6" => q6(closed_auctions(events), out, index),
                "q7" => q7(events, out, index),
                "q8" => q8(events, out, index),
                "q11" => q11(events, out, index),
                _ => q12(events, out, index),
            }
        });
    })
    .expect("timely runs");
}

/// Worker `index`'s events, at their event times.
fn generate<'s>(
    scope: Scope<'s, i64>,
    config: NexmarkConfig,
    count: u64,
    index: u64,
    peers: u64,
) -> StreamVec<'s, i64, Event> {
    source::<_, CapacityContainerBuilder<Vec<Event>>, _, _>(scope, "events", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut next = index;
        move |output| {
            let Some(c) = cap.as_mut() else {
                return;
            };
            let mut batch = Vec::with_capacity(1024);
            while batch.len() < 1024 && next < count {
                batch.push(config.event(next));
                next += peers;
            }
            if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                let (first, last) = (first.date_time(), last.date_time());
                output
                    .session(&c.delayed(&first))
                    .give_container(&mut batch);
                c.downgrade(&last);
            }
            if next >= count {
                cap = None;
            } else {
                activator.activate();
            }
        }
    })
}

/// Windows waiting for the frontier: per window end, a capability (in operators with an output)
/// and the window's contents.
struct Pending<V> {
    windows: BTreeMap<i64, (Option<Capability<i64>>, V)>,
}

impl<V: Default> Pending<V> {
    fn new() -> Self {
        Pending {
            windows: BTreeMap::new(),
        }
    }
    /// The contents of the window ending at `end`, created with a capability for `end - 1`.
    fn at(&mut self, end: i64, cap: Option<&Capability<i64>>) -> &mut V {
        &mut self
            .windows
            .entry(end)
            .or_insert_with(|| (cap.map(|c| c.delayed(&(end - 1))), V::default()))
            .1
    }
    /// Hands every window whose last timestamp the frontier has passed to `f`, in end order.
    fn fire(
        &mut self,
        frontier: &timely::progress::frontier::MutableAntichain<i64>,
        mut f: impl FnMut(i64, Option<Capability<i64>>, V),
    ) {
        while let Some((&end, _)) = self.windows.first_key_value() {
            if frontier.less_equal(&(end - 1)) {
                break;
            }
            let (cap, v) = self.windows.remove(&end).expect("present");
            f(end, cap, v);
        }
    }
}

/// q3: sellers in OR, ID or CA joined with their auctions of category 10, exchanged by person.
fn q3(events: StreamVec<'_, i64, Event>, out: Out, index: usize) {
    // A seller (id, "name,city,state") or an item (seller, auction, time).
    type Side = Result<(u64, String), (u64, u64, i64)>;
    let sides = events.flat_map(|e| match e {
        Event::Person(p) if ["OR", "ID", "CA"].contains(&p.state.as_str()) => {
            Some(Ok((p.id, format!("{},{},{}", p.name, p.city, p.state))))
        }
        Event::Auction(a) if a.category == 10 => Some(Err((a.seller, a.id, a.date_time))),
        _ => None,
    });
    let mut writer = out.writer(index);
    let mut sellers: FxHashMap<u64, String> = FxHashMap::default();
    let mut waiting: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
    let mut expiry: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    sides.sink(
        Exchange::new(|s: &Side| match s {
            Ok((id, _)) => fx_hash(id),
            Err((seller, _, _)) => fx_hash(seller),
        }),
        "q3 join",
        move |(input, frontier)| {
            let mut lines = Vec::new();
            input.for_each(|_, data| {
                for side in data.drain(..) {
                    match side {
                        Ok((id, who)) => {
                            for auction in waiting.remove(&id).unwrap_or_default() {
                                lines.push(format!("{who},{auction}"));
                            }
                            sellers.insert(id, who);
                        }
                        Err((seller, auction, at)) => match sellers.get(&seller) {
                            Some(who) => lines.push(format!("{who},{auction}")),
                            None => {
                                waiting.entry(seller).or_default().push(auction);
                                expiry.entry(at).or_default().push(seller);
                            }
                        },
                    }
                }
            });
            // A seller registers before their auctions: once the frontier passes an auction's
            // time without its seller, the seller is not one of ours.
            while let Some((&at, _)) = expiry.first_key_value() {
                if frontier.less_equal(&at) {
                    break;
                }
                for seller in expiry.remove(&at).expect("present") {
                    waiting.remove(&seller);
                }
            }
            writer.write_lines(lines.into_iter());
        },
    );
}

/// q5: bids per auction per 10 s window sliding by 2 s, exchanged by auction; each worker sends
/// its most-bid auctions per window to the window's worker, which keeps the overall most.
fn q5(events: StreamVec<'_, i64, Event>, out: Out, index: usize) {
    let bids = events.flat_map(|e| match e {
        Event::Bid(b) => Some((b.auction, b.date_time)),
        _ => None,
    });
    let local = bids.unary_frontier::<CapacityContainerBuilder<Vec<(i64, u64, u64)>>, _, _, _>(
        Exchange::new(|b: &(u64, i64)| fx_hash(&b.0)),
        "q5 counts",
        |_, _| {
            let mut pending: Pending<FxHashMap<u64, u64>> = Pending::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let cap = cap.retain_least(0).expect("an input capability");
                    for (auction, at) in data.drain(..) {
                        let first_end = at - at.rem_euclid(2_000) + 2_000;
                        for end in (first_end..=at + TEN_SECONDS).step_by(2_000) {
                            *pending.at(end, Some(&cap)).entry(auction).or_insert(0) += 1;
                        }
                    }
                });
                pending.fire(frontier, |end, cap, counts| {
                    let most = counts.values().copied().max().unwrap_or(0);
                    output.session(&cap.expect("held")).give_iterator(
                        counts
                            .into_iter()
                            .filter(|(_, n)| *n == most)
                            .map(|(a, n)| (end, a, n)),
                    );
                });
            }
        },
    );
    let mut writer = out.writer(index);
    let mut pending: Pending<(u64, Vec<u64>)> = Pending::new();
    local.sink(
        Exchange::new(|r: &(i64, u64, u64)| fx_hash(&r.0)),
        "q5 most",
        move |(input, frontier)| {
            input.for_each(|_, data| {
                for (end, auction, n) in data.drain(..) {
                    let most = pending.at(end, None);
                    if n > most.0 {
                        *most = (n, vec![auction]);
                    } else if n == most.0 {
                        most.1.push(auction);
                    }
                }
            });
            pending.fire(frontier, |end, _, (n, auctions)| {
                writer.write_lines(auctions.into_iter().map(|a| format!("{end},{a},{n}")));
            });
        },
    );
}

fn highest(acc: &mut Vec<BidRow>, bid: BidRow) {
    match acc.first().map(|b| b.2) {
        Some(best) if bid.2 < best => {}
        Some(best) if bid.2 == best => acc.push(bid),
        _ => *acc = vec![bid],
    }
}

/// q7: the highest bids per 10 s window: each worker keeps its own highest per window and sends
/// them to the window's worker when the window ends.
fn q7(events: StreamVec<'_, i64, Event>, out: Out, index: usize) {
    let local = events.unary_frontier::<CapacityContainerBuilder<Vec<(i64, BidRow)>>, _, _, _>(
        Pipeline,
        "q7 local",
        |_, _| {
            let mut pending: Pending<Vec<BidRow>> = Pending::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let cap = cap.retain_least(0).expect("an input capability");
                    for e in data.drain(..) {
                        if let Event::Bid(b) = e {
                            let end =
                                b.date_time - b.date_time.rem_euclid(TEN_SECONDS) + TEN_SECONDS;
                            highest(
                                pending.at(end, Some(&cap)),
                                (b.auction, b.bidder, b.price, b.date_time),
                            );
                        }
                    }
                });
                pending.fire(frontier, |end, cap, best| {
                    output
                        .session(&cap.expect("held"))
                        .give_iterator(best.into_iter().map(|b| (end, b)));
                });
            }
        },
    );
    let mut writer = out.writer(index);
    let mut pending: Pending<Vec<BidRow>> = Pending::new();
    local.sink(
        Exchange::new(|r: &(i64, BidRow)| fx_hash(&r.0)),
        "q7 highest",
        move |(input, frontier)| {
            input.for_each(|_, data| {
                for (end, bid) in data.drain(..) {
                    highest(pending.at(end, None), bid);
                }
            });
            pending.fire(frontier, |end, _, best| {
                writer.write_lines(
                    best.into_iter()
                        .map(|(a, b, p, t)| format!("{end},{a},{b},{p},{t}")),
                );
            });
        },
    );
}

/// q8: people who opened an auction in the 10 s window they registered in, exchanged by person.
fn q8(events: StreamVec<'_, i64, Event>, out: Out, index: usize) {
    let sides = events.flat_map(|e| match e {
        Event::Person(p) => Some((p.id, p.date_time, Some(p.name))),
        Event::Auction(a) => Some((a.seller, a.date_time, None)),
        Event::Bid(_) => None,
    });
    let mut writer = out.writer(index);
    let mut pending: Pending<FxHashMap<u64, (Option<String>, bool)>> = Pending::new();
    sides.sink(
        Exchange::new(|s: &(u64, i64, Option<String>)| fx_hash(&s.0)),
        "q8 join",
        move |(input, frontier)| {
            input.for_each(|_, data| {
                for (person, at, name) in data.drain(..) {
                    let end = at - at.rem_euclid(TEN_SECONDS) + TEN_SECONDS;
                    let entry = pending.at(end, None).entry(person).or_default();
                    match name {
                        Some(name) => entry.0 = Some(name),
                        None => entry.1 = true,
                    }
                }
            });
            pending.fire(frontier, |end, _, people| {
                writer.write_lines(people.into_iter().filter_map(|(id, (name, opened))| {
                    let start = end - TEN_SECONDS;
                    name.filter(|_| opened)
                        .map(|name| format!("{id},{name},{start}"))
                }));
            });
        },
    );
}

/// What q4 and q6 need of a closed auction: `(id, category, seller, expires)`.
type ClosedAuction = (u64, u64, u64, i64);

/// One auction's side of the winning-bid join.
#[derive(Default)]
struct Bidding {
    /// `(date_time, expires, reserve, category, seller)` once the auction has arrived.
    auction: Option<(i64, i64, u64, u64, u64)>,
    /// The highest qualifying price so far.
    best: Option<u64>,
    /// Bids that came before their auction: `(date_time, price)`.
    early: Vec<(i64, u64)>,
}

/// The winning price of every auction, emitted at its `expires` once the frontier has passed it:
/// the highest bid at or above the reserve among the auction's bids in `[date_time, expires)`;
/// auctions without one emit nothing. Auctions and bids are exchanged by auction.
fn closed_auctions<'s>(
    events: StreamVec<'s, i64, Event>,
) -> StreamVec<'s, i64, (ClosedAuction, u64)> {
    // An auction `Ok((id, date_time, expires, reserve, category, seller))` or a bid
    // `Err((auction, date_time, price))`.
    type Side = Result<(u64, i64, i64, u64, u64, u64), (u64, i64, u64)>;
    let sides = events.flat_map(|e| match e {
        Event::Auction(a) => Some(Ok((
            a.id,
            a.date_time,
            a.expires,
            a.reserve,
            a.category,
            a.seller,
        ))),
        Event::Bid(b) => Some(Err((b.auction, b.date_time, b.price))),
        Event::Person(_) => None,
    });
    sides.unary_frontier::<CapacityContainerBuilder<Vec<(ClosedAuction, u64)>>, _, _, _>(
        Exchange::new(|s: &Side| match s {
            Ok(a) => fx_hash(&a.0),
            Err(b) => fx_hash(&b.0),
        }),
        "winning bids",
        |_, _| {
            let mut open: FxHashMap<u64, Bidding> = FxHashMap::default();
            // Auctions by `expires`, with a capability for that time.
            let mut closing: Pending<Vec<u64>> = Pending::new();
            // Auctions with bids waiting for them, by the bids' times.
            let mut waiting: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let cap = cap.retain_least(0).expect("an input capability");
                    for side in data.drain(..) {
                        match side {
                            Ok((id, opened, expires, reserve, category, seller)) => {
                                let entry = open.entry(id).or_default();
                                for (at, price) in std::mem::take(&mut entry.early) {
                                    if (opened..expires).contains(&at) && price >= reserve {
                                        entry.best = entry.best.max(Some(price));
                                    }
                                }
                                entry.auction = Some((opened, expires, reserve, category, seller));
                                // `Pending::at` holds a capability for `end - 1`.
                                closing.at(expires + 1, Some(&cap)).push(id);
                            }
                            Err((auction, at, price)) => {
                                let entry = open.entry(auction).or_default();
                                match entry.auction {
                                    Some((opened, expires, reserve, _, _)) => {
                                        if (opened..expires).contains(&at) && price >= reserve {
                                            entry.best = entry.best.max(Some(price));
                                        }
                                    }
                                    None => {
                                        entry.early.push((at, price));
                                        waiting.entry(at).or_default().push(auction);
                                    }
                                }
                            }
                        }
                    }
                });
                // Bids whose auction has not come by the time the frontier passes them never
                // qualify (an auction comes before its bids in event time).
                while let Some((&at, _)) = waiting.first_key_value() {
                    if frontier.less_equal(&at) {
                        break;
                    }
                    for auction in waiting.remove(&at).expect("present") {
                        if let Some(entry) = open.get_mut(&auction)
                            && entry.auction.is_none()
                        {
                            entry.early.retain(|(t, _)| *t > at);
                            if entry.early.is_empty() {
                                open.remove(&auction);
                            }
                        }
                    }
                }
                closing.fire(frontier, |_, cap, ids| {
                    let cap = cap.expect("held");
                    let mut session = output.session(&cap);
                    for id in ids {
                        if let Some(Bidding {
                            auction: Some((_, expires, _, category, seller)),
                            best: Some(price),
                            ..
                        }) = open.remove(&id)
                        {
                            session.give(((id, category, seller, expires), price));
                        } else {
                            open.remove(&id);
                        }
                    }
                });
            }
        },
    )
}

/// A running result per key over closed auctions, exchanged by `key`: each closed auction folded
/// into its key's state, then a line per key a batch changed.
fn running_per_key<S: Default + 'static>(
    closed: StreamVec<'_, i64, (ClosedAuction, u64)>,
    out: Out,
    index: usize,
    name: &str,
    key: fn(&ClosedAuction) -> u64,
    fold: fn(&mut S, &ClosedAuction, u64),
    line: fn(u64, &S) -> String,
) {
    let mut writer = out.writer(index);
    let mut state: FxHashMap<u64, S> = FxHashMap::default();
    closed.sink(
        Exchange::new(move |c: &(ClosedAuction, u64)| fx_hash(&key(&c.0))),
        name,
        move |(input, _)| {
            input.for_each(|_, data| {
                let mut changed: Vec<u64> = Vec::new();
                for (auction, price) in data.drain(..) {
                    let k = key(&auction);
                    fold(state.entry(k).or_default(), &auction, price);
                    changed.push(k);
                }
                changed.sort_unstable();
                changed.dedup();
                writer.write_lines(changed.into_iter().map(|k| line(k, &state[&k])));
            });
        },
    );
}

/// q4: the average winning price per category, a line `category,closed,average` per category
/// changed by a batch of closed auctions.
fn q4(closed: StreamVec<'_, i64, (ClosedAuction, u64)>, out: Out, index: usize) {
    running_per_key::<(u64, u64)>(
        closed,
        out,
        index,
        "q4 averages",
        |a| a.1,
        |total, _, price| {
            total.0 += 1;
            total.1 += price;
        },
        |category, (n, sum)| format!("{category},{n},{}", sum / n),
    );
}

/// q6: per seller, the number of auctions won and the average winning price of the last 10 by
/// `(expires, auction)`, a line `seller,closed,average` per seller changed by a batch.
fn q6(closed: StreamVec<'_, i64, (ClosedAuction, u64)>, out: Out, index: usize) {
    // Per seller: auctions won, and the last 10 as `(expires, auction, price)` in order.
    type Won = (u64, Vec<(i64, u64, u64)>);
    running_per_key::<Won>(
        closed,
        out,
        index,
        "q6 averages",
        |a| a.2,
        |(n, last), &(id, _, _, expires), price| {
            *n += 1;
            let at = last.partition_point(|l| (l.0, l.1) < (expires, id));
            last.insert(at, (expires, id, price));
            if last.len() > 10 {
                last.remove(0);
            }
        },
        |seller, (n, last)| {
            let sum: u64 = last.iter().map(|l| l.2).sum();
            format!("{seller},{n},{}", sum / last.len() as u64)
        },
    );
}

/// A bidder's session: `[start, end)` and its bids.
type Session = (i64, i64, u64);

/// q11: bids per bidder session (a 10 s gap), exchanged by bidder. Bids are folded in the order
/// of their batches' times; before a batch at time `t`, the sessions ending at or before `t` are
/// closed. A bid's window `[date_time, date_time + 10 s)` merges with every open session of its
/// bidder that it overlaps or touches.
fn q11(events: StreamVec<'_, i64, Event>, out: Out, index: usize) {
    let bids = events.flat_map(|e| match e {
        Event::Bid(b) => Some((b.bidder, b.date_time)),
        _ => None,
    });
    let mut writer = out.writer(index);
    let mut sessions: FxHashMap<u64, Vec<Session>> = FxHashMap::default();
    // Open sessions by end: the bidders that have one ending then.
    let mut ends: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    let mut batches: BTreeMap<i64, Vec<(u64, i64)>> = BTreeMap::new();
    // Closes the sessions ending at or before `limit`.
    let close = |limit: i64,
                 sessions: &mut FxHashMap<u64, Vec<Session>>,
                 ends: &mut BTreeMap<i64, Vec<u64>>,
                 lines: &mut Vec<String>| {
        while let Some((&end, _)) = ends.first_key_value() {
            if end > limit {
                break;
            }
            for bidder in ends.remove(&end).expect("present") {
                let Some(list) = sessions.get_mut(&bidder) else {
                    continue;
                };
                if let Some(i) = list.iter().position(|s| s.1 == end) {
                    let (start, end, n) = list.swap_remove(i);
                    lines.push(format!("{bidder},{start},{end},{n}"));
                }
                if list.is_empty() {
                    sessions.remove(&bidder);
                }
            }
        }
    };
    bids.sink(
        Exchange::new(|b: &(u64, i64)| fx_hash(&b.0)),
        "q11 sessions",
        move |(input, frontier)| {
            input.for_each(|cap, data| {
                let t = *cap.least().expect("a message time");
                batches.entry(t).or_default().append(data);
            });
            let mut lines = Vec::new();
            while let Some((&t, _)) = batches.first_key_value() {
                if frontier.less_equal(&t) {
                    break;
                }
                let batch = batches.remove(&t).expect("present");
                close(t, &mut sessions, &mut ends, &mut lines);
                for (bidder, at) in batch {
                    let list = sessions.entry(bidder).or_default();
                    let (mut start, mut end, mut n) = (at, at + TEN_SECONDS, 1);
                    let mut i = 0;
                    while i < list.len() {
                        let s = list[i];
                        if s.0 <= end && start <= s.1 {
                            list.swap_remove(i);
                            start = start.min(s.0);
                            end = end.max(s.1);
                            n += s.2;
                        } else {
                            i += 1;
                        }
                    }
                    list.push((start, end, n));
                    // A merged session's old end stays listed; closing finds no session with it.
                    ends.entry(end).or_default().push(bidder);
                }
            }
            let reached = frontier.frontier().first().copied().unwrap_or(i64::MAX);
            close(reached, &mut sessions, &mut ends, &mut lines);
            writer.write_lines(lines.into_iter());
        },
    );
}

/// q12: bids per bidder per 10 s window of processing time (the wall clock when the bid is
/// counted), exchanged by bidder; a window's counts are written when the clock passes its end,
/// and those still open when the input ends are written then.
fn q12(events: StreamVec<'_, i64, Event>, out: Out, index: usize) {
    let bids = events.flat_map(|e| match e {
        Event::Bid(b) => Some(b.bidder),
        _ => None,
    });
    let mut writer = out.writer(index);
    let mut windows: BTreeMap<i64, FxHashMap<u64, u64>> = BTreeMap::new();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64
    };
    bids.sink(
        Exchange::new(|b: &u64| fx_hash(b)),
        "q12 counts",
        move |(input, frontier)| {
            let clock = now();
            let end = clock - clock.rem_euclid(TEN_SECONDS) + TEN_SECONDS;
            input.for_each(|_, data| {
                let counts = windows.entry(end).or_default();
                for bidder in data.drain(..) {
                    *counts.entry(bidder).or_insert(0) += 1;
                }
            });
            let limit = if frontier.is_empty() { i64::MAX } else { clock };
            while let Some((&end, _)) = windows.first_key_value() {
                if end > limit {
                    break;
                }
                let counts = windows.remove(&end).expect("present");
                writer.write_lines(counts.into_iter().map(|(b, n)| format!("{b},{end},{n}")));
            }
        },
    );
}
