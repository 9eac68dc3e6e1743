//! Event-time windows, all in one place: the table functions `TUMBLE`, `HOP` and `SESSION`
//! (`table_functions.rs`), Spark's `window(ts, size, slide)` syntax rewritten to them
//! ([`rewrite_spark_windows`]), the window floor they compute starts with (`floor.rs`), and
//! the optimizer rule that aggregates a hopping window by panes ([`AggregateHopPanes`]).
//! [`register`] installs them all on a session in one call.

mod floor;
mod marker;
mod panes;
mod spark_syntax;
mod table_functions;

use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion::execution::context::SessionContext;

pub use marker::{FixedWindow, HopMarker, WindowColumn};
pub use panes::AggregateHopPanes;
pub use spark_syntax::rewrite_spark_windows;
pub use table_functions::{WindowInput, WindowInputs};

use table_functions::{Hop, Session, Tumble};

/// Registers the window table functions (in the spellings `tumble`, `TUMBLE`, `Tumble`, as
/// DataFusion looks table functions up by their exact spelling) and the pane rule on `ctx`;
/// returns the relations they may window, which the caller keeps up to date.
pub fn register(ctx: &SessionContext) -> WindowInputs {
    ctx.add_optimizer_rule(Arc::new(AggregateHopPanes));
    let inputs = WindowInputs::default();
    let functions: [(&str, Arc<dyn TableFunctionImpl>); 3] = [
        (
            "tumble",
            Arc::new(Tumble {
                inputs: Arc::clone(&inputs),
            }),
        ),
        (
            "hop",
            Arc::new(Hop {
                inputs: Arc::clone(&inputs),
            }),
        ),
        (
            "session",
            Arc::new(Session {
                inputs: Arc::clone(&inputs),
            }),
        ),
    ];
    for (name, function) in functions {
        register_table_function(ctx, name, function);
    }
    inputs
}

/// Registers `function` as `name` in the spellings DataFusion looks up (`name`, `NAME`,
/// `Name`: it matches table functions by their exact spelling).
pub fn register_table_function(
    ctx: &SessionContext,
    name: &str,
    function: Arc<dyn TableFunctionImpl>,
) {
    for spelling in [name.to_string(), name.to_uppercase(), capitalized(name)] {
        ctx.register_udtf(&spelling, Arc::clone(&function));
    }
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}
