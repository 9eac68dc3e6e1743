//! [`NexmarkSource`]: one Nexmark stream as a replayable source; offsets count global events.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};

use super::generator::{EventKind, GeneratorConfig, generate_columns, schema};
use crate::error::{ConnectorError, Result};
use crate::offset::SourceOffset;
use crate::options::{ConnectorOptions, OptionSpec};
use crate::source::{Source, SourceRead};

/// Options of the `nexmark` source.
pub const NEXMARK_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "table",
        help: "which stream: person, auction or bid; required",
    },
    OptionSpec {
        key: "seed",
        help: "seed of the generator (default 0)",
    },
    OptionSpec {
        key: "max_events",
        help: "stop after this many events of all three kinds (default: never)",
    },
    OptionSpec {
        key: "events_per_second",
        help: "events made available per second of wall-clock time (default: as fast as the query reads)",
    },
    OptionSpec {
        key: "event_time_rate",
        help: "events per second of event time, which spaces date_time (default 10000)",
    },
    OptionSpec {
        key: "start_time",
        help: "date_time of the first event, RFC 3339 (default 2024-01-01T00:00:00Z)",
    },
    OptionSpec {
        key: "max_records_per_trigger",
        help: "at most this many events per batch (default 1000000)",
    },
];

/// Events generated per task; tasks run on all cores.
const EVENTS_PER_TASK: u64 = 64 * 1024;
const DEFAULT_MAX_EVENTS_PER_TRIGGER: u64 = 1_000_000;

/// One Nexmark stream.
#[derive(Debug)]
pub struct NexmarkSource {
    kind: EventKind,
    config: GeneratorConfig,
    max_events: Option<u64>,
    events_per_second: Option<u64>,
    max_per_trigger: u64,
    /// With `events_per_second`: when the stream began producing (its `CREATE SOURCE`).
    producing_since: Option<Instant>,
    pacing: Mutex<Pacing>,
}

#[derive(Debug, Default)]
struct Pacing {
    /// When the first batch was planned, and its start offset.
    origin: Option<(Instant, u64)>,
    /// Set by `prepare_available_now`: freeze at the next `latest_offset`.
    freeze_requested: bool,
    frozen_at: Option<u64>,
}

impl NexmarkSource {
    /// The source described by `options`.
    pub fn new(options: &ConnectorOptions) -> Result<Self> {
        let kind = Self::kind(options)?;
        let mut config = GeneratorConfig {
            seed: options.parse("seed", "a whole number")?.unwrap_or(0),
            ..Default::default()
        };
        if let Some(rate) = options.positive("event_time_rate")? {
            config.event_gap_us = (1_000_000 / rate).max(1);
        }
        if let Some(start) = options.get("start_time") {
            let time = chrono::DateTime::parse_from_rfc3339(start).map_err(|_| {
                options.bad_value(
                    "start_time",
                    start,
                    "an RFC 3339 time such as 2024-01-01T00:00:00Z",
                )
            })?;
            config.start_time_ms = time.timestamp_millis();
        }
        Ok(Self {
            kind,
            config,
            max_events: options.parse("max_events", "a whole number")?,
            events_per_second: options.positive("events_per_second")?,
            max_per_trigger: options
                .positive("max_records_per_trigger")?
                .unwrap_or(DEFAULT_MAX_EVENTS_PER_TRIGGER),
            producing_since: None,
            pacing: Mutex::new(Pacing::default()),
        })
    }

    /// Whether events come at `events_per_second` rather than all at once.
    pub fn is_paced(&self) -> bool {
        self.events_per_second.is_some()
    }

    /// A paced stream that has been producing since `since` (when its source was created):
    /// the events due since then are there to read, by a peek, an `available-now` run or a
    /// query starting later, as rows written to a topic would be.
    pub fn producing_since(mut self, since: Option<Instant>) -> Self {
        self.producing_since = since;
        self
    }

    /// The stream named by the `table` option.
    pub fn kind(options: &ConnectorOptions) -> Result<EventKind> {
        match options.choice("table", &["person", "auction", "bid"])? {
            Some("person") => Ok(EventKind::Person),
            Some("auction") => Ok(EventKind::Auction),
            Some(_) => Ok(EventKind::Bid),
            None => Err(ConnectorError::Config(format!(
                "option 'table' is required for nexmark source '{}': person, auction or bid",
                options.object()
            ))),
        }
    }
}

#[async_trait]
impl Source for NexmarkSource {
    fn schema(&self) -> SchemaRef {
        schema(self.kind)
    }

    async fn prepare_available_now(&self) -> Result<()> {
        if self.max_events.is_none() && self.events_per_second.is_none() {
            return Err(ConnectorError::Config(
                "a nexmark source with neither max_events nor events_per_second never runs out, \
                 so trigger 'available-now' would not end; set max_events"
                    .to_string(),
            ));
        }
        self.pacing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .freeze_requested = true;
        Ok(())
    }

    async fn latest_offset(&self, start: Option<&SourceOffset>) -> Result<Option<SourceOffset>> {
        let first = SourceOffset::count_or_zero(start)?;
        let mut pacing = self.pacing.lock().unwrap_or_else(|p| p.into_inner());
        let mut available = self.max_events.unwrap_or(u64::MAX);
        if let Some(rate) = self.events_per_second {
            let due = |since: Instant| (since.elapsed().as_secs_f64() * rate as f64) as u64;
            // Paced from where this query started (a resumed query has read ahead of the
            // stream's own clock), and never behind what the stream has produced so far.
            let (since, base) = *pacing.origin.get_or_insert((Instant::now(), first));
            let produced = base
                .saturating_add(due(since))
                .max(self.producing_since.map_or(0, due));
            available = available.min(produced);
        }
        if pacing.freeze_requested && pacing.frozen_at.is_none() {
            pacing.frozen_at = Some(available);
        }
        if let Some(frozen) = pacing.frozen_at {
            available = available.min(frozen);
        }
        let end = available.min(first.saturating_add(self.max_per_trigger));
        Ok(if end > first {
            Some(SourceOffset::from_count(end))
        } else {
            start.cloned()
        })
    }

    async fn read(&self, start: Option<&SourceOffset>, end: &SourceOffset) -> Result<SourceRead> {
        let all: Vec<usize> = (0..self.schema().fields().len()).collect();
        self.read_columns(start, end, &all).await
    }

    /// Generates only the columns asked for: the others cost nothing.
    async fn read_columns(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        columns: &[usize],
    ) -> Result<SourceRead> {
        let (first, end) = (SourceOffset::count_or_zero(start)?, end.as_count()?);
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (kind, config) = (self.kind, self.config);
        let columns: Arc<[usize]> = columns.into();
        let chunks = (first..end)
            .step_by(EVENTS_PER_TASK as usize)
            .map(move |lo| (lo, (lo + EVENTS_PER_TASK).min(end)));
        let batches: Vec<_> = futures::stream::iter(chunks)
            .map(|(lo, hi)| {
                let columns = Arc::clone(&columns);
                tokio::task::spawn_blocking(move || {
                    generate_columns(kind, &config, lo, hi, &columns)
                })
            })
            .buffered(parallelism)
            .map_err(|e| ConnectorError::Internal(format!("nexmark generator task failed: {e}")))
            .try_collect()
            .await?;
        Ok(SourceRead::rows(
            batches.into_iter().filter(|b| b.num_rows() > 0).collect(),
        ))
    }

    async fn commit(&self, _end: &SourceOffset) -> Result<()> {
        Ok(())
    }
}
