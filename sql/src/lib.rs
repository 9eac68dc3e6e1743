//! `weir-sql`: Weir's SQL front end. It turns SQL text into statements, keeps the catalog
//! descriptors of sources, tables, views and sinks, and plans continuous queries into
//! DataFusion [`LogicalPlan`](datafusion::logical_expr::LogicalPlan)s over streaming tables,
//! refusing what cannot run incrementally. It performs no I/O.
//!
//! ```text
//! SQL text ─▶ parser::parse ─▶ Statement ─▶ planner::plan_streaming_query ─▶ StreamingPlan
//! ```

pub mod catalog;
pub mod error;
pub mod logical;
pub mod parser;
pub mod planner;
pub mod window;

pub use catalog::{SinkDesc, SourceDesc, TableDesc, ViewDesc, WatermarkDesc};
pub use error::{Result, SqlError};
pub use parser::{ScriptStatement, ShowKind, Statement, parse_script, parse_sql};
pub use planner::{StreamingPlan, StreamingTable, plan_streaming_query};
