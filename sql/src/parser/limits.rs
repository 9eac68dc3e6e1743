//! Bounds on how deeply a statement nests, checked so that every statement ends quickly with
//! a result or a clear error: never a stack overflow, and never the exponential backtracking
//! sqlparser falls into near its recursion limit (48 nested `CAST`s never return).
//!
//! - Before parsing, the tokens are scanned (no recursion): parentheses nested deeper than
//!   [`MAX_PARENTHESES`] are refused, naming where, and so are more than [`MAX_OPERATORS`]
//!   operators in all (so no tree is built that is too deep even to drop).
//! - After parsing, an expression deeper than [`MAX_EXPRESSION_DEPTH`] is refused: a chain
//!   such as `1 + 1 + …` or `a OR b OR …` parses without recursion but is a tree as deep as
//!   it is long, which every later pass (planning, optimizing, dropping) walks recursively,
//!   in time that grows with the square of its length.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Result, SqlError};

/// The deepest nesting of parentheses a statement may have.
pub const MAX_PARENTHESES: usize = 16;

/// The deepest expression tree a statement may have (a chain of `n` binary operators is `n`
/// deep).
pub const MAX_EXPRESSION_DEPTH: usize = 500;

/// The most operators (`+`, `||`, `AND`, `=`, …) a statement may hold: more could only make
/// trees deeper than [`MAX_EXPRESSION_DEPTH`] or a very long plan, and are refused before
/// parsing builds them.
pub const MAX_OPERATORS: usize = 5 * MAX_EXPRESSION_DEPTH;

/// Refuses `sql` when its parentheses nest deeper than [`MAX_PARENTHESES`], or it holds more
/// than [`MAX_OPERATORS`] operators.
pub(super) fn check_nesting(sql: &str) -> Result<()> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax(e.to_string()))?;
    let mut depth = 0usize;
    let mut operators = 0usize;
    for token in tokens {
        if is_operator(&token.token) {
            operators += 1;
            if operators > MAX_OPERATORS {
                return Err(SqlError::Invalid(format!(
                    "the statement holds more than {MAX_OPERATORS} operators (line {}, column \
                     {}); split it, or use IN (…) for a list of alternatives",
                    token.span.start.line, token.span.start.column
                )));
            }
        }
        match token.token {
            Token::LParen => {
                depth += 1;
                if depth > MAX_PARENTHESES {
                    return Err(SqlError::Invalid(format!(
                        "parentheses nest more than {MAX_PARENTHESES} deep at line {}, column \
                         {}; simplify the statement (for example with a view or a WITH clause)",
                        token.span.start.line, token.span.start.column
                    )));
                }
            }
            Token::RParen => depth = depth.saturating_sub(1),
            // Each statement of a script has its own budget.
            Token::SemiColon if depth == 0 => operators = 0,
            _ => {}
        }
    }
    Ok(())
}

fn is_operator(token: &Token) -> bool {
    match token {
        Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::Eq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Ampersand
        | Token::Pipe
        | Token::Caret => true,
        Token::Word(word) => matches!(word.keyword, Keyword::AND | Keyword::OR | Keyword::NOT),
        _ => false,
    }
}

/// Refuses a parsed statement whose expressions nest deeper than [`MAX_EXPRESSION_DEPTH`].
/// The walk stops at the limit, so it never goes deeper itself.
pub(super) fn check_depth<T: Visit>(statement: &T) -> Result<()> {
    struct Depth {
        now: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.now += 1;
            if self.now > MAX_EXPRESSION_DEPTH {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    match statement.visit(&mut Depth { now: 0 }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(SqlError::Invalid(format!(
            "an expression nests more than {MAX_EXPRESSION_DEPTH} deep (a chain of that many \
             operators such as `a + b + …` or `x OR y OR …`); split it, or use IN (…) for a \
             list of alternatives"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn deep_parentheses_are_refused_where_they_start_going_too_deep() {
        let ok = format!("SELECT {}1{}", "(".repeat(16), ")".repeat(16));
        check_nesting(&ok).unwrap();
        let deep = format!("SELECT\n  {}1{}", "(".repeat(17), ")".repeat(17));
        let error = check_nesting(&deep).unwrap_err().to_string();
        assert!(
            error.starts_with("parentheses nest more than 16 deep at line 2, column 19;"),
            "{error}"
        );
    }
}
