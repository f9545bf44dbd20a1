//! Nexmark events: a deterministic generator of the online-auction benchmark's people, auctions
//! and bids, as a [`Generator`] source.
//!
//! Event `n` (from 0) is a function of `n` and the [`NexmarkConfig`] alone, so any worker can make
//! any event and a run is reproducible. As in the Nexmark specification:
//! - out of every 50 events, 1 is a new person, 3 are new auctions and 46 are bids;
//! - person and auction ids grow with the events (people from 1000, auctions from 1000); an
//!   auction's seller is one of the last 1000 people, its category one of 5 (from 10);
//! - a bid goes to a *hot* auction (one of few ids) with probability 1 − 1/`hot_auction_ratio`,
//!   else to one of the last 100 auctions; its bidder likewise to a hot bidder with probability
//!   1 − 1/`hot_bidder_ratio`, else to one of the last 1000 people;
//! - prices spread over orders of magnitude (`100 × round(10^(6u))` for a uniform `u`);
//! - event time advances by `1 / events_per_second` per event from `base_time_ms`.
//!
//! ```
//! use tidal_connectors::nexmark::{Event, NexmarkConfig};
//! let config = NexmarkConfig::default();
//! let events: Vec<Event> = (0..50).map(|n| config.event(n)).collect();
//! assert!(matches!(events[0], Event::Person(_)));
//! assert_eq!(events.iter().filter(|e| matches!(e, Event::Bid(_))).count(), 46);
//! assert_eq!(config.event(7), events[7]);
//! ```

use serde::{Deserialize, Serialize};

use crate::generator::Generator;

/// A new person registering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Person id (from 1000).
    pub id: u64,
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email_address: String,
    /// Card number: four groups of four digits.
    pub credit_card: String,
    /// City.
    pub city: String,
    /// US state.
    pub state: String,
    /// Event time (ms since the epoch).
    pub date_time: i64,
}

/// A new auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    /// Auction id (from 1000).
    pub id: u64,
    /// Name of the item sold.
    pub item_name: String,
    /// Starting price.
    pub initial_bid: u64,
    /// Lowest price the seller accepts.
    pub reserve: u64,
    /// Event time (ms since the epoch).
    pub date_time: i64,
    /// When the auction closes (ms since the epoch).
    pub expires: i64,
    /// Person id of the seller.
    pub seller: u64,
    /// Category (10 to 14).
    pub category: u64,
}

/// A bid on an auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// Auction id.
    pub auction: u64,
    /// Person id of the bidder.
    pub bidder: u64,
    /// Price bid.
    pub price: u64,
    /// Where the bid came from.
    pub channel: String,
    /// Event time (ms since the epoch).
    pub date_time: i64,
}

/// One Nexmark event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

impl Event {
    /// The event's time (ms since the epoch).
    ///
    /// ```
    /// let config = tidal_connectors::nexmark::NexmarkConfig::default();
    /// assert_eq!(config.event(0).date_time(), config.base_time_ms);
    /// ```
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const TOTAL_PROPORTION: u64 = 50;
const FIRST_PERSON_ID: u64 = 1000;
const FIRST_AUCTION_ID: u64 = 1000;
const FIRST_CATEGORY_ID: u64 = 10;
const CATEGORIES: u64 = 5;
const ACTIVE_PEOPLE: u64 = 1000;
const IN_FLIGHT_AUCTIONS: u64 = 100;

const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// How events are generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NexmarkConfig {
    /// Event time of event 0 (ms since the epoch).
    pub base_time_ms: i64,
    /// Event-time rate: events per second of event time.
    pub events_per_second: u64,
    /// One in this many bids goes to any recent auction; the others to hot ones.
    pub hot_auction_ratio: u64,
    /// One in this many bids comes from any recent person; the others from hot ones.
    pub hot_bidder_ratio: u64,
    /// Mixed into every event's randomness.
    pub seed: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            base_time_ms: 1_700_000_000_000,
            events_per_second: 10_000,
            hot_auction_ratio: 2,
            hot_bidder_ratio: 4,
            seed: 0,
        }
    }
}

/// A small deterministic random source (SplitMix64) for one event.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

impl NexmarkConfig {
    /// Event `n`.
    ///
    /// ```
    /// let e = tidal_connectors::nexmark::NexmarkConfig::default().event(49);
    /// assert!(matches!(e, tidal_connectors::nexmark::Event::Bid(_)));
    /// ```
    pub fn event(&self, n: u64) -> Event {
        let mut rng = Rng(self.seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let date_time = self.base_time_ms + (n * 1000 / self.events_per_second.max(1)) as i64;
        let offset = n % TOTAL_PROPORTION;
        if offset < PERSON_PROPORTION {
            Event::Person(self.person(n, date_time, &mut rng))
        } else if offset < PERSON_PROPORTION + AUCTION_PROPORTION {
            Event::Auction(self.auction(n, date_time, &mut rng))
        } else {
            Event::Bid(self.bid(n, date_time, &mut rng))
        }
    }

    /// A [`Generator`] of the events, `count` of them when given (split across workers; add
    /// [`rate`](Generator::rate) to pace them).
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// use tidal_connectors::nexmark::{Event, NexmarkConfig};
    /// let g = NexmarkConfig::default().generator(Some(100));
    /// let events: Vec<Event> = tidal_engine::Job::local(2).run(move |env| env.generate(g.clone()).collect()).unwrap();
    /// assert_eq!(events.len(), 100);
    /// ```
    pub fn generator(self, count: Option<u64>) -> Generator<Event> {
        let g = Generator::new(move |n| self.event(n));
        match count {
            Some(c) => g.count(c),
            None => g,
        }
    }

    fn person(&self, n: u64, date_time: i64, rng: &mut Rng) -> Person {
        let id = last_person(n) + FIRST_PERSON_ID;
        let name = format!("{} {}", rng.pick(&FIRST_NAMES), rng.pick(&LAST_NAMES));
        let email_address = format!("{}@{}.com", word(rng, 7), word(rng, 5));
        let credit_card = (0..4)
            .map(|_| format!("{:04}", rng.below(10_000)))
            .collect::<Vec<_>>()
            .join(" ");
        Person {
            id,
            name,
            email_address,
            credit_card,
            city: rng.pick(&CITIES).to_string(),
            state: rng.pick(&STATES).to_string(),
            date_time,
        }
    }

    fn auction(&self, n: u64, date_time: i64, rng: &mut Rng) -> Auction {
        let id = last_auction(n) + FIRST_AUCTION_ID;
        // A recent person sells it.
        let people = last_person(n) + 1;
        let seller = FIRST_PERSON_ID + people - 1 - rng.below(people.min(ACTIVE_PEOPLE));
        let initial_bid = price(rng);
        // An auction stays open while about IN_FLIGHT_AUCTIONS newer ones are created.
        let span = IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION;
        let length_events = 1 + rng.below(2 * span);
        Auction {
            id,
            item_name: word(rng, 8),
            initial_bid,
            reserve: initial_bid + price(rng),
            date_time,
            expires: date_time
                + (length_events * 1000 / self.events_per_second.max(1)).max(1) as i64,
            seller,
            category: FIRST_CATEGORY_ID + rng.below(CATEGORIES),
        }
    }

    fn bid(&self, n: u64, date_time: i64, rng: &mut Rng) -> Bid {
        let auctions = last_auction(n) + 1;
        let auction = if rng.below(self.hot_auction_ratio) > 0 {
            // Hot: the most recent multiple of the ratio.
            (auctions - 1) / self.hot_auction_ratio.max(1) * self.hot_auction_ratio.max(1)
        } else {
            auctions - 1 - rng.below(auctions.min(IN_FLIGHT_AUCTIONS))
        } + FIRST_AUCTION_ID;
        let people = last_person(n) + 1;
        let bidder = if rng.below(self.hot_bidder_ratio) > 0 {
            (people - 1) / self.hot_bidder_ratio.max(1) * self.hot_bidder_ratio.max(1) + 1
        } else {
            people - 1 - rng.below(people.min(ACTIVE_PEOPLE))
        }
        .min(people - 1)
            + FIRST_PERSON_ID;
        Bid {
            auction,
            bidder,
            price: price(rng),
            channel: rng.pick(&CHANNELS).to_string(),
            date_time,
        }
    }
}

/// The 0-based id of the newest person at event `n` (the one event `n` creates, if it does):
/// each group of 50 events starts with its person.
fn last_person(n: u64) -> u64 {
    n / TOTAL_PROPORTION * PERSON_PROPORTION
}

/// The 0-based id of the newest auction at event `n` (the one event `n` creates, if it does):
/// each group of 50 events has its auctions right after its person. Event 0 has none yet; it
/// counts as auction 0 (bids never come that early).
fn last_auction(n: u64) -> u64 {
    let (group, offset) = (n / TOTAL_PROPORTION, n % TOTAL_PROPORTION);
    if offset < PERSON_PROPORTION {
        (group * AUCTION_PROPORTION).saturating_sub(1)
    } else {
        group * AUCTION_PROPORTION + (offset - PERSON_PROPORTION).min(AUCTION_PROPORTION - 1)
    }
}

/// A price: 100 × round(10^(6u)).
fn price(rng: &mut Rng) -> u64 {
    100 * 10f64.powf(rng.unit() * 6.0).round() as u64
}

/// A lowercase word of about `len` letters.
fn word(rng: &mut Rng, len: u64) -> String {
    let len = 3 + rng.below(len);
    (0..len)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_ids_and_references_follow_the_specification() {
        let config = NexmarkConfig::default();
        let (mut people, mut auctions, mut bids) = (Vec::new(), Vec::new(), Vec::new());
        let mut last_time = i64::MIN;
        for n in 0..100_000 {
            let e = config.event(n);
            assert!(e.date_time() >= last_time, "event time never goes back");
            last_time = e.date_time();
            match e {
                Event::Person(p) => people.push(p),
                Event::Auction(a) => auctions.push(a),
                Event::Bid(b) => bids.push(b),
            }
        }
        assert_eq!(
            (people.len(), auctions.len(), bids.len()),
            (2_000, 6_000, 92_000)
        );
        // Ids are consecutive from their first id.
        assert!(
            people
                .iter()
                .enumerate()
                .all(|(i, p)| p.id == FIRST_PERSON_ID + i as u64)
        );
        assert!(
            auctions
                .iter()
                .enumerate()
                .all(|(i, a)| a.id == FIRST_AUCTION_ID + i as u64)
        );
        // Sellers and bidders exist, bids go to auctions that exist, categories are in range.
        let newest_person = people.last().unwrap().id;
        assert!(
            auctions
                .iter()
                .all(|a| a.seller >= FIRST_PERSON_ID && a.seller <= newest_person)
        );
        assert!(
            auctions
                .iter()
                .all(|a| (10..15).contains(&a.category) && a.expires > a.date_time)
        );
        let newest_auction = auctions.last().unwrap().id;
        assert!(
            bids.iter()
                .all(|b| b.auction >= FIRST_AUCTION_ID && b.auction <= newest_auction)
        );
        assert!(
            bids.iter()
                .all(|b| b.bidder >= FIRST_PERSON_ID && b.bidder <= newest_person)
        );
        // Hot auctions: with a ratio of 2, about half the bids go to one of the two newest
        // auctions at their time; the others spread over the last 100.
        let hot = (0..100_000u64)
            .filter_map(|n| match config.event(n) {
                Event::Bid(b) => Some(b.auction + 1 >= last_auction(n) + FIRST_AUCTION_ID),
                _ => None,
            })
            .filter(|hot| *hot)
            .count();
        assert!(
            (45_000..55_000).contains(&hot),
            "{hot} of 92 000 bids on the newest auctions"
        );
        // 10 000 events per second of event time.
        assert_eq!(last_time - config.base_time_ms, 9_999);
        // Deterministic; another seed gives other events.
        assert_eq!(config.event(12_345), NexmarkConfig::default().event(12_345));
        let other = NexmarkConfig {
            seed: 1,
            ..NexmarkConfig::default()
        };
        assert_ne!(config.event(12_345), other.event(12_345));
    }
}
