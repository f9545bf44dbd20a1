//! Nexmark queries on generated events (see `tidal_connectors::nexmark`), in event time (each
//! event's `date_time`; the generator's events are in time order on every worker).
//!
//! | query | what | output lines |
//! |---|---|---|
//! | `q0` | pass-through: every bid | `auction,bidder,price,date_time` |
//! | `q1` | currency conversion: every bid, price in euros (× 0.908, integer) | `auction,bidder,price,date_time` |
//! | `q2` | selection: bids on auctions whose id is a multiple of 123 | `auction,price` |
//! | `q3` | local item suggestion: auctions of category 10 by sellers in OR, ID or CA (incremental join) | `name,city,state,auction` |
//! | `q4` | average winning price per category (running) | `category,closed_auctions,average` |
//! | `q5` | hot items: the auctions with the most bids per 10 s window sliding by 2 s | `window_end,auction,bids` |
//! | `q6` | average winning price of each seller's last 10 closed auctions (running) | `seller,closed_auctions,average` |
//! | `q7` | highest bid per 10 s window | `window_end,auction,bidder,price,date_time` |
//! | `q8` | new users: people who opened an auction in the 10 s window they registered in | `person,name,window_start` |
//! | `q11` | bids per user session (10 s inactivity gap) | `bidder,session_start,session_end,bids` |
//! | `q12` | bids per bidder per 10 s processing-time window | `bidder,window_end,bids` |
//!
//! With `--updating`, q4 and q6 run instead as updating queries on incremental collections, as
//! Flink SQL runs them: the winning price of every auction (the highest qualifying bid, over a join
//! of all bids with the auctions) is kept up to date as bids arrive, and so are the per-category and
//! per-seller results, written as a changelog `op,category|seller,closed_auctions,average` (`op`
//! one of `+I -U +U -D`) whose fold at the end of input is the final value of every key the running
//! q4 and q6 end with. (The collections keep every bid: memory grows with the input.)
//!
//! q4 and q6 close each auction when the watermark passes its `expires`: the winning bid is the
//! highest at or above the reserve among the auction's bids in `[date_time, expires)`; auctions
//! without one are not counted. Their running results are a changelog: a line per changed key at
//! most once per tick; a key's last line (the most closed auctions) is its final value. In q6 the
//! "last 10" are the 10 with the latest `(expires, auction)`. Averages are integer (floor).
//!
//! Output goes to part files with `--output DIR`; without it the results are counted and dropped.
//! The number of events, the results and events/s are printed on stderr.
//!
//! ```text
//! cargo run --release --example nexmark -- --query q5 --events 10000000 -w 2
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use nexmark::{Auction, Event, NexmarkConfig, Person};
use serde::{Deserialize, Serialize};
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The queries this example runs.
const QUERIES: [&str; 11] = [
    "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q11", "q12",
];

/// Runs one Nexmark query on generated events.
#[derive(Parser)]
#[command(name = "nexmark")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// The query: q0 to q8, q11 or q12.
    #[arg(long, default_value = "q0")]
    query: String,
    /// How many events to generate (people, auctions and bids).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    events: u64,
    /// Generate at most this many events per second of wall-clock time (default: as fast as
    /// possible).
    #[arg(long, value_name = "EVENTS_PER_S")]
    rate: Option<f64>,
    /// Events per second of event time (how far apart the events' `date_time`s are).
    #[arg(long, default_value_t = 10_000, value_name = "EVENTS_PER_S")]
    event_rate: u64,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of counting.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
    /// q4 and q6 as updating queries on incremental collections (a changelog of their results).
    #[arg(long)]
    updating: bool,
    /// Write the events into DIR as `person.csv`, `auction.csv` and `bid.csv` (the columns of
    /// Nexmark's tables, times as `yyyy-MM-dd HH:mm:ss.SSS`, fields the generator does not make
    /// empty) instead of running a query: file tables for `tidal sql`.
    #[arg(long, value_name = "DIR")]
    write_events: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    if let Some(dir) = &args.write_events {
        return write_events(dir, args.events, args.event_rate);
    }
    let query = args.query.clone();
    if !QUERIES.contains(&query.as_str()) {
        return Err(tidal::Error::config(format!(
            "--query {query}: this example runs {}",
            QUERIES.join(", ")
        )));
    }
    if args.updating && query != "q4" && query != "q6" {
        return Err(tidal::Error::config(format!(
            "--updating: only q4 and q6 have an updating form, not {query}"
        )));
    }
    if args.event_rate == 0 {
        return Err(tidal::Error::config(
            "--event-rate 0: give at least 1 event per second of event time",
        ));
    }
    let job = Job::new(&args.tidal)?;
    let (events, rate, output, updating) = (args.events, args.rate, args.output, args.updating);
    let config = NexmarkConfig {
        events_per_second: args.event_rate,
        ..NexmarkConfig::default()
    };
    let results = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&results);
    let started = Instant::now();
    job.run(move |env| {
        let mut generator = config.generator(Some(events));
        if let Some(rate) = rate {
            generator = generator.rate(rate);
        }
        let events = env
            .generate_with(
                generator,
                WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.date_time()),
            )
            .name("nexmark events");
        let lines = if updating {
            updating_lines(&query, events).name(&query)
        } else {
            query_lines(&query, events).name(&query)
        };
        match &output {
            Some(dir) => lines.write_text(dir.clone()),
            None => {
                let counted = Arc::clone(&counted);
                lines
                    .inspect(move |_| {
                        counted.fetch_add(1, Ordering::Relaxed);
                    })
                    .filter(|_| false)
                    .print()
            }
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "nexmark {}: {events} events, {} results counted here, {:.3} s, {:.0} events/s",
        args.query,
        results.load(Ordering::Relaxed),
        seconds,
        events as f64 / seconds
    );
    Ok(())
}

/// Writes events `0..count` as CSV files of Nexmark's three tables in `dir`.
fn write_events(dir: &std::path::Path, count: u64, event_rate: u64) -> tidal::Result<()> {
    use std::io::Write as _;
    let config = NexmarkConfig {
        events_per_second: event_rate.max(1),
        ..NexmarkConfig::default()
    };
    let failed = |e: std::io::Error| {
        tidal::Error::external(format!("writing events into {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let open = |name: &str| -> tidal::Result<std::io::BufWriter<std::fs::File>> {
        std::fs::File::create(dir.join(name))
            .map(std::io::BufWriter::new)
            .map_err(failed)
    };
    let (mut people, mut auctions, mut bids) =
        (open("person.csv")?, open("auction.csv")?, open("bid.csv")?);
    let time = |ms: i64| tidal::sql::Value::Timestamp(ms).to_string();
    for n in 0..count {
        let written = match config.event(n) {
            Event::Person(p) => writeln!(
                people,
                "{},{},{},{},{},{},{},",
                p.id,
                p.name,
                p.email_address,
                p.credit_card,
                p.city,
                p.state,
                time(p.date_time)
            ),
            Event::Auction(a) => writeln!(
                auctions,
                "{},{},,{},{},{},{},{},{},",
                a.id,
                a.item_name,
                a.initial_bid,
                a.reserve,
                time(a.date_time),
                time(a.expires),
                a.seller,
                a.category
            ),
            Event::Bid(b) => writeln!(
                bids,
                "{},{},{},{},,{},",
                b.auction,
                b.bidder,
                b.price,
                b.channel,
                time(b.date_time)
            ),
        };
        written.map_err(failed)?;
    }
    for mut f in [people, auctions, bids] {
        f.flush().map_err(failed)?;
    }
    Ok(())
}

/// A bid without its channel: `(auction, bidder, price, date_time)`.
type BidRow = (u64, u64, u64, i64);

fn bids<'s>(events: &DataStream<'s, Event>) -> DataStream<'s, BidRow> {
    events.clone().flat_map(|e| match e {
        Event::Bid(b) => Some((b.auction, b.bidder, b.price, b.date_time)),
        _ => None,
    })
}

/// q4 and q6 as updating queries: a changelog of their results (see the module docs).
fn updating_lines<'s>(query: &str, events: DataStream<'s, Event>) -> DataStream<'s, String> {
    // (auction, (category, seller, date_time, expires, reserve))
    let auctions = events
        .clone()
        .flat_map(|e| match e {
            Event::Auction(a) => Some((
                a.id,
                (a.category, a.seller, a.date_time, a.expires, a.reserve),
            )),
            _ => None,
        })
        .into_collection();
    // (auction, (price, date_time))
    let bids = events
        .flat_map(|e| match e {
            Event::Bid(b) => Some((b.auction, (b.price, b.date_time))),
            _ => None,
        })
        .into_collection();
    // ((auction, category, seller, expires), winning price): the highest qualifying bid.
    let winning = bids
        .join(auctions)
        .filter(|(_, ((price, at), (_, _, start, expires, reserve)))| {
            (*start..*expires).contains(at) && price >= reserve
        })
        .map(|(id, ((price, _), (category, seller, _, expires, _)))| {
            ((id, category, seller, expires), price)
        })
        .max_by_key();
    let results = if query == "q4" {
        winning
            .map(|((_, category, _, _), price)| (category, price))
            .totals_by_key(|price| *price as i64)
            .map(|(category, t)| (category, (t.count as u64, (t.sum / t.count) as u64)))
    } else {
        // Per seller: the number of auctions won and the average of the last 10 by expiry.
        winning
            .map(|((id, _, seller, expires), price)| (seller, (expires, id, price)))
            .reduce(|_, closed, out| {
                let n: isize = closed.iter().map(|(_, count)| count).sum();
                let last: Vec<u64> = closed.iter().rev().take(10).map(|(c, _)| c.2).collect();
                let average = last.iter().sum::<u64>() / last.len() as u64;
                out.push(((n as u64, average), 1));
            })
    };
    results
        .changelog_by_key()
        .map(|c| format!("{},{},{},{}", c.kind, c.row.0, c.row.1.0, c.row.1.1))
}

/// The query's output lines.
fn query_lines<'s>(query: &str, events: DataStream<'s, Event>) -> DataStream<'s, String> {
    let ten_seconds = Duration::from_secs(10);
    match query {
        "q0" => bids(&events).map(|(a, b, p, t)| format!("{a},{b},{p},{t}")),
        "q1" => bids(&events).map(|(a, b, p, t)| format!("{a},{b},{},{t}", p * 908 / 1000)),
        "q2" => bids(&events)
            .filter(|b| b.0 % 123 == 0)
            .map(|(a, _, p, _)| format!("{a},{p}")),
        "q3" => {
            // One pass splits the events: auctions of category 10 (keyed by seller) on the main
            // output, people of OR, ID and CA on the side.
            let sellers = OutputTag::new();
            let items = events
                .process_with_side_output(
                    |e, out| match e {
                        Event::Auction(a) if a.category == 10 => out.output((a.seller, a)),
                        Event::Person(p) if ["OR", "ID", "CA"].contains(&p.state.as_str()) => {
                            out.side_output((p.id, p))
                        }
                        _ => {}
                    },
                    &sellers,
                )
                .keyed();
            sellers
                .stream()
                .keyed()
                .connect(items)
                .process(LocalItemSuggestion)
        }
        "q4" => closed_auctions(&events)
            .map(|(a, price)| (a.category, (1u64, price)))
            .keyed()
            .reduce(|acc, v| {
                acc.0 += v.0;
                acc.1 += v.1;
            })
            .map(|(category, (n, sum))| format!("{category},{n},{}", sum / n)),
        "q5" => bids(&events)
            .map(|b| (b.0, ()))
            .keyed()
            .window(Windows::sliding(ten_seconds, Duration::from_secs(2)))
            .aggregate_with(
                |_| 1u64,
                |n, _| *n += 1,
                |n, m| *n += m,
                |auction: &u64, w: &Window, n: &u64| (w.end, (*auction, *n)),
            )
            .name("bids per auction per window")
            .keyed()
            // Every result of a sliding window ending at `end` has the timestamp `end - 1`:
            // one 2 s tumbling window gathers them all.
            .window(Windows::tumbling(Duration::from_secs(2)))
            .aggregate_with(
                |(auction, n)| (n, vec![auction]),
                most_bids,
                |acc, (n, auctions)| {
                    for a in auctions {
                        most_bids(acc, (a, n));
                    }
                },
                |end: &Time, _: &Window, (n, auctions): &(u64, Vec<u64>)| {
                    auctions
                        .iter()
                        .map(|a| format!("{end},{a},{n}"))
                        .collect::<Vec<_>>()
                },
            )
            .flat_map(|lines| lines),
        "q6" => closed_auctions(&events)
            .map(|(a, price)| (a.seller, (1u64, vec![(a.expires, a.id, price)])))
            .keyed()
            .reduce(|acc, v| {
                acc.0 += v.0;
                acc.1.extend(v.1);
                acc.1.sort_unstable();
                let excess = acc.1.len().saturating_sub(10);
                acc.1.drain(..excess);
            })
            .map(|(seller, (n, last))| {
                let sum: u64 = last.iter().map(|l| l.2).sum();
                format!("{seller},{n},{}", sum / last.len() as u64)
            }),
        // One window over all bids; the aggregation combines bids on each worker before the
        // exchange, so only a few partial maxima per window reach the window's worker.
        "q7" => bids(&events)
            .window_all(Windows::tumbling(ten_seconds))
            .aggregate_with(
                Highest::of,
                Highest::add,
                Highest::merge,
                |_: &(), w: &Window, best: &Highest| {
                    best.bids()
                        .map(|(a, b, p, t)| format!("{},{a},{b},{p},{t}", w.end))
                        .collect::<Vec<_>>()
                },
            )
            .flat_map(|lines| lines),
        "q8" => events
            .flat_map(|e| match e {
                Event::Person(p) => Some((p.id, Some(p.name))),
                Event::Auction(a) => Some((a.seller, None)),
                Event::Bid(_) => None,
            })
            .keyed()
            .window(Windows::tumbling(ten_seconds))
            .aggregate_with(
                |v: Option<String>| {
                    let opened = v.is_none();
                    (v, opened)
                },
                |acc, v| match v {
                    Some(name) => acc.0 = Some(name),
                    None => acc.1 = true,
                },
                |acc, (name, opened)| {
                    acc.0 = acc.0.take().or(name);
                    acc.1 |= opened;
                },
                |person: &u64, w: &Window, (name, opened): &(Option<String>, bool)| match name {
                    Some(name) if *opened => Some(format!("{person},{name},{}", w.start)),
                    _ => None,
                },
            )
            .flat_map(|line| line),
        "q11" => bids(&events)
            .map(|b| (b.1, ()))
            .keyed()
            .window(Windows::session(ten_seconds))
            .aggregate_with(
                |_| 1u64,
                |n, _| *n += 1,
                |n, m| *n += m,
                |bidder: &u64, w: &Window, n: &u64| format!("{bidder},{},{},{n}", w.start, w.end),
            ),
        "q12" => bids(&events)
            .map(|b| (b.1, ()))
            .keyed()
            .window(Windows::tumbling(ten_seconds))
            .in_processing_time()
            .aggregate_with(
                |_| 1u64,
                |n, _| *n += 1,
                |n, m| *n += m,
                |bidder: &u64, w: &Window, n: &u64| format!("{bidder},{},{n}", w.end),
            ),
        other => unreachable!("query {other} was checked"),
    }
}

/// q5's accumulator: the most bids in a window and the auctions that have them.
fn most_bids(acc: &mut (u64, Vec<u64>), (auction, n): (u64, u64)) {
    if n > acc.0 {
        *acc = (n, vec![auction]);
    } else if n == acc.0 {
        acc.1.push(auction);
    }
}

/// q7's accumulator: the bids with the highest price — one, or more on a tie (kept without an
/// allocation for the usual single bid).
#[derive(Clone, Serialize, Deserialize)]
struct Highest {
    best: BidRow,
    ties: Vec<BidRow>,
}

impl Highest {
    fn of(bid: BidRow) -> Self {
        Highest {
            best: bid,
            ties: Vec::new(),
        }
    }
    fn add(&mut self, bid: BidRow) {
        if bid.2 > self.best.2 {
            self.best = bid;
            self.ties.clear();
        } else if bid.2 == self.best.2 {
            self.ties.push(bid);
        }
    }
    fn merge(&mut self, other: Highest) {
        self.add(other.best);
        for bid in other.ties {
            self.add(bid);
        }
    }
    fn bids(&self) -> impl Iterator<Item = &BidRow> {
        std::iter::once(&self.best).chain(&self.ties)
    }
}

/// q3: joins sellers (people) with their auctions, whichever arrives first. A seller registers
/// before their auctions (in event time), so an auction still waiting when the watermark passes
/// its time has no seller here (not in OR, ID or CA) and is dropped. Sellers are kept for good.
struct LocalItemSuggestion;

#[derive(Default, Serialize, Deserialize)]
struct SellerState {
    /// Name, city and state.
    seller: Option<(String, String, String)>,
    /// Auctions that arrived before their seller: their time and id.
    waiting: Vec<(Time, u64)>,
}

impl KeyedCoProcessFunction<u64, Person, Auction> for LocalItemSuggestion {
    type State = SellerState;
    type Out = String;
    type Side = ();
    fn process_first(
        &mut self,
        p: Person,
        ctx: &mut ProcessContext<'_, u64, SellerState, String, ()>,
    ) {
        let waiting = std::mem::take(&mut ctx.state().waiting);
        for (_, auction) in waiting {
            ctx.output(format!("{},{},{},{auction}", p.name, p.city, p.state));
        }
        ctx.state().seller = Some((p.name, p.city, p.state));
    }
    fn process_second(
        &mut self,
        a: Auction,
        ctx: &mut ProcessContext<'_, u64, SellerState, String, ()>,
    ) {
        match &ctx.state().seller {
            Some((name, city, state)) => {
                let line = format!("{name},{city},{state},{}", a.id);
                ctx.output(line);
            }
            None => {
                let at = ctx.timestamp();
                ctx.state().waiting.push((at, a.id));
                ctx.register_event_time_timer(at);
            }
        }
    }
    fn on_timer(
        &mut self,
        at: Time,
        _: TimeDomain,
        ctx: &mut ProcessContext<'_, u64, SellerState, String, ()>,
    ) {
        let state = ctx.state();
        state.waiting.retain(|(t, _)| *t > at);
        if state.seller.is_none() && state.waiting.is_empty() {
            ctx.clear_state();
        }
    }
}

/// Closed auctions with their winning price (q4, q6), emitted when the watermark passes the
/// auction's `expires`.
fn closed_auctions<'s>(events: &DataStream<'s, Event>) -> DataStream<'s, (Auction, u64)> {
    // One pass splits the events: bids keyed by auction on the main output, auctions on the side.
    let opened = OutputTag::new();
    let bids = events
        .clone()
        .process_with_side_output(
            |e, out| match e {
                Event::Bid(b) => out.output((b.auction, (b.price, b.date_time))),
                Event::Auction(a) => out.side_output((a.id, a)),
                Event::Person(_) => {}
            },
            &opened,
        )
        .keyed();
    opened
        .stream()
        .keyed()
        .connect(bids)
        .process(WinningBids)
        .name("closed auctions")
}

/// Keyed by auction: the auction, its best qualifying price so far, and bids that came before it.
struct WinningBids;

#[derive(Default, Serialize, Deserialize)]
struct AuctionState {
    auction: Option<Auction>,
    best: Option<u64>,
    /// Bids that arrived before their auction: `(date_time, price)`.
    early: Vec<(Time, u64)>,
}

fn qualifies(a: &Auction, at: Time, price: u64) -> bool {
    (a.date_time..a.expires).contains(&at) && price >= a.reserve
}

impl KeyedCoProcessFunction<u64, Auction, (u64, Time)> for WinningBids {
    type State = AuctionState;
    type Out = (Auction, u64);
    type Side = ();
    fn process_first(
        &mut self,
        a: Auction,
        ctx: &mut ProcessContext<'_, u64, AuctionState, (Auction, u64), ()>,
    ) {
        let expires = a.expires;
        let state = ctx.state();
        for (at, price) in std::mem::take(&mut state.early) {
            if qualifies(&a, at, price) {
                state.best = state.best.max(Some(price));
            }
        }
        state.auction = Some(a);
        ctx.register_event_time_timer(expires);
    }
    fn process_second(
        &mut self,
        (price, at): (u64, Time),
        ctx: &mut ProcessContext<'_, u64, AuctionState, (Auction, u64), ()>,
    ) {
        let state = ctx.state();
        match &state.auction {
            Some(a) => {
                if qualifies(a, at, price) {
                    state.best = state.best.max(Some(price));
                }
            }
            None => {
                // Its auction is older: it arrives before the watermark passes `at`, or the
                // auction has closed already and this bid is too late for it.
                state.early.push((at, price));
                ctx.register_event_time_timer(at);
            }
        }
    }
    fn on_timer(
        &mut self,
        at: Time,
        _: TimeDomain,
        ctx: &mut ProcessContext<'_, u64, AuctionState, (Auction, u64), ()>,
    ) {
        let state = ctx.state();
        match &state.auction {
            Some(a) if at >= a.expires => {
                let won = state.best.map(|price| (state.auction.take(), price));
                ctx.clear_state();
                if let Some((Some(a), price)) = won {
                    ctx.output((a, price));
                }
            }
            Some(_) => {}
            None => {
                state.early.retain(|(t, _)| *t > at);
                if state.early.is_empty() {
                    ctx.clear_state();
                }
            }
        }
    }
}
