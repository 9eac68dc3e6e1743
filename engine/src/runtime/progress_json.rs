//! A batch's progress as the service and the Python package answer it: the JSON shape and
//! field names of Spark's `StreamingQueryProgress` (`batchId`, `numInputRows`,
//! `inputRowsPerSecond`, `processedRowsPerSecond`, `durationMs`, `eventTime.watermark`,
//! `stateOperators`, `sources`, `sink`), so that tools and habits built on Spark's progress
//! JSON read Weir's as well.
//!
//! Weir measures its phases differently from Spark, so `durationMs` maps them:
//! `latestOffset` (asking the sources), `walCommit` (writing `offsets/N`), `getBatch` (reading
//! the sources), `addBatch` (planning and running the batch, and the sink's write, as Spark's
//! `addBatch` includes its lazily run plan), `commitOffsets` (writing `commits/N`) and
//! `triggerExecution` (the whole batch). Weir's finer `execute` and `sinkWrite` are there too.
//! Fields Spark does not have are Weir's own and named in the same style: `triggerLagMs`, each
//! operator's `numRowsEmitted` and `timeMs`, each source's `numBadRecords` and `numBadFiles`.

use serde_json::{Value, json};

use crate::runtime::BatchProgress;

/// `progress` of query `name` in Spark's `StreamingQueryProgress` shape.
pub fn spark_progress(name: &str, progress: &BatchProgress) -> Value {
    let d = &progress.durations;
    let ms = |duration: std::time::Duration| duration.as_millis() as u64;
    let state_operators: Vec<Value> = progress
        .operators
        .iter()
        .map(|o| {
            let mut operator = json!({
                "operatorName": o.operator_id,
                "numRowsTotal": o.state_rows,
                "numRowsUpdated": o.rows_emitted,
                "numRowsRemoved": o.rows_evicted,
                "memoryUsedBytes": o.state_bytes,
                "numRowsDroppedByWatermark": o.late_rows,
                "numRowsEmitted": o.rows_emitted,
                "timeMs": ms(o.time),
            });
            if !o.late_rows_by_input.is_empty() {
                operator["numRowsDroppedByWatermarkByInput"] = json!(o.late_rows_by_input);
            }
            operator
        })
        .collect();
    let batch_seconds = d.total.as_secs_f64();
    let sources: Vec<Value> = progress
        .sources
        .iter()
        .map(|s| {
            json!({
                "description": s.name,
                "startOffset": s.start_offset.as_ref().map(|o| &o.0),
                "endOffset": s.end_offset.as_ref().map(|o| &o.0),
                "numInputRows": s.input_rows,
                "processedRowsPerSecond": if batch_seconds > 0.0 {
                    s.input_rows as f64 / batch_seconds
                } else {
                    0.0
                },
                "numBadRecords": s.bad_records,
                "numBadFiles": s.bad_files,
            })
        })
        .collect();
    let mut event_time = serde_json::Map::new();
    if let Some(watermark) = progress.watermark_ms {
        event_time.insert("watermark".to_string(), json!(iso_time(watermark)));
    }
    json!({
        "name": name,
        "timestamp": iso_time(progress.timestamp_ms),
        "batchId": progress.batch_id.0,
        "batchDuration": ms(d.total),
        "numInputRows": progress.input_rows,
        "inputRowsPerSecond": progress.input_rows_per_second,
        "processedRowsPerSecond": progress.processed_rows_per_second,
        "triggerLagMs": ms(progress.trigger_lag),
        "durationMs": {
            "latestOffset": ms(d.latest_offset),
            "walCommit": ms(d.write_offsets),
            "getBatch": ms(d.read),
            "addBatch": ms(d.execute + d.sink_write),
            "execute": ms(d.execute),
            "sinkWrite": ms(d.sink_write),
            "commitOffsets": ms(d.commit),
            "triggerExecution": ms(d.total),
        },
        "eventTime": event_time,
        "stateOperators": state_operators,
        "sources": sources,
        "sink": {"description": name, "numOutputRows": progress.output_rows},
    })
}

/// Milliseconds since the epoch as Spark writes times: `2026-12-07T05:06:07.123Z`.
fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weir_connectors::{BatchId, SourceOffset};

    use super::*;
    use crate::runtime::{OperatorProgress, PhaseDurations, SourceProgress};

    #[test]
    fn progress_takes_sparks_field_names_and_maps_the_phases() {
        let progress = BatchProgress {
            batch_id: BatchId(7),
            timestamp_ms: 1_765_083_967_123,
            trigger_lag: Duration::from_millis(40),
            input_rows: 100,
            output_rows: 3,
            input_rows_per_second: 50.0,
            processed_rows_per_second: 400.0,
            durations: PhaseDurations {
                latest_offset: Duration::from_millis(1),
                write_offsets: Duration::from_millis(2),
                read: Duration::from_millis(30),
                execute: Duration::from_millis(150),
                sink_write: Duration::from_millis(60),
                commit: Duration::from_millis(7),
                total: Duration::from_millis(250),
            },
            sources: vec![SourceProgress {
                name: "bids".to_string(),
                start_offset: Some(SourceOffset::from_count(10)),
                end_offset: Some(SourceOffset::from_count(110)),
                input_rows: 100,
                bad_records: 2,
                bad_files: 0,
            }],
            watermark_ms: Some(0),
            operators: vec![OperatorProgress {
                operator_id: "aggregate-0".to_string(),
                state_rows: 12,
                state_bytes: 4096,
                late_rows: 5,
                late_rows_by_input: Default::default(),
                rows_evicted: 4,
                rows_emitted: 3,
                time: Duration::from_millis(90),
            }],
        };
        let json = spark_progress("counts", &progress);
        assert_eq!(
            json,
            json!({
                "name": "counts",
                "timestamp": "2025-12-07T05:06:07.123Z",
                "batchId": 7,
                "batchDuration": 250,
                "numInputRows": 100,
                "inputRowsPerSecond": 50.0,
                "processedRowsPerSecond": 400.0,
                "triggerLagMs": 40,
                "durationMs": {
                    "latestOffset": 1, "walCommit": 2, "getBatch": 30, "addBatch": 210,
                    "execute": 150, "sinkWrite": 60, "commitOffsets": 7, "triggerExecution": 250,
                },
                "eventTime": {"watermark": "1970-01-01T00:00:00.000Z"},
                "stateOperators": [{
                    "operatorName": "aggregate-0", "numRowsTotal": 12, "numRowsUpdated": 3,
                    "numRowsRemoved": 4, "memoryUsedBytes": 4096,
                    "numRowsDroppedByWatermark": 5, "numRowsEmitted": 3, "timeMs": 90,
                }],
                "sources": [{
                    "description": "bids", "startOffset": 10, "endOffset": 110,
                    "numInputRows": 100, "processedRowsPerSecond": 400.0,
                    "numBadRecords": 2, "numBadFiles": 0,
                }],
                "sink": {"description": "counts", "numOutputRows": 3},
            })
        );
    }
}
