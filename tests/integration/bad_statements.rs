//! Bad statements never panic, hang or overflow the stack: each finishes within a bound
//! with a result or a clear error. Regression tests for the defects a fuzz run found, and a
//! bounded fuzz of our own (proptest): statements mutated from a corpus of valid ones
//! (tokens inserted, spans deleted or repeated, huge numbers, stray characters), each run
//! through the engine with a time limit. `PROPTEST_CASES` sets how many (256 by default);
//! `WEIR_FUZZ_ECHO=1` prints each statement first (a stack overflow aborts the process
//! before proptest can name the case).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use weir::Engine;

/// Time any one statement may take in these tests (a debug build, on a busy machine).
const BOUND: Duration = Duration::from_secs(20);

async fn engine() -> Engine {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(
            "CREATE SOURCE s (a BIGINT, b VARCHAR, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'memory')",
        )
        .await
        .unwrap();
    engine
}

/// Runs `sql` (one or more statements) within [`BOUND`]; the error text, if any.
async fn outcome(engine: &Engine, sql: &str) -> Result<(), String> {
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, engine.execute(sql)).await;
    let result = result.unwrap_or_else(|_| panic!("no answer within {BOUND:?} to: {sql:.300}"));
    assert!(started.elapsed() < BOUND);
    result.map(|_| ()).map_err(|e| e.to_string())
}

fn chain(terms: usize, operand: &str, operator: &str) -> String {
    vec![operand; terms].join(&format!(" {operator} "))
}

#[tokio::test]
async fn a_huge_watermark_delay_is_an_error_not_a_panic() {
    let engine = Engine::builder().build().unwrap();
    let error = outcome(
        &engine,
        "CREATE SOURCE w (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '99999999999999999999' SECOND) \
         WITH (connector = 'memory')",
    )
    .await
    .unwrap_err();
    assert!(
        error.contains("the delay of 100000000000000000000 seconds is too long"),
        "{error}"
    );
}

#[tokio::test]
async fn deeply_nested_casts_are_refused_at_once() {
    let engine = engine().await;
    let casts = |n: usize| {
        format!(
            "SELECT {}a{} FROM s",
            "CAST(".repeat(n),
            " AS BIGINT)".repeat(n)
        )
    };
    // sqlparser backtracked exponentially from 48 nested casts on.
    for n in [48, 60, 500] {
        let error = outcome(&engine, &casts(n)).await.unwrap_err();
        assert!(
            error.starts_with("parentheses nest more than 16 deep at line 1, column"),
            "{n}: {error}"
        );
    }
    outcome(&engine, &casts(15)).await.unwrap();
}

#[tokio::test]
async fn nested_intervals_in_calls_that_made_the_parser_backtrack_end_quickly() {
    let engine = engine().await;
    // Found by the fuzz: each `INTERVAL n(` level doubled sqlparser's work (22 never ended).
    for levels in [16, 22] {
        let sql = format!(
            "SELECT date_bin({}INTERVAL '1' MINUTE{}, ts) FROM s",
            "INTERVAL n(".repeat(levels),
            ",TE)".repeat(levels)
        );
        let started = Instant::now();
        let error = outcome(&engine, &sql).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{levels}: {:?}",
            started.elapsed()
        );
        assert!(
            error.contains("parentheses nest more than 16 deep")
                || error.contains("could not be parsed within 10 seconds")
                || error.starts_with("syntax error"),
            "{levels}: {error}"
        );
    }
}

#[tokio::test]
async fn long_operator_chains_are_refused_with_a_limit_and_shorter_ones_run() {
    let engine = engine().await;
    for (operand, operator) in [("a", "+"), ("b", "||"), ("a > 0", "AND"), ("a > 0", "OR")] {
        for terms in [8_000, 100_000] {
            let sql = format!("SELECT {} FROM s", chain(terms, operand, operator));
            let error = outcome(&engine, &sql).await.unwrap_err();
            assert!(
                error.starts_with("the statement holds more than 2500 operators"),
                "{terms} × {operator}: {error:.200}"
            );
        }
        let sql = format!("SELECT {} FROM s", chain(600, operand, operator));
        let error = outcome(&engine, &sql).await.unwrap_err();
        assert!(
            error.starts_with("an expression nests more than 500 deep"),
            "600 × {operator}: {error:.200}"
        );
        let sql = format!("SELECT {} FROM s", chain(200, operand, operator));
        outcome(&engine, &sql).await.unwrap();
    }
}

#[tokio::test]
async fn a_script_saved_with_a_byte_order_mark_runs() {
    let engine = Engine::builder().build().unwrap();
    outcome(
        &engine,
        "\u{feff}CREATE SOURCE m (a INT) WITH (connector = 'memory'); SELECT 1 AS one",
    )
    .await
    .unwrap();
}

/// Valid statements the fuzz mutates.
const CORPUS: &[&str] = &[
    "SELECT a, upper(b) AS u FROM s WHERE a % 3 <> 1 AND b LIKE 'x%'",
    "SELECT window_start, count(*) AS n, sum(a) FROM TUMBLE(s, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
    "SELECT window_start, window_end, b, max(a) FROM HOP(s, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) GROUP BY 1, 2, 3",
    "SELECT b, count(DISTINCT a) FROM s GROUP BY b HAVING count(*) > 2",
    "SELECT CAST(a AS DOUBLE) / 2.5, CASE WHEN a > 10 THEN 'big' ELSE 'small' END, date_bin(INTERVAL '1' MINUTE, ts, TIMESTAMP '2024-01-01') FROM s",
    "CREATE VIEW v AS SELECT a * 2 AS twice, ts FROM s WHERE a IN (1, 2, 3)",
    "CREATE SOURCE t (x INT, y TIMESTAMP, WATERMARK FOR y AS y - INTERVAL '1' MINUTE) WITH (connector = 'memory', max_records_per_trigger = '5')",
    "CREATE SINK k WITH (connector = 'memory', output_mode = 'update') AS SELECT b, count(*) FROM s GROUP BY b",
    "INSERT INTO s VALUES (1, 'one', '2024-01-01 00:00:01'), (2, NULL, '2024-01-01 00:00:02')",
    "SELECT b FROM s UNION ALL SELECT b FROM s ORDER BY 1 LIMIT 3",
    "EXPLAIN SELECT a FROM s WHERE a BETWEEN -5 AND 5",
    "SHOW QUERIES; DESCRIBE s; SHOW SOURCES",
];

/// Pieces the fuzz inserts: tokens of the dialect, delimiters, extreme literals.
const PIECES: &[&str] = &[
    "(",
    ")",
    ",",
    ";",
    "'",
    "\"",
    "*",
    "+",
    "-",
    "||",
    "AND",
    "OR",
    "NOT",
    "CAST(",
    " AS ",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "WATERMARK FOR",
    "INTERVAL '1' SECOND",
    "WITH (",
    "99999999999999999999999",
    "-9223372036854775809",
    "1e400",
    "NULL",
    "TUMBLE(",
    "SESSION(",
    "window(",
    "OVER (",
    "\u{0}",
    "\u{feff}",
    "é",
    "🦀",
    "$1",
    "?",
    "::",
    "[",
    "]",
    "{",
    "}",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, usize),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn mutate(seed: &str, mutations: &[Mutation]) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for mutation in mutations {
        let at = |i: usize, text: &Vec<char>| i % (text.len() + 1);
        match *mutation {
            Mutation::Insert(i, piece) => {
                let at = at(i, &text);
                let piece: Vec<char> = PIECES[piece % PIECES.len()].chars().collect();
                text.splice(at..at, piece);
            }
            Mutation::Delete(i, len) => {
                let from = at(i, &text);
                let to = (from + len % 12).min(text.len());
                text.drain(from..to);
            }
            Mutation::Repeat(i, len, times) => {
                let from = at(i, &text);
                let to = (from + 1 + len % 20).min(text.len());
                let span: Vec<char> = text[from..to].to_vec();
                for _ in 0..times % 64 {
                    text.splice(to..to, span.iter().copied());
                }
            }
        }
    }
    text.into_iter().collect()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(i, p)| Mutation::Insert(i, p)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, l)| Mutation::Delete(i, l)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(i, l, t)| Mutation::Repeat(i, l, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every mutated statement gets an answer within the bound, and an error names
    /// something (never a panic, which fails the case, nor an empty or internal error).
    #[test]
    fn mutated_statements_end_with_a_result_or_a_clear_error(
        seed in 0..CORPUS.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let sql = mutate(CORPUS[seed], &mutations);
        // A stack overflow aborts the process before proptest can report the case.
        if std::env::var_os("WEIR_FUZZ_ECHO").is_some() {
            eprintln!("fuzz case: {sql:?}");
        }
        let runtime = crate::property::case_runtime();
        let result = runtime.block_on(async {
            let engine = engine().await;
            let result = outcome(&engine, &sql).await;
            engine.stop_all().await.ok();
            result
        });
        if let Err(error) = result {
            prop_assert!(error.len() > 10, "a terse error {error:?} for {sql:?}");
            prop_assert!(!error.contains("internal error"), "{error} for {sql:?}");
        }
    }
}
