//! [`WindowColumn`]: what a window column is, carried from the window table functions that
//! compute it to the aggregation that groups by it. DataFusion passes a column's Arrow field
//! metadata through projections, so that is where it travels; this is the one place that
//! writes and reads it, as a typed value.

use std::collections::HashMap;

use datafusion::arrow::datatypes::Field;

/// Metadata key of a window's end column: `"watermarked"` or `"unwatermarked"`.
const END: &str = "weir.window_end";
/// Metadata key of a session window's start column.
const SESSION_START: &str = "weir.session_start";
/// Metadata key of both bounds of a tumbling or hopping window: `"<size ns> <window id>"`.
const FIXED: &str = "weir.window";
/// Metadata key of a hopping window's start: `"<slide ns> <windows per row>"`.
const HOP: &str = "weir.hop";

/// What the window table functions say of a column they compute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowColumn {
    /// The column is a window's end; `true` when the window is over a watermarked column.
    pub end_watermarked: Option<bool>,
    /// The column is a session window's start: sessions of a key merge when they overlap.
    pub session_start: bool,
    /// The column bounds a tumbling or hopping window (start or end): the same on both
    /// columns of one window, so a query grouping by both keeps only the start.
    pub fixed: Option<FixedWindow>,
    /// The column is a hopping window's start, unnested from its row's window starts.
    pub hop: Option<HopMarker>,
}

/// A tumbling or hopping window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedWindow {
    /// Its size in nanoseconds.
    pub size_ns: i64,
    /// Which window (`<relation>.<time column>`): start and end of one window share it.
    pub id: String,
}

/// A hopping window's slide and the windows each row is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopMarker {
    /// The slide in nanoseconds.
    pub slide_ns: i64,
    /// Windows per row: size ÷ slide.
    pub windows: i64,
}

impl WindowColumn {
    /// What `field`'s metadata says (nothing for a column that is not a window's).
    pub fn of(field: &Field) -> Self {
        let metadata = field.metadata();
        let pair = |key: &str| -> Option<(i64, String)> {
            let (number, rest) = metadata.get(key)?.split_once(' ')?;
            Some((number.parse().ok()?, rest.to_string()))
        };
        Self {
            end_watermarked: metadata.get(END).map(|kind| kind == "watermarked"),
            session_start: metadata.contains_key(SESSION_START),
            fixed: pair(FIXED).map(|(size_ns, id)| FixedWindow { size_ns, id }),
            hop: pair(HOP).and_then(|(slide_ns, windows)| {
                Some(HopMarker {
                    slide_ns,
                    windows: windows.parse().ok()?,
                })
            }),
        }
    }

    /// The field metadata that says it.
    pub fn metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::new();
        if let Some(watermarked) = self.end_watermarked {
            let kind = if watermarked {
                "watermarked"
            } else {
                "unwatermarked"
            };
            metadata.insert(END.to_string(), kind.to_string());
        }
        if self.session_start {
            metadata.insert(SESSION_START.to_string(), "true".to_string());
        }
        if let Some(fixed) = &self.fixed {
            metadata.insert(FIXED.to_string(), format!("{} {}", fixed.size_ns, fixed.id));
        }
        if let Some(hop) = self.hop {
            metadata.insert(HOP.to_string(), format!("{} {}", hop.slide_ns, hop.windows));
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;

    use super::*;

    #[test]
    fn a_marker_reads_back_as_written() {
        let markers = [
            WindowColumn {
                end_watermarked: Some(true),
                fixed: Some(FixedWindow {
                    size_ns: 10_000_000_000,
                    id: "bids.date_time".into(),
                }),
                ..Default::default()
            },
            WindowColumn {
                fixed: Some(FixedWindow {
                    size_ns: 60_000_000_000,
                    id: "s.ts".into(),
                }),
                hop: Some(HopMarker {
                    slide_ns: 5_000_000_000,
                    windows: 12,
                }),
                ..Default::default()
            },
            WindowColumn {
                session_start: true,
                ..Default::default()
            },
            WindowColumn::default(),
        ];
        for marker in markers {
            let field = Field::new("w", DataType::Int64, true).with_metadata(marker.metadata());
            assert_eq!(WindowColumn::of(&field), marker);
        }
    }
}
