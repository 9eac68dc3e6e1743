//! [`AllowedPaths`]: the directories and object-store prefixes that the locations in a
//! statement's connector options must lie in, when the engine is confined
//! ([`EngineBuilder::allowed_paths`](super::EngineBuilder::allowed_paths), which
//! `weir serve --allow-path` sets), so that a client of a server reads and writes nowhere else.
//!
//! A local location (no scheme, or `file://`) is made absolute against the current directory,
//! as the connectors make it, then resolved component by component as the kernel does: every
//! prefix that exists is canonicalised (so a symbolic link cannot lead out), `..` steps to the
//! parent of what is resolved so far, and what does not exist yet is appended as written. It
//! is inside a root when the root, canonicalised when the engine is built, is a
//! path-component prefix of it (`/srv/in2` is not inside `/srv/in`).
//!
//! An object-store URL (`s3://bucket/prefix/…`) is inside a root that is a URL of the same
//! scheme and bucket whose path segments begin the location's. A URL that its parser would
//! rewrite (`.` or `..` segments, spaces, control characters, `?`, `#`, `\`) is refused
//! rather than guessed at.

use std::collections::BTreeMap;
use std::path::{Component, PathBuf};

use crate::error::{Result, WeirError};

/// The roots locations must lie in; without roots every location is allowed.
#[derive(Debug, Clone, Default)]
pub(super) struct AllowedPaths {
    roots: Vec<Location>,
}

/// A place named by an option or a root, resolved for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// An absolute local path with no `.`, `..` or symbolic link in its existing part.
    Local(PathBuf),
    /// An object-store URL.
    Store(StoreUrl),
}

/// An object-store URL, split as its store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoreUrl {
    /// Lower case, as URL parsers make it.
    scheme: String,
    /// The bucket or container (with any user or port), exactly as written.
    bucket: String,
    /// The path's segments, without empty ones (object stores drop them).
    segments: Vec<String>,
}

impl AllowedPaths {
    /// Resolves `roots`: local ones must exist (they are canonicalised now), URLs must be
    /// plain. No roots means no confinement.
    pub fn new(roots: &[String]) -> Result<Self> {
        let roots = roots
            .iter()
            .map(|root| {
                resolve_root(root).map_err(|why| {
                    WeirError::Plan(format!("allowed path '{root}' cannot be used: {why}"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { roots })
    }

    /// Fails unless every location among `options`, the options of the `kind` (source,
    /// table, sink) named `name`, lies inside a root. With no roots, succeeds.
    pub fn check(&self, kind: &str, name: &str, options: &BTreeMap<String, String>) -> Result<()> {
        if self.roots.is_empty() {
            return Ok(());
        }
        for (key, value) in options.iter().filter(|(key, _)| is_location(key)) {
            let location = resolve(value).map_err(|why| {
                WeirError::Plan(format!(
                    "option '{key}' of {kind} '{name}' is {value}, which this engine cannot \
                     check against the paths it may use ({}): {why}",
                    self.roots_list()
                ))
            })?;
            if !self.contains(&location) {
                let resolved = match &location {
                    Location::Local(path) if path.to_str() != Some(value.as_str()) => {
                        format!(" (resolving to {})", path.display())
                    }
                    _ => String::new(),
                };
                return Err(WeirError::Plan(format!(
                    "option '{key}' of {kind} '{name}' is {value}{resolved}, outside the paths \
                     this engine may use ({}); ask the server's operator to allow it with \
                     --allow-path",
                    self.roots_list()
                )));
            }
        }
        Ok(())
    }

    fn contains(&self, location: &Location) -> bool {
        self.roots.iter().any(|root| match (root, location) {
            (Location::Local(root), Location::Local(path)) => path.starts_with(root),
            (Location::Store(root), Location::Store(url)) => {
                root.scheme == url.scheme
                    && root.bucket == url.bucket
                    && url.segments.starts_with(&root.segments)
            }
            _ => false,
        })
    }

    fn roots_list(&self) -> String {
        let show = |root: &Location| match root {
            Location::Local(path) => path.display().to_string(),
            Location::Store(url) => {
                let mut shown = format!("{}://{}", url.scheme, url.bucket);
                for segment in &url.segments {
                    shown.push('/');
                    shown.push_str(segment);
                }
                shown
            }
        };
        self.roots.iter().map(show).collect::<Vec<_>>().join(", ")
    }
}

/// Whether option `key` names a file, directory or object-store location: `path` (files
/// sources and tables, parquet sinks), `checkpoint` (sinks) and every `…_path`
/// (`dead_letter_path`, `gcs.service_account_path`, and a custom connector's).
fn is_location(key: &str) -> bool {
    key == "path" || key == "checkpoint" || key.ends_with("_path")
}

/// Splits `value` as `StoreLocation::open` of the connectors does: no `://` or `file://` is
/// local, any other scheme an object store.
fn resolve(value: &str) -> std::result::Result<Location, String> {
    match value.split_once("://") {
        None => resolve_local(value).map(Location::Local),
        Some(("file", path)) => resolve_local(path).map(Location::Local),
        Some((scheme, rest)) => parse_store_url(scheme, rest).map(Location::Store),
    }
}

/// A root: a URL, or a local path that exists, canonicalised.
fn resolve_root(root: &str) -> std::result::Result<Location, String> {
    let local = match root.split_once("://") {
        None => root,
        Some(("file", path)) => path,
        Some((scheme, rest)) => return parse_store_url(scheme, rest).map(Location::Store),
    };
    let absolute = std::path::absolute(local).map_err(|e| e.to_string())?;
    std::fs::canonicalize(&absolute)
        .map(Location::Local)
        .map_err(|e| format!("{}: {e}", absolute.display()))
}

/// `path` made absolute and resolved as the kernel would reach it: each existing prefix is
/// canonicalised, and `..` applies to what is resolved so far.
fn resolve_local(path: &str) -> std::result::Result<PathBuf, String> {
    if path.is_empty() {
        return Err("the path is empty".to_string());
    }
    let absolute = std::path::absolute(path).map_err(|e| e.to_string())?;
    let mut resolved = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => resolved.push(component),
            Component::CurDir => {}
            // After a symbolic link, `..` leaves the link's target, not the directory holding
            // the link: popping the canonical prefix does the same, a lexical `..` would not.
            Component::ParentDir => {
                if !resolved.pop() {
                    return Err("'..' climbs above the filesystem root".to_string());
                }
            }
            Component::Normal(name) => {
                resolved.push(name);
                // A missing path (or one this process cannot look at, which the connector
                // cannot reach either) is kept as written.
                if std::fs::symlink_metadata(&resolved).is_ok() {
                    resolved = std::fs::canonicalize(&resolved)
                        .map_err(|e| format!("cannot resolve {}: {e}", resolved.display()))?;
                }
            }
        }
    }
    Ok(resolved)
}

/// `<scheme>://<rest>` as an object-store URL; refuses what a URL parser would rewrite.
fn parse_store_url(scheme: &str, rest: &str) -> std::result::Result<StoreUrl, String> {
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(format!("'{scheme}' is not a URL scheme"));
    }
    if let Some(c) = rest
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\'))
    {
        return Err(format!(
            "it holds {c:?}, which URL parsing would rewrite; write the location without it"
        ));
    }
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    let segments = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let decoded = segment.replace("%2e", ".").replace("%2E", ".");
            if decoded == "." || decoded == ".." {
                Err(format!(
                    "it has a '{segment}' segment; write the location without '.' or '..'"
                ))
            } else {
                Ok(segment.to_string())
            }
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(StoreUrl {
        scheme: scheme.to_ascii_lowercase(),
        bucket: bucket.to_string(),
        segments,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Engine;

    /// A temporary directory holding `in`, `out` and `elsewhere`, canonicalised.
    fn dirs() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        for name in ["in", "out", "elsewhere", "in2"] {
            std::fs::create_dir(base.join(name)).unwrap();
        }
        (dir, base)
    }

    fn text(path: &Path) -> String {
        path.to_str().unwrap().to_string()
    }

    fn allowed(roots: &[String]) -> AllowedPaths {
        AllowedPaths::new(roots).unwrap()
    }

    fn check(paths: &AllowedPaths, key: &str, value: &str) -> Result<()> {
        let options = BTreeMap::from([(key.to_string(), value.to_string())]);
        paths.check("source", "events", &options)
    }

    fn message(result: Result<()>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn no_roots_allow_everything() {
        let paths = allowed(&[]);
        check(&paths, "path", "/etc").unwrap();
        check(&paths, "path", "s3://any/where/../else").unwrap();
    }

    #[test]
    fn local_paths_inside_a_root_are_allowed_existing_or_not() {
        let (_dir, base) = dirs();
        let paths = allowed(&[text(&base.join("in"))]);
        check(&paths, "path", &text(&base.join("in"))).unwrap();
        check(&paths, "path", &text(&base.join("in/new/deeper"))).unwrap();
        check(
            &paths,
            "path",
            &format!("{}/./a/../b/", text(&base.join("in"))),
        )
        .unwrap();
    }

    #[test]
    fn a_sibling_sharing_the_root_as_name_prefix_is_outside() {
        let (_dir, base) = dirs();
        let paths = allowed(&[text(&base.join("in"))]);
        let err = message(check(&paths, "path", &text(&base.join("in2"))));
        assert!(err.contains("outside the paths"), "{err}");
        check(&paths, "path", &text(&base.join("in2/x"))).unwrap_err();
    }

    #[test]
    fn dot_dot_leaving_a_root_is_outside() {
        let (_dir, base) = dirs();
        let paths = allowed(&[text(&base.join("in"))]);
        let escape = format!("{}/../elsewhere", text(&base.join("in")));
        assert_eq!(
            message(check(&paths, "path", &escape)),
            format!(
                "option 'path' of source 'events' is {escape} (resolving to {}), outside the \
                 paths this engine may use ({}); ask the server's operator to allow it with \
                 --allow-path",
                base.join("elsewhere").display(),
                base.join("in").display()
            )
        );
        // Through a directory that does not exist yet, too.
        let escape = format!("{}/new/../../elsewhere", text(&base.join("in")));
        check(&paths, "path", &escape).unwrap_err();
    }

    #[test]
    fn dot_dot_above_the_filesystem_root_is_refused() {
        let (_dir, base) = dirs();
        let paths = allowed(&[text(&base.join("in"))]);
        let err = message(check(&paths, "path", "/../../etc"));
        assert_eq!(
            err,
            format!(
                "option 'path' of source 'events' is /../../etc, which this engine cannot check \
                 against the paths it may use ({}): '..' climbs above the filesystem root",
                base.join("in").display()
            )
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_current_directory() {
        let (_dir, base) = dirs();
        let paths = allowed(&[text(&base.join("in"))]);
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let relative = format!("{up}{}", text(&base.join("in/x")).trim_start_matches('/'));
        check(&paths, "path", &relative).unwrap();
        let relative = format!("{up}{}", text(&base.join("out")).trim_start_matches('/'));
        check(&paths, "path", &relative).unwrap_err();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_out_of_a_root_is_outside() {
        let (_dir, base) = dirs();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("in/link")).unwrap();
        let paths = allowed(&[text(&base.join("in"))]);
        let through = text(&base.join("in/link/data"));
        assert_eq!(
            message(check(&paths, "path", &through)),
            format!(
                "option 'path' of source 'events' is {through} (resolving to {}), outside the \
                 paths this engine may use ({}); ask the server's operator to allow it with \
                 --allow-path",
                base.join("elsewhere/data").display(),
                base.join("in").display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn dot_dot_after_a_symlink_leaves_its_target() {
        let (_dir, base) = dirs();
        std::fs::create_dir(base.join("elsewhere/deep")).unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere/deep"), base.join("in/link")).unwrap();
        let paths = allowed(&[text(&base.join("in"))]);
        // Lexically in/x; the kernel reaches elsewhere/x.
        let err = message(check(&paths, "path", &text(&base.join("in/link/../x"))));
        assert!(
            err.contains(&format!(
                "resolving to {}",
                base.join("elsewhere/x").display()
            )),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_is_refused() {
        let (_dir, base) = dirs();
        std::os::unix::fs::symlink(base.join("nowhere"), base.join("in/dangling")).unwrap();
        let paths = allowed(&[text(&base.join("in"))]);
        let err = message(check(&paths, "path", &text(&base.join("in/dangling"))));
        assert!(err.contains("cannot resolve"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_root_behind_a_symlink_is_canonicalised() {
        let (_dir, base) = dirs();
        std::os::unix::fs::symlink(base.join("in"), base.join("alias")).unwrap();
        let paths = allowed(&[text(&base.join("alias"))]);
        check(&paths, "path", &text(&base.join("in/x"))).unwrap();
        check(&paths, "path", &text(&base.join("alias/x"))).unwrap();
        check(&paths, "path", &text(&base.join("out"))).unwrap_err();
    }

    #[test]
    fn file_urls_are_local_paths() {
        let (_dir, base) = dirs();
        let paths = allowed(&[format!("file://{}", text(&base.join("in")))]);
        check(
            &paths,
            "path",
            &format!("file://{}", text(&base.join("in/x"))),
        )
        .unwrap();
        check(&paths, "path", &text(&base.join("in/x"))).unwrap();
        check(
            &paths,
            "path",
            &format!("file://{}", text(&base.join("out"))),
        )
        .unwrap_err();
        check(&paths, "path", "file:///etc/passwd").unwrap_err();
    }

    #[test]
    fn s3_urls_must_share_the_roots_bucket_and_prefix() {
        let (_dir, base) = dirs();
        let paths = allowed(&["s3://bucket/prefix/".to_string(), text(&base.join("in"))]);
        check(&paths, "path", "s3://bucket/prefix").unwrap();
        check(&paths, "path", "s3://bucket/prefix/a/b").unwrap();
        check(&paths, "path", "S3://bucket//prefix/a").unwrap();
        for outside in [
            "s3://bucket/prefix2/a",
            "s3://bucket/other",
            "s3://bucket",
            "s3://other/prefix/a",
            "gs://bucket/prefix/a",
            "s3://user@bucket/prefix/a",
        ] {
            assert_eq!(
                message(check(&paths, "path", outside)),
                format!(
                    "option 'path' of source 'events' is {outside}, outside the paths this \
                     engine may use (s3://bucket/prefix, {}); ask the server's operator to allow \
                     it with --allow-path",
                    base.join("in").display()
                )
            );
        }
        // A local root does not admit a URL, nor a URL root a local path.
        check(
            &paths,
            "path",
            &format!("memory://{}", text(&base.join("in"))),
        )
        .unwrap_err();
        check(&paths, "path", "/bucket/prefix/a").unwrap_err();
    }

    #[test]
    fn urls_a_parser_would_rewrite_are_refused() {
        let paths = allowed(&["s3://bucket/prefix".to_string()]);
        for (url, why) in [
            ("s3://bucket/prefix/../secret", "a '..' segment"),
            ("s3://bucket/prefix/%2e%2E/secret", "a '%2e%2E' segment"),
            ("s3://bucket/prefix/./a", "a '.' segment"),
            ("s3://bucket/prefix/.. /secret", "' '"),
            ("s3://bucket/prefix/\t../secret", "'\\t'"),
            ("s3://bucket/prefix/a?x=1", "'?'"),
            ("s3://bucket/prefix/a#frag", "'#'"),
            ("s3://bucket/prefix\\..\\secret", "'\\\\'"),
        ] {
            let err = message(check(&paths, "path", url));
            assert!(
                err.contains("cannot check against the paths it may use (s3://bucket/prefix)")
                    && err.contains(why),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn every_location_option_is_checked_and_only_those() {
        let (_dir, base) = dirs();
        let paths = allowed(&[text(&base.join("in"))]);
        for key in [
            "path",
            "checkpoint",
            "dead_letter_path",
            "gcs.service_account_path",
        ] {
            let err = message(check(&paths, key, "/etc/passwd"));
            assert!(
                err.starts_with(&format!("option '{key}' of source")),
                "{err}"
            );
        }
        for key in ["connector", "format", "topic", "url"] {
            check(&paths, key, "/etc/passwd").unwrap();
        }
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let (_dir, base) = dirs();
        let missing = text(&base.join("missing"));
        let err = AllowedPaths::new(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "allowed path '{missing}' cannot be used: {missing}: "
            )),
            "{err}"
        );
        let err = Engine::builder()
            .allowed_paths([missing.as_str()])
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing), "{err}");
    }

    #[tokio::test]
    async fn the_engine_refuses_a_source_outside_its_roots() {
        let (_dir, base) = dirs();
        let (inside, outside) = (base.join("in"), base.join("elsewhere"));
        let engine = Engine::builder()
            .allowed_paths([text(&inside), text(&base.join("out"))])
            .build()
            .unwrap();
        let create = |path: &Path| {
            format!(
                "CREATE SOURCE events (id INT) WITH (connector = 'files', path = '{}', \
                 format = 'json')",
                path.display()
            )
        };
        let err = engine.execute(&create(&outside)).await.unwrap_err();
        assert!(matches!(err, WeirError::Plan(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "option 'path' of source 'events' is {}, outside the paths this engine may use \
                 ({}, {}); ask the server's operator to allow it with --allow-path",
                outside.display(),
                inside.display(),
                base.join("out").display()
            )
        );
        engine.execute(&create(&inside)).await.unwrap();
    }

    #[tokio::test]
    async fn the_engine_checks_tables_and_sinks_before_creating_them() {
        let (_dir, base) = dirs();
        let engine = Engine::builder()
            .allowed_paths([text(&base.join("in"))])
            .build()
            .unwrap();
        let table = format!(
            "CREATE TABLE t (id INT) WITH (connector = 'files', path = '{}', format = 'json')",
            base.join("out").display()
        );
        let err = engine.execute(&table).await.unwrap_err().to_string();
        assert!(err.starts_with("option 'path' of table 't' is"), "{err}");

        let never = base.join("out/never");
        let sink = format!(
            "CREATE SINK s WITH (connector = 'parquet', path = '{}', checkpoint = '{}')",
            never.display(),
            base.join("in/checkpoint").display()
        );
        let err = engine.execute(&sink).await.unwrap_err().to_string();
        assert!(err.starts_with("option 'path' of sink 's' is"), "{err}");
        assert!(!never.exists(), "a refused sink created its directory");

        let sink = format!(
            "CREATE SINK s WITH (connector = 'memory', checkpoint = '{}') AS SELECT 1 AS x",
            base.join("out/checkpoint").display()
        );
        let err = engine.execute(&sink).await.unwrap_err().to_string();
        assert!(
            err.starts_with("option 'checkpoint' of sink 's' is"),
            "{err}"
        );

        // Without a checkpoint option, the engine's own checkpoint root is used: fine.
        engine
            .execute("CREATE SINK s WITH (connector = 'memory')")
            .await
            .unwrap();
    }
}
