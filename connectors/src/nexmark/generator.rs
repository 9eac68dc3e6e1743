//! The Nexmark event generator: event `n` of a seed, as Arrow rows.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, PrimitiveArray, RecordBatch, RecordBatchOptions, StringBuilder};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMillisecondType,
};

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
    let all: Vec<usize> = (0..schema(kind).fields().len()).collect();
    generate_columns(kind, config, first, end, &all)
}

/// The rows [`generate`] makes, with only the columns of `schema(kind)` at `columns`, in
/// the schema's order (indices past its end are ignored): the other columns are not made at
/// all, and the rows' values are the same whichever columns are asked for.
pub fn generate_columns(
    kind: EventKind,
    config: &GeneratorConfig,
    first: u64,
    end: u64,
    columns: &[usize],
) -> RecordBatch {
    let events = events_of_kind(kind, first, end);
    // The builders are sized up front: growing them copied every string column once more.
    let rows = count_of_kind(kind, first, end);
    let full = schema(kind);
    let mut columns: Vec<usize> = columns
        .iter()
        .copied()
        .filter(|&c| c < full.fields().len())
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let want = Wanted(columns.clone());
    let made = match kind {
        EventKind::Person => persons(config, events, rows, &want),
        EventKind::Auction => auctions(config, events, rows, &want),
        EventKind::Bid => bids(config, events, rows, &want),
    };
    // INVARIANT: the builders above make exactly the wanted columns of `schema(kind)`, in
    // its order, each of `rows` rows.
    let schema = Arc::new(
        full.project(&columns)
            .expect("wanted columns are in the schema"),
    );
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema, made.into_iter().flatten().collect(), &options)
        .expect("generated columns match the schema")
}

/// Which columns of a stream to make, by index in its schema.
struct Wanted(Vec<usize>);

impl Wanted {
    /// A builder for column `column` (made by `make`) if it is wanted.
    fn builder<B>(&self, column: usize, make: impl FnOnce() -> B) -> Option<B> {
        self.0.contains(&column).then(make)
    }
}

/// The values of a primitive column (`BIGINT`, `TIMESTAMP`), pushed straight into the vector
/// its array takes over (an Arrow builder costs several times as many instructions a value).
struct Values<T: ArrowPrimitiveType>(Vec<T::Native>);

impl<T: ArrowPrimitiveType> Values<T> {
    fn with_capacity(rows: usize) -> Self {
        Self(Vec::with_capacity(rows))
    }
}

/// Appends `value` to a wanted column's builder.
fn append<B: Append<V>, V>(builder: Option<&mut B>, value: V) {
    if let Some(builder) = builder {
        builder.append(value);
    }
}

/// A builder of one of the generator's columns.
trait Append<V> {
    fn append(&mut self, value: V);
}

impl<T: ArrowPrimitiveType> Append<T::Native> for Values<T> {
    fn append(&mut self, value: T::Native) {
        self.0.push(value);
    }
}

impl Append<&str> for StringBuilder {
    fn append(&mut self, value: &str) {
        self.append_value(value);
    }
}

/// The array a column's builder made.
trait Finish {
    fn finish(self) -> ArrayRef;
}

impl<T: ArrowPrimitiveType> Finish for Values<T> {
    fn finish(self) -> ArrayRef {
        Arc::new(PrimitiveArray::<T>::new(self.0.into(), None))
    }
}

impl Finish for StringBuilder {
    fn finish(mut self) -> ArrayRef {
        Arc::new(StringBuilder::finish(&mut self))
    }
}

/// The column a builder made, if it was wanted.
fn finish(builder: Option<impl Finish>) -> Option<ArrayRef> {
    builder.map(Finish::finish)
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
        // 10^(6 unit) as 2^(6 unit log2 10): `exp2` costs a fraction of `powf`, which took a
        // tenth of q17's time; the two agree to a few parts in 10^15, far below the rounding.
        ((unit * 6.0 * std::f64::consts::LOG2_10).exp2() * 100.0).round() as i64
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
    rows: usize,
    want: &Wanted,
) -> Vec<Option<ArrayRef>> {
    let mut auction = want.builder(0, || Values::<Int64Type>::with_capacity(rows));
    let mut bidder = want.builder(1, || Values::<Int64Type>::with_capacity(rows));
    let mut price = want.builder(2, || Values::<Int64Type>::with_capacity(rows));
    let mut channel = want.builder(3, || StringBuilder::with_capacity(rows, rows * 8));
    let mut url = want.builder(4, || StringBuilder::with_capacity(rows, rows * 48));
    let mut date_time = want.builder(5, || {
        Values::<TimestampMillisecondType>::with_capacity(rows)
    });
    let mut extra = want.builder(6, || StringBuilder::with_capacity(rows, rows * 16));
    for n in events {
        // Every random draw is made whichever columns are wanted, so each column's values
        // are the same either way.
        let mut rng = EventRng::new(config.seed, n);
        let last = last_auction_id(n);
        let chosen_auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            (last / 100 * 100).max(FIRST_AUCTION_ID)
        } else {
            let span = ((last - FIRST_AUCTION_ID + 1) as u64).min(ACTIVE_AUCTIONS);
            last - rng.below(span) as i64
        };
        append(auction.as_mut(), chosen_auction);
        let chosen_bidder = pick_person(&mut rng, n, HOT_BIDDER_RATIO);
        append(bidder.as_mut(), chosen_bidder);
        let chosen_price = rng.price();
        append(price.as_mut(), chosen_price);
        let c = rng.below(100);
        if c < 96 {
            let i = (c % 4) as usize;
            append(channel.as_mut(), CHANNELS[i]);
            append(url.as_mut(), URLS[i]);
        } else {
            let id = rng.below(10_000);
            if let Some(channel) = &mut channel {
                let _ = write!(channel, "channel-{id}");
                channel.append_value("");
            }
            let path = rng.text(8);
            if let Some(url) = &mut url {
                let path = path.replace(' ', "_");
                let _ = write!(
                    url,
                    "https://www.nexmark.com/{path}/item.htm?query=1&channel_id={id}"
                );
                url.append_value("");
            }
        }
        append(date_time.as_mut(), config.event_time(n));
        let text = rng.text(32);
        append(extra.as_mut(), text);
    }
    vec![
        finish(auction),
        finish(bidder),
        finish(price),
        finish(channel),
        finish(url),
        finish(date_time),
        finish(extra),
    ]
}

fn persons(
    config: &GeneratorConfig,
    events: impl Iterator<Item = u64>,
    rows: usize,
    want: &Wanted,
) -> Vec<Option<ArrayRef>> {
    let mut id = want.builder(0, || Values::<Int64Type>::with_capacity(rows));
    let mut name = want.builder(1, || StringBuilder::with_capacity(rows, rows * 16));
    let mut email = want.builder(2, || StringBuilder::with_capacity(rows, rows * 24));
    let mut card = want.builder(3, || StringBuilder::with_capacity(rows, rows * 19));
    let mut city = want.builder(4, || StringBuilder::with_capacity(rows, rows * 12));
    let mut state = want.builder(5, || StringBuilder::with_capacity(rows, rows * 2));
    let mut date_time = want.builder(6, || {
        Values::<TimestampMillisecondType>::with_capacity(rows)
    });
    let mut extra = want.builder(7, || StringBuilder::with_capacity(rows, rows * 16));
    for n in events {
        // Every random draw is made whichever columns are wanted (see `bids`).
        let mut rng = EventRng::new(config.seed, n);
        append(id.as_mut(), last_person_id(n));
        let first = FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize];
        let last = LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize];
        if let Some(name) = &mut name {
            let _ = write!(name, "{first} {last}");
            name.append_value("");
        }
        let domain = rng.text(6);
        if let Some(email) = &mut email {
            let domain = domain.replace(' ', "");
            let _ = write!(email, "{}@{domain}.com", last.to_lowercase());
            email.append_value("");
        }
        let digits: [u64; 4] = std::array::from_fn(|_| rng.below(10_000));
        if let Some(card) = &mut card {
            let [a, b, c, d] = digits;
            let _ = write!(card, "{a:04} {b:04} {c:04} {d:04}");
            card.append_value("");
        }
        let chosen_city = US_CITIES[rng.below(US_CITIES.len() as u64) as usize];
        append(city.as_mut(), chosen_city);
        let chosen_state = US_STATES[rng.below(US_STATES.len() as u64) as usize];
        append(state.as_mut(), chosen_state);
        append(date_time.as_mut(), config.event_time(n));
        let text = rng.text(32);
        append(extra.as_mut(), text);
    }
    vec![
        finish(id),
        finish(name),
        finish(email),
        finish(card),
        finish(city),
        finish(state),
        finish(date_time),
        finish(extra),
    ]
}

fn auctions(
    config: &GeneratorConfig,
    events: impl Iterator<Item = u64>,
    rows: usize,
    want: &Wanted,
) -> Vec<Option<ArrayRef>> {
    let mut id = want.builder(0, || Values::<Int64Type>::with_capacity(rows));
    let mut item_name = want.builder(1, || StringBuilder::with_capacity(rows, rows * 10));
    let mut description = want.builder(2, || StringBuilder::with_capacity(rows, rows * 50));
    let mut initial_bid = want.builder(3, || Values::<Int64Type>::with_capacity(rows));
    let mut reserve = want.builder(4, || Values::<Int64Type>::with_capacity(rows));
    let mut date_time = want.builder(5, || {
        Values::<TimestampMillisecondType>::with_capacity(rows)
    });
    let mut expires = want.builder(6, || {
        Values::<TimestampMillisecondType>::with_capacity(rows)
    });
    let mut seller = want.builder(7, || Values::<Int64Type>::with_capacity(rows));
    let mut category = want.builder(8, || Values::<Int64Type>::with_capacity(rows));
    let mut extra = want.builder(9, || StringBuilder::with_capacity(rows, rows * 16));
    for n in events {
        // Every random draw is made whichever columns are wanted (see `bids`).
        let mut rng = EventRng::new(config.seed, n);
        append(id.as_mut(), last_auction_id(n));
        let text = rng.text(20);
        append(item_name.as_mut(), text);
        let text = rng.text(100);
        append(description.as_mut(), text);
        let initial = rng.price();
        append(initial_bid.as_mut(), initial);
        let above = rng.price();
        append(reserve.as_mut(), initial + above);
        let now = config.event_time(n);
        append(date_time.as_mut(), now);
        // Auctions run for up to ten seconds of event time per 1 000 events.
        let runs_for = rng.below(10_000) as i64;
        append(expires.as_mut(), now + 1 + runs_for);
        let chosen_seller = pick_person(&mut rng, n, HOT_SELLER_RATIO);
        append(seller.as_mut(), chosen_seller);
        let chosen_category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64;
        append(category.as_mut(), chosen_category);
        let text = rng.text(32);
        append(extra.as_mut(), text);
    }
    vec![
        finish(id),
        finish(item_name),
        finish(description),
        finish(initial_bid),
        finish(reserve),
        finish(date_time),
        finish(expires),
        finish(seller),
        finish(category),
        finish(extra),
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
    fn the_columns_asked_for_are_those_of_all_the_columns() {
        let config = GeneratorConfig {
            seed: 3,
            ..Default::default()
        };
        for kind in [EventKind::Person, EventKind::Auction, EventKind::Bid] {
            // Enough events that every branch of every column's draw is taken.
            let whole = generate(kind, &config, 5, 20_000);
            let width = schema(kind).fields().len();
            let subsets: Vec<Vec<usize>> = vec![
                vec![],
                vec![0],
                vec![width - 1],
                (0..width).step_by(2).collect(),
                (1..width).step_by(3).collect(),
                vec![2, 5],
            ];
            for columns in subsets {
                let some = generate_columns(kind, &config, 5, 20_000, &columns);
                assert_eq!(
                    some,
                    whole.project(&columns).unwrap(),
                    "{kind:?} {columns:?}"
                );
                assert_eq!(some.num_rows(), whole.num_rows());
            }
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
