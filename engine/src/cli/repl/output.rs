//! How the shell prints rows: aligned tables (the default), CSV or JSON lines; long results
//! are cut at a row limit with a note saying how to see more.

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;

use crate::error::{Result, WeirError};

/// An output format of the shell (`--format`, `\format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per row.
    Json,
}

impl Format {
    /// Parses a format name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "table" => Some(Self::Table),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Renders `batches` in `format`, keeping at most `max_rows` rows (0: all). Returns the text
/// and how many rows were left out.
pub(crate) fn render(
    batches: &[RecordBatch],
    format: Format,
    max_rows: usize,
) -> Result<(String, usize)> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let kept = if max_rows == 0 {
        total
    } else {
        total.min(max_rows)
    };
    let shown = head(batches, kept);
    let failed = |e: arrow::error::ArrowError| WeirError::Internal(format!("formatting rows: {e}"));
    let text = match format {
        Format::Table => pretty_format_batches(&shown).map_err(failed)?.to_string(),
        Format::Csv => {
            let mut buffer = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buffer);
                for batch in &shown {
                    writer.write(batch).map_err(failed)?;
                }
            }
            String::from_utf8_lossy(&buffer).trim_end().to_string()
        }
        Format::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
            for batch in &shown {
                writer.write(batch).map_err(failed)?;
            }
            writer.finish().map_err(failed)?;
            String::from_utf8_lossy(&writer.into_inner())
                .trim_end()
                .to_string()
        }
    };
    Ok((text, total - kept))
}

/// The first `rows` rows of `batches`.
fn head(batches: &[RecordBatch], rows: usize) -> Vec<RecordBatch> {
    let mut left = rows;
    let mut out = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        out.push(batch.slice(0, take));
        left -= take;
    }
    if out.is_empty() {
        out.extend(batches.first().map(|b| b.slice(0, 0)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn formats_cut_long_results_at_the_row_limit() {
        let (table, left_out) = render(&[rows()], Format::Table, 2).unwrap();
        assert_eq!(
            table,
            "+---+---+\n| k | n |\n+---+---+\n| a | 1 |\n| b | 2 |\n+---+---+"
        );
        assert_eq!(left_out, 1);
        let (csv, left_out) = render(&[rows()], Format::Csv, 0).unwrap();
        assert_eq!(csv, "k,n\na,1\nb,2\nc,3");
        assert_eq!(left_out, 0);
        let (json, _) = render(&[rows()], Format::Json, 1).unwrap();
        assert_eq!(json, r#"{"k":"a","n":1}"#);
    }
}
