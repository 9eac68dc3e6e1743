//! The Nexmark event generator: event `n` of a seed, as Arrow rows.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Events in one proportion cycle: 1 person, 3 auctions, 46 bids.
const CYCLE: u64 = 50;
const PERSONS_PER_CYCLE: u64 = 1;
const AUCTIONS_PER_CYCLE: u64 = 3;
const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;
/// Nexmark's defaults: a bid goes to a "hot" auction with probability 1 - 1/2, comes from a
/// "hot" bidder with probability 1 - 1/4, and an auction has a hot seller with 1 - 1/4.
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_SELLER_RATIO: u64 = 4;
/// Auctions and persons considered active for random picks.
const ACTIVE_AUCTIONS: u64 = 100;
const ACTIVE_PERSONS: u64 = 1000;
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const URLS: [&str; 4] = [
    "https://www.nexmark.com/google/item.htm?query=1",
    "https://www.nexmark.com/facebook/item.htm?query=1",
    "https://www.nexmark.com/baidu/item.htm?query=1",
    "https://www.nexmark.com/apple/item.htm?query=1",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
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
/// Text that `extra` and random strings are cut from.
const TEXT: &str = "nexmark streams of persons auctions and bids across channels and urls with \
                    prices reserves categories sellers and bidders for a streaming benchmark \
                    generated deterministically from a seed so that replay gives the same rows";

/// The three Nexmark streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// New persons (sellers and bidders).
    Person,
    /// New auctions.
    Auction,
    /// Bids on auctions.
    Bid,
}

impl EventKind {
    /// The kind of global event `n`.
    pub fn of(n: u64) -> EventKind {
        match n % CYCLE {
            r if r < PERSONS_PER_CYCLE => EventKind::Person,
            r if r < PERSONS_PER_CYCLE + AUCTIONS_PER_CYCLE => EventKind::Auction,
            _ => EventKind::Bid,
        }
    }

    /// The offsets within a cycle of this kind's events.
    fn cycle_range(self) -> std::ops::Range<u64> {
        match self {
            EventKind::Person => 0..PERSONS_PER_CYCLE,
            EventKind::Auction => PERSONS_PER_CYCLE..PERSONS_PER_CYCLE + AUCTIONS_PER_CYCLE,
            EventKind::Bid => PERSONS_PER_CYCLE + AUCTIONS_PER_CYCLE..CYCLE,
        }
    }
}

/// What the generator needs besides the event range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Event time of event 0, in milliseconds since the Unix epoch.
    pub start_time_ms: i64,
    /// Event-time distance between consecutive events, in microseconds.
    pub event_gap_us: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        // 2024-01-01T00:00:00Z, 10 000 events per second of event time.
        Self {
            seed: 0,
            start_time_ms: 1_704_067_200_000,
            event_gap_us: 100,
        }
    }
}

impl GeneratorConfig {
    fn event_time(&self, n: u64) -> i64 {
        self.start_time_ms + ((n as u128 * self.event_gap_us as u128) / 1000) as i64
    }
}

/// The Arrow schema of a stream.
pub fn schema(kind: EventKind) -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    let fields = match kind {
        EventKind::Person => vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("email_address", DataType::Utf8, false),
            Field::new("credit_card", DataType::Utf8, false),
            Field::new("city", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("date_time", ts(), false),
            Field::new("extra", DataType::Utf8, false),
        ],
        EventKind::Auction => vec![
            Field::new("id", DataType::Int64, false),
            Field::new("item_name", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
            Field::new("initial_bid", DataType::Int64, false),
            Field::new("reserve", DataType::Int64, false),
            Field::new("date_time", ts(), false),
            Field::new("expires", ts(), false),
            Field::new("seller", DataType::Int64, false),
            Field::new("category", DataType::Int64, false),
            Field::new("extra", DataType::Utf8, false),
        ],
        EventKind::Bid => vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("bidder", DataType::Int64, false),
            Field::new("price", DataType::Int64, false),
            Field::new("channel", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, false),
            Field::new("date_time", ts(), false),
            Field::new("extra", DataType::Utf8, false),
        ],
    };
    Arc::new(Schema::new(fields))
}

/// The rows of stream `kind` among global events `first..end`, as one record batch.
pub fn generate(kind: EventKind, config: &GeneratorConfig, first: u64, end: u64) -> RecordBatch {
    let events = events_of_kind(kind, first, end);
    // The builders are sized up front: growing them copied every string column once more.
    let rows = count_of_kind(kind, first, end);
    let columns = match kind {
        EventKind::Person => persons(config, events, rows),
        EventKind::Auction => auctions(config, events, rows),
        EventKind::Bid => bids(config, events, rows),
    };
    // INVARIANT: the builders above produce exactly the columns of `schema(kind)`.
    RecordBatch::try_new(schema(kind), columns).expect("generated columns match the schema")
}

/// Global event numbers of `kind` in `first..end`, ascending.
fn events_of_kind(kind: EventKind, first: u64, end: u64) -> impl Iterator<Item = u64> {
    let range = kind.cycle_range();
    let first_cycle = first / CYCLE;
    let last_cycle = end.div_ceil(CYCLE);
    (first_cycle..last_cycle)
        .flat_map(move |cycle| range.clone().map(move |r| cycle * CYCLE + r))
        .filter(move |n| *n >= first && *n < end)
}

/// How many events of `kind` are in `first..end`: as many as [`events_of_kind`] yields.
fn count_of_kind(kind: EventKind, first: u64, end: u64) -> usize {
    let range = kind.cycle_range();
    let below = |n: u64| {
        let in_last_cycle = (n % CYCLE).clamp(range.start, range.end) - range.start;
        n / CYCLE * (range.end - range.start) + in_last_cycle
    };
    (below(end) - below(first.min(end))) as usize
}

/// A small, fast random stream for one event: splitmix64 seeded by `(seed, n)`.
struct EventRng(u64);

impl EventRng {
    fn new(seed: u64, n: u64) -> Self {
        EventRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A slice of [`TEXT`] of at most `max` bytes.
    fn text(&mut self, max: usize) -> &'static str {
        let len = self.below(max as u64 + 1) as usize;
        let start = self.below((TEXT.len() - len) as u64 + 1) as usize;
        &TEXT[start..start + len]
    }

    /// A Nexmark price: log-uniform between 1 and 1 000 000 (in cents).
    fn price(&mut self) -> i64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (10f64.powf(unit * 6.0) * 100.0).round() as i64
    }
}

fn last_person_id(n: u64) -> i64 {
    FIRST_PERSON_ID + (n / CYCLE) as i64
}

fn last_auction_id(n: u64) -> i64 {
    let cycle = n / CYCLE;
    let in_cycle = (n % CYCLE)
        .saturating_sub(PERSONS_PER_CYCLE)
        .min(AUCTIONS_PER_CYCLE - 1);
    FIRST_AUCTION_ID + (cycle * AUCTIONS_PER_CYCLE + in_cycle) as i64
}

/// A person that exists at event `n`: mostly a hot one, sometimes any recent one.
fn pick_person(rng: &mut EventRng, n: u64, hot_ratio: u64) -> i64 {
    let last = last_person_id(n);
    if rng.below(hot_ratio) > 0 {
        (last / 100 * 100).max(FIRST_PERSON_ID)
    } else {
        let span = ((last - FIRST_PERSON_ID + 1) as u64).min(ACTIVE_PERSONS);
        last - rng.below(span) as i64
    }
}

fn bids(
    config: &GeneratorConfig,
    events: impl Iterator<Item = u64>,
    lower: usize,
) -> Vec<ArrayRef> {
    let mut auction = Int64Builder::with_capacity(lower);
    let mut bidder = Int64Builder::with_capacity(lower);
    let mut price = Int64Builder::with_capacity(lower);
    let mut channel = StringBuilder::with_capacity(lower, lower * 8);
    let mut url = StringBuilder::with_capacity(lower, lower * 48);
    let mut date_time = TimestampMillisecondBuilder::with_capacity(lower);
    let mut extra = StringBuilder::with_capacity(lower, lower * 16);
    for n in events {
        let mut rng = EventRng::new(config.seed, n);
        let last = last_auction_id(n);
        let chosen_auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            (last / 100 * 100).max(FIRST_AUCTION_ID)
        } else {
            let span = ((last - FIRST_AUCTION_ID + 1) as u64).min(ACTIVE_AUCTIONS);
            last - rng.below(span) as i64
        };
        auction.append_value(chosen_auction);
        bidder.append_value(pick_person(&mut rng, n, HOT_BIDDER_RATIO));
        price.append_value(rng.price());
        let c = rng.below(100);
        if c < 96 {
            let i = (c % 4) as usize;
            channel.append_value(CHANNELS[i]);
            url.append_value(URLS[i]);
        } else {
            let id = rng.below(10_000);
            let _ = write!(channel, "channel-{id}");
            channel.append_value("");
            let _ = write!(
                url,
                "https://www.nexmark.com/{}/item.htm?query=1&channel_id={id}",
                rng.text(8).replace(' ', "_")
            );
            url.append_value("");
        }
        date_time.append_value(config.event_time(n));
        extra.append_value(rng.text(32));
    }
    vec![
        Arc::new(auction.finish()),
        Arc::new(bidder.finish()),
        Arc::new(price.finish()),
        Arc::new(channel.finish()),
        Arc::new(url.finish()),
        Arc::new(date_time.finish()),
        Arc::new(extra.finish()),
    ]
}

fn persons(
    config: &GeneratorConfig,
    events: impl Iterator<Item = u64>,
    rows: usize,
) -> Vec<ArrayRef> {
    let mut id = Int64Builder::with_capacity(rows);
    let mut name = StringBuilder::with_capacity(rows, rows * 16);
    let mut email = StringBuilder::with_capacity(rows, rows * 24);
    let mut card = StringBuilder::with_capacity(rows, rows * 19);
    let mut city = StringBuilder::with_capacity(rows, rows * 12);
    let mut state = StringBuilder::with_capacity(rows, rows * 2);
    let mut date_time = TimestampMillisecondBuilder::with_capacity(rows);
    let mut extra = StringBuilder::with_capacity(rows, rows * 16);
    for n in events {
        let mut rng = EventRng::new(config.seed, n);
        id.append_value(last_person_id(n));
        let first = FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize];
        let last = LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize];
        name.append_value(format!("{first} {last}"));
        email.append_value(format!(
            "{}@{}.com",
            last.to_lowercase(),
            rng.text(6).replace(' ', "")
        ));
        card.append_value(format!(
            "{:04} {:04} {:04} {:04}",
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000)
        ));
        city.append_value(US_CITIES[rng.below(US_CITIES.len() as u64) as usize]);
        state.append_value(US_STATES[rng.below(US_STATES.len() as u64) as usize]);
        date_time.append_value(config.event_time(n));
        extra.append_value(rng.text(32));
    }
    vec![
        Arc::new(id.finish()),
        Arc::new(name.finish()),
        Arc::new(email.finish()),
        Arc::new(card.finish()),
        Arc::new(city.finish()),
        Arc::new(state.finish()),
        Arc::new(date_time.finish()),
        Arc::new(extra.finish()),
    ]
}

fn auctions(
    config: &GeneratorConfig,
    events: impl Iterator<Item = u64>,
    rows: usize,
) -> Vec<ArrayRef> {
    let mut id = Int64Builder::with_capacity(rows);
    let mut item_name = StringBuilder::with_capacity(rows, rows * 10);
    let mut description = StringBuilder::with_capacity(rows, rows * 50);
    let mut initial_bid = Int64Builder::with_capacity(rows);
    let mut reserve = Int64Builder::with_capacity(rows);
    let mut date_time = TimestampMillisecondBuilder::with_capacity(rows);
    let mut expires = TimestampMillisecondBuilder::with_capacity(rows);
    let mut seller = Int64Builder::with_capacity(rows);
    let mut category = Int64Builder::with_capacity(rows);
    let mut extra = StringBuilder::with_capacity(rows, rows * 16);
    for n in events {
        let mut rng = EventRng::new(config.seed, n);
        id.append_value(last_auction_id(n));
        item_name.append_value(rng.text(20));
        description.append_value(rng.text(100));
        let initial = rng.price();
        initial_bid.append_value(initial);
        reserve.append_value(initial + rng.price());
        let now = config.event_time(n);
        date_time.append_value(now);
        // Auctions run for up to ten seconds of event time per 1 000 events.
        expires.append_value(now + 1 + rng.below(10_000) as i64);
        seller.append_value(pick_person(&mut rng, n, HOT_SELLER_RATIO));
        category.append_value(FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64);
        extra.append_value(rng.text(32));
    }
    vec![
        Arc::new(id.finish()),
        Arc::new(item_name.finish()),
        Arc::new(description.finish()),
        Arc::new(initial_bid.finish()),
        Arc::new(reserve.finish()),
        Arc::new(date_time.finish()),
        Arc::new(expires.finish()),
        Arc::new(seller.finish()),
        Arc::new(category.finish()),
        Arc::new(extra.finish()),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn the_rows_counted_ahead_are_the_rows_generated() {
        for kind in [EventKind::Person, EventKind::Auction, EventKind::Bid] {
            for (first, end) in [
                (0, 0),
                (0, 1),
                (3, 4),
                (0, 50),
                (1, 49),
                (49, 51),
                (7, 5000),
                (9, 7),
            ] {
                let listed = events_of_kind(kind, first, end).count();
                assert_eq!(
                    count_of_kind(kind, first, end),
                    listed,
                    "{kind:?} {first}..{end}"
                );
            }
        }
    }

    #[test]
    fn proportions_are_1_3_46() {
        let config = GeneratorConfig::default();
        let rows = |kind| generate(kind, &config, 0, 5000).num_rows();
        assert_eq!(
            (
                rows(EventKind::Person),
                rows(EventKind::Auction),
                rows(EventKind::Bid)
            ),
            (100, 300, 4600)
        );
    }

    #[test]
    fn any_split_of_the_range_gives_the_same_rows() {
        let config = GeneratorConfig {
            seed: 7,
            ..Default::default()
        };
        for kind in [EventKind::Person, EventKind::Auction, EventKind::Bid] {
            let whole = generate(kind, &config, 13, 2000);
            let parts: Vec<_> = [(13, 14), (14, 777), (777, 1999), (1999, 2000)]
                .iter()
                .map(|(a, b)| generate(kind, &config, *a, *b))
                .collect();
            assert_eq!(
                concat_batches(&schema(kind), &parts).unwrap(),
                whole,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn bids_refer_to_existing_auctions_and_persons_and_time_advances() {
        let config = GeneratorConfig::default();
        let bids = generate(EventKind::Bid, &config, 0, 100_000);
        let auctions = generate(EventKind::Auction, &config, 0, 100_000);
        let max_auction =
            arrow::compute::max(auctions.column(0).as_primitive::<Int64Type>()).unwrap();
        let bid_auctions = bids.column(0).as_primitive::<Int64Type>();
        assert!(
            bid_auctions
                .values()
                .iter()
                .all(|a| (FIRST_AUCTION_ID..=max_auction).contains(a))
        );
        let times = bids
            .column(5)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert!(times.values().windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(times.value(times.len() - 1) - times.value(0), 9_999);
        assert_eq!(bids.column(3).null_count(), 0);
    }

    #[test]
    fn seeds_differ() {
        let a = generate(
            EventKind::Bid,
            &GeneratorConfig {
                seed: 1,
                ..Default::default()
            },
            0,
            500,
        );
        let b = generate(
            EventKind::Bid,
            &GeneratorConfig {
                seed: 2,
                ..Default::default()
            },
            0,
            500,
        );
        assert_ne!(a, b);
    }
}
