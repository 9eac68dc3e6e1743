//! Static tables (`CREATE TABLE ... WITH (connector = 'files')`): every file of a directory, or
//! one file, read whole when the table is created.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::{ConnectorError, Result};
use crate::format::{BadRecords, Format, OnError};
use crate::location::{StoreLocation, is_hidden};
use crate::options::{ConnectorOptions, OptionSpec};
use crate::storage::StorageOptions;

/// Options of a static `files` table (besides the format's and `on_error`'s).
pub const FILE_TABLE_OPTIONS: &[OptionSpec] = &[OptionSpec {
    key: "path",
    help: "a file, or a directory whose files make the table; required",
}];

/// The files of the table: `(directory, names)`.
async fn table_files(options: &ConnectorOptions) -> Result<(StoreLocation, Vec<String>)> {
    let path = options.required("path")?;
    let storage = StorageOptions::from_options(options)?;
    let local = !path.contains("://") || path.starts_with("file://");
    let as_path = std::path::Path::new(path.strip_prefix("file://").unwrap_or(path));
    if local && as_path.is_file() {
        let parent = as_path
            .parent()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        let dir = StoreLocation::open(
            if parent.is_empty() { "." } else { &parent },
            &storage,
            false,
        )?;
        let name = as_path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        return Ok((dir, vec![name]));
    }
    let dir = StoreLocation::open(path, &storage, false)?;
    let mut names: Vec<String> = dir
        .list()
        .await?
        .into_iter()
        .map(|f| f.name)
        .filter(|n| !is_hidden(n))
        .collect();
    // An object-store path with nothing under it may name one object.
    if names.is_empty()
        && !local
        && let Some((parent, name)) = path.trim_end_matches('/').rsplit_once('/')
        && !parent.ends_with(':')
        && !parent.ends_with(":/")
    {
        let parent_dir = StoreLocation::open(parent, &storage, false)?;
        if parent_dir.list().await?.iter().any(|f| f.name == name) {
            return Ok((parent_dir, vec![name.to_string()]));
        }
    }
    names.sort();
    Ok((dir, names))
}

/// The schema of a table: the declared one, or inferred from its first file.
pub async fn table_schema(
    declared: Option<SchemaRef>,
    options: &ConnectorOptions,
) -> Result<SchemaRef> {
    let format = Format::from_options(options)?;
    if let Some(schema) = declared {
        return Ok(schema);
    }
    let (dir, names) = table_files(options).await?;
    let Some(first) = names.first() else {
        return Err(ConnectorError::Config(format!(
            "cannot infer the schema of '{}': no files in {}; declare the columns",
            options.object(),
            dir.describe("")
        )));
    };
    let bytes = dir.get(first).await?.unwrap_or_default();
    format.infer_schema(bytes, &dir.describe(first))
}

/// Reads every row of the table.
pub async fn read_table(
    schema: &SchemaRef,
    options: &ConnectorOptions,
) -> Result<Vec<RecordBatch>> {
    let format = Format::from_options(options)?;
    let policy = OnError::from_options(options)?;
    if matches!(policy, OnError::DeadLetter(_)) {
        return Err(ConnectorError::Config(format!(
            "on_error = 'dead_letter' is for sources; use 'skip' or 'fail' for table '{}'",
            options.object()
        )));
    }
    let (dir, names) = table_files(options).await?;
    let mut batches = Vec::new();
    for name in names {
        let location = dir.describe(&name);
        let bytes = dir.get(&name).await?.unwrap_or_default();
        let mut bad = BadRecords::new(policy.clone());
        batches.extend(format.decode(bytes, &Arc::clone(schema), &location, &mut bad)?);
    }
    Ok(batches)
}
