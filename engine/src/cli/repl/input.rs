//! The shell's line editing: when a statement is complete (multi-line input ends at a `;`
//! outside quotes and comments; shell commands end at the line), and completion of keywords
//! and of the catalog's names (sources, sinks, tables, views, queries and their columns).

use std::sync::{Arc, RwLock};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

/// SQL keywords offered by completion (statement keywords first).
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "ORDER",
    "LIMIT",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "BETWEEN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "JOIN",
    "LEFT",
    "INNER",
    "ON",
    "UNION",
    "ALL",
    "DISTINCT",
    "CREATE",
    "SOURCE",
    "SINK",
    "TABLE",
    "VIEW",
    "INSERT",
    "INTO",
    "VALUES",
    "WITH",
    "WATERMARK",
    "FOR",
    "INTERVAL",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "TIMESTAMP",
    "SHOW",
    "SOURCES",
    "SINKS",
    "TABLES",
    "VIEWS",
    "QUERIES",
    "PROGRESS",
    "DESCRIBE",
    "EXPLAIN",
    "ANALYZE",
    "STOP",
    "QUERY",
    "DROP",
    "IF",
    "EXISTS",
    "REPLACE",
    "WATCH",
    "TUMBLE",
    "HOP",
    "SESSION",
    "window_start",
    "window_end",
    "count",
    "sum",
    "avg",
    "min",
    "max",
];

/// Shell commands: complete without a `;`.
const COMMANDS: &[&str] = &["help", "exit", "quit"];

/// Whether `input` is ready to run: a shell command, or SQL whose last significant
/// character (outside quotes and comments) is `;`.
pub(crate) fn is_complete(input: &str) -> bool {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.starts_with('\\') {
        return true;
    }
    let word = trimmed.trim_end_matches(';').trim().to_ascii_lowercase();
    if COMMANDS.contains(&word.as_str()) {
        return true;
    }
    ends_with_semicolon(input)
}

/// Scans SQL text for a final `;` outside string literals, quoted identifiers and comments.
fn ends_with_semicolon(sql: &str) -> bool {
    #[derive(PartialEq)]
    enum In {
        Code,
        Single,
        Double,
        LineComment,
        BlockComment,
    }
    let mut state = In::Code;
    let mut last_significant = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::Code => match c {
                '\'' => state = In::Single,
                '"' => state = In::Double,
                '-' if chars.peek() == Some(&'-') => {
                    chars.next();
                    state = In::LineComment;
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    state = In::BlockComment;
                }
                c if c.is_whitespace() => {}
                c => last_significant = Some(c),
            },
            In::Single if c == '\'' => {
                state = In::Code;
                last_significant = Some(c);
            }
            In::Double if c == '"' => {
                state = In::Code;
                last_significant = Some(c);
            }
            In::LineComment if c == '\n' => state = In::Code,
            In::BlockComment if c == '*' && chars.peek() == Some(&'/') => {
                chars.next();
                state = In::Code;
            }
            _ => {}
        }
    }
    state != In::Single && state != In::Double && last_significant == Some(';')
}

/// The names completion offers besides keywords, refreshed by the shell after each statement.
pub(crate) type Names = Arc<RwLock<Vec<String>>>;

/// rustyline's helper for the shell.
pub(crate) struct ShellHelper {
    pub names: Names,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let names = self.names.read().unwrap_or_else(|p| p.into_inner());
        let lower = word.to_lowercase();
        let mut candidates: Vec<String> = Vec::new();
        for name in names.iter() {
            if name.to_lowercase().starts_with(&lower) && !candidates.contains(name) {
                candidates.push(name.clone());
            }
        }
        // Keywords follow the case the user types in.
        let upper = word.chars().next().is_some_and(char::is_uppercase);
        for keyword in KEYWORDS.iter().chain(COMMANDS) {
            if keyword.to_lowercase().starts_with(&lower) {
                let keyword = if upper && keyword.chars().all(|c| !c.is_lowercase() || c == '_') {
                    keyword.to_string()
                } else if upper {
                    keyword.to_uppercase()
                } else {
                    keyword.to_lowercase()
                };
                if !candidates.contains(&keyword) {
                    candidates.push(keyword);
                }
            }
        }
        let pairs = candidates
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_complete_at_a_semicolon_outside_quotes_and_comments() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  -- done\n"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';'"));
        assert!(!is_complete("SELECT 'a;"));
        assert!(!is_complete("SELECT 1 -- ;"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(is_complete("SELECT 1 /* x */;"));
        assert!(is_complete("SELECT \"a;b\" FROM t;"));
        assert!(is_complete("help"));
        assert!(is_complete("\\format csv"));
        assert!(is_complete("exit"));
        assert!(is_complete(""));
    }
}
