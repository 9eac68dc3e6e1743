//! The `nexmark` connector: the person, auction and bid streams of the Nexmark benchmark,
//! generated deterministically from a seed.
//!
//! Events are numbered globally 0, 1, 2, ...; out of every 50 consecutive events 1 is a
//! person, 3 are auctions and 46 are bids (Nexmark's 1:3:46). Every field of event `n` is a
//! pure function of `(seed, n)`, so any range of events can be regenerated exactly: that is
//! what makes the source replayable from any offset. The three streams of one seed agree with
//! each other (bids refer to auctions and persons that exist), so they can be joined.

mod generator;
mod source;

pub use generator::{EventKind, GeneratorConfig, generate, generate_columns, schema};
pub use source::{NEXMARK_OPTIONS, NexmarkSource};
