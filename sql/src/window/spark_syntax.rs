//! Spark's spelling of event-time windows: `GROUP BY window(ts, size [, slide])`, selected as
//! `window.start` / `window.end` (or `window`, a struct of both). The query is rewritten into
//! the table-function form before planning:
//!
//! ```text
//! SELECT window.start, count(*) FROM bids GROUP BY window(date_time, INTERVAL '10' SECOND)
//!   ==> SELECT window_start, count(*) FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) AS bids
//!       GROUP BY window_start, window_end
//! ```
//! With a slide it becomes `HOP(bids, date_time, slide, size)`.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query, SelectItem,
    SetExpr, TableFactor, Value, visit_expressions_mut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::error::{Result, SqlError};

const USAGE: &str = "window(time_column, size [, slide [, start]])";

/// Rewrites a `GROUP BY window(...)` query into its table-function form; other queries are
/// left alone.
pub fn rewrite_spark_windows(query: &mut Query) -> Result<()> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Ok(());
    };
    let GroupByExpr::Expressions(groups, _) = &mut select.group_by else {
        return Ok(());
    };
    let session = groups.iter().any(|g| is_call(g, "session_window"));
    let struct_name = if session { "session_window" } else { "window" };
    let Some(position) = groups.iter().position(|g| is_call(g, struct_name)) else {
        return Ok(());
    };
    let call = groups.remove(position);
    groups.insert(position, Expr::Identifier(Ident::new("window_end")));
    groups.insert(position, Expr::Identifier(Ident::new("window_start")));
    let args = arguments(&call)?;
    let (time, size, slide, start) = match args.as_slice() {
        [time, gap] if session => (time, gap, None, None),
        _ if session => {
            return Err(SqlError::Invalid(
                "session_window(time_column, gap) takes 2 arguments".to_string(),
            ));
        }
        [time, size] => (time, size, None, None),
        [time, size, slide] => (time, size, Some(slide), None),
        [time, size, slide, start] => (time, size, Some(slide), Some(start)),
        _ => return Err(SqlError::Invalid(format!("{USAGE} takes 2 to 4 arguments"))),
    };
    let time = match time {
        Expr::Identifier(id) => id.to_string(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(ToString::to_string).unwrap_or_default()
        }
        other => {
            return Err(SqlError::Invalid(format!(
                "{USAGE}: the time must be a column, found {other}"
            )));
        }
    };
    let (size, slide) = (interval(size)?, slide.map(interval).transpose()?);
    let start = start
        .map(interval)
        .transpose()?
        .map_or(String::new(), |s| format!(", {s}"));

    let [from] = select.from.as_mut_slice() else {
        return Err(SqlError::Invalid(format!(
            "{USAGE} needs exactly one source in FROM"
        )));
    };
    if !from.joins.is_empty() {
        return Err(SqlError::Invalid(format!(
            "{USAGE} over a join is not supported; window the stream in a view or subquery first"
        )));
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &from.relation
    else {
        return Err(SqlError::Invalid(format!(
            "{USAGE} needs a source or view name in FROM"
        )));
    };
    let alias = match alias {
        Some(alias) => alias.name.to_string(),
        None => name.0.last().map(ToString::to_string).unwrap_or_default(),
    };
    let function = match &slide {
        None if session => format!("SESSION({name}, {time}, {size})"),
        None => format!("TUMBLE({name}, {time}, {size})"),
        Some(slide) => format!("HOP({name}, {time}, {slide}, {size}{start})"),
    };
    from.relation = relation(&format!("SELECT * FROM {function} AS {alias}"))?;

    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(Expr::Identifier(id)) = item
            && id.value.eq_ignore_ascii_case(struct_name)
        {
            let window = expression("named_struct('start', window_start, 'end', window_end)")?;
            *item = SelectItem::ExprWithAlias {
                expr: window,
                alias: Ident::new(struct_name),
            };
        }
    }
    let _ = visit_expressions_mut(query, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && let [first, field] = parts.as_slice()
            && first.value.eq_ignore_ascii_case(struct_name)
        {
            match field.value.to_ascii_lowercase().as_str() {
                "start" => *expr = Expr::Identifier(Ident::new("window_start")),
                "end" => *expr = Expr::Identifier(Ident::new("window_end")),
                _ => {}
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(())
}

fn is_call(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(name))
}

fn arguments(call: &Expr) -> Result<Vec<Expr>> {
    let Expr::Function(function) = call else {
        return Ok(Vec::new());
    };
    let FunctionArguments::List(list) = &function.args else {
        return Ok(Vec::new());
    };
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr.clone()),
            other => Err(SqlError::Invalid(format!(
                "{USAGE}: unsupported argument {other}"
            ))),
        })
        .collect()
}

/// An interval argument as SQL text: `INTERVAL ...` as written, or Spark's `'10 minutes'`.
fn interval(expr: &Expr) -> Result<String> {
    match expr {
        Expr::Interval(_) => Ok(expr.to_string()),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(text) => Ok(format!("INTERVAL '{text}'")),
            other => Err(SqlError::Invalid(format!(
                "{USAGE}: a size must be an interval, found {other}"
            ))),
        },
        other => Err(SqlError::Invalid(format!(
            "{USAGE}: a size must be an interval, found {other}"
        ))),
    }
}

fn relation(sql: &str) -> Result<TableFactor> {
    let query = Parser::new(&GenericDialect {})
        .try_with_sql(sql)?
        .parse_query()?;
    match *query.body {
        SetExpr::Select(select) => select
            .from
            .into_iter()
            .next()
            .map(|t| t.relation)
            .ok_or_else(|| SqlError::Invalid(format!("internal: no relation in {sql}"))),
        _ => Err(SqlError::Invalid(format!("internal: not a select: {sql}"))),
    }
}

fn expression(sql: &str) -> Result<Expr> {
    Ok(Parser::new(&GenericDialect {})
        .try_with_sql(sql)?
        .parse_expr()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> Result<String> {
        let mut query = Parser::new(&GenericDialect {})
            .try_with_sql(sql)?
            .parse_query()?;
        rewrite_spark_windows(&mut query)?;
        Ok(query.to_string())
    }

    #[test]
    fn tumbling_and_sliding_windows_become_table_functions() {
        assert_eq!(
            rewritten("SELECT window.start, window.end AS e, count(*) FROM bids b GROUP BY window(b.date_time, INTERVAL '10' SECOND), auction").unwrap(),
            "SELECT window_start, window_end AS e, count(*) FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) AS b GROUP BY window_start, window_end, auction"
        );
        assert_eq!(
            rewritten("SELECT window, count(*) FROM bids GROUP BY window(date_time, '1 minute', '30 seconds')").unwrap(),
            "SELECT named_struct('start', window_start, 'end', window_end) AS window, count(*) FROM HOP(bids, date_time, INTERVAL '30 seconds', INTERVAL '1 minute') AS bids GROUP BY window_start, window_end"
        );
        assert_eq!(
            rewritten("SELECT a FROM t GROUP BY a").unwrap(),
            "SELECT a FROM t GROUP BY a"
        );
    }

    #[test]
    fn session_windows_become_the_session_table_function() {
        assert_eq!(
            rewritten("SELECT user, session_window.end, count(*) FROM s GROUP BY user, session_window(ts, '5 minutes')").unwrap(),
            "SELECT user, window_end, count(*) FROM SESSION(s, ts, INTERVAL '5 minutes') AS s GROUP BY user, window_start, window_end"
        );
    }

    #[test]
    fn unsupported_forms_are_refused() {
        let err = rewritten(
            "SELECT count(*) FROM s JOIN t ON s.a = t.a GROUP BY window(ts, '5 minutes')",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("over a join is not supported"),
            "{err}"
        );
    }
}
