//! The embedding API: [`Engine`] runs statements and owns the catalog; [`StreamingQuery`] is
//! the handle of one running continuous query.

mod allowed_paths;
mod catalog;
mod engine;
mod memory_table;
mod persisted_catalog;
mod show;
mod statements;
mod static_table;
mod streaming_query;

pub use engine::{Engine, EngineBuilder, Outcome, RestoreReport};
pub use streaming_query::StreamingQuery;
