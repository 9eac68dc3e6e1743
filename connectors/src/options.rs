//! Validation of `WITH (key = 'value')` options: every connector declares its keys, an
//! unknown key is an error that lists the valid ones, and each value is parsed with a message
//! that names the key, the value and what was expected.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{ConnectorError, Result};

/// A key a connector accepts, with a one-line description for error messages and docs.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The key, lower case.
    pub key: &'static str,
    /// What it means, including its default.
    pub help: &'static str,
}

/// The options of one `CREATE SOURCE | TABLE | SINK` statement, for one connector.
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    object: String,
    values: BTreeMap<String, String>,
}

impl ConnectorOptions {
    /// The options `values` given to the object named `object`.
    pub fn new(object: impl Into<String>, values: BTreeMap<String, String>) -> Self {
        Self {
            object: object.into(),
            values,
        }
    }

    /// The name of the object the options belong to.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Fails on a key that no spec in `specs` declares, listing the valid keys. Dotted keys
    /// (`s3.endpoint`) are listed as their groups (`s3.*`), except the group of the unknown
    /// key itself, whose keys are listed in full.
    pub fn check_keys(&self, specs: &[&[OptionSpec]]) -> Result<()> {
        let known = |key: &str| specs.iter().flat_map(|s| s.iter()).any(|s| s.key == key);
        if let Some(unknown) = self.values.keys().find(|k| !known(k)) {
            let group = |key: &str| key.split_once('.').map(|(g, _)| g.to_string());
            let unknown_group = group(unknown);
            let mut valid: Vec<String> = specs
                .iter()
                .flat_map(|s| s.iter().map(|s| s.key))
                .map(|key| match group(key) {
                    Some(g) if Some(&g) != unknown_group.as_ref() => format!("{g}.*"),
                    _ => key.to_string(),
                })
                .collect();
            valid.sort_unstable();
            valid.dedup();
            return Err(ConnectorError::Config(format!(
                "unknown option '{unknown}' for '{}'; valid options are: {}",
                self.object,
                valid.join(", ")
            )));
        }
        Ok(())
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The raw value of `key`, which must be given.
    pub fn required(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            ConnectorError::Config(format!("option '{key}' is required for '{}'", self.object))
        })
    }

    /// The value of `key` parsed as a `T`; `expected` says what a valid value looks like.
    pub fn parse<T: FromStr>(&self, key: &str, expected: &str) -> Result<Option<T>> {
        self.get(key)
            .map(|raw| {
                raw.trim()
                    .parse::<T>()
                    .map_err(|_| self.bad_value(key, raw, expected))
            })
            .transpose()
    }

    /// The value of `key` as a positive count.
    pub fn positive(&self, key: &str) -> Result<Option<u64>> {
        match self.parse::<u64>(key, "a positive whole number")? {
            Some(0) => Err(self.bad_value(key, "0", "a positive whole number")),
            other => Ok(other),
        }
    }

    /// The value of `key` as `true` or `false`.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|raw| match raw.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.bad_value(key, raw, "'true' or 'false'")),
            })
            .transpose()
    }

    /// The value of `key` as a duration such as `'1 second'`, `'500ms'`, `'2 minutes'`.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>> {
        self.get(key)
            .map(|raw| parse_duration(raw).map_err(|e| self.bad_value(key, raw, &e)))
            .transpose()
    }

    /// The value of `key`, which must be one of `choices` (compared case-insensitively).
    pub fn choice(&self, key: &str, choices: &[&'static str]) -> Result<Option<&'static str>> {
        self.get(key)
            .map(|raw| {
                choices
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(raw.trim()))
                    .copied()
                    .ok_or_else(|| {
                        self.bad_value(key, raw, &format!("one of {}", choices.join(", ")))
                    })
            })
            .transpose()
    }

    /// The error for a bad value.
    pub fn bad_value(&self, key: &str, raw: &str, expected: &str) -> ConnectorError {
        ConnectorError::Config(format!(
            "option '{key}' of '{}' has the invalid value '{raw}': expected {expected}",
            self.object
        ))
    }
}

/// Parses `'1 second'`, `'1s'`, `'500 milliseconds'`, `'2 minutes'`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    // humantime knows `ms` and `us` but not Spark's spelled-out forms.
    let normalized = text
        .trim()
        .to_ascii_lowercase()
        .replace("milliseconds", "ms")
        .replace("millisecond", "ms")
        .replace("microseconds", "us")
        .replace("microsecond", "us");
    humantime::parse_duration(&normalized)
        .map_err(|e| format!("a duration such as '1 second' or '500ms' ({e})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec {
            key: "path",
            help: "",
        },
        OptionSpec {
            key: "format",
            help: "",
        },
    ];

    fn options(pairs: &[(&str, &str)]) -> ConnectorOptions {
        ConnectorOptions::new(
            "bids",
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn unknown_key_lists_valid_keys() {
        let err = options(&[("pth", "x")]).check_keys(&[
            SPECS,
            &[OptionSpec {
                key: "connector",
                help: "",
            }],
        ]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "unknown option 'pth' for 'bids'; valid options are: connector, format, path"
        );
        let dotted = &[
            OptionSpec {
                key: "s3.region",
                help: "",
            },
            OptionSpec {
                key: "s3.endpoint",
                help: "",
            },
            OptionSpec {
                key: "gcs.key",
                help: "",
            },
        ];
        assert_eq!(
            options(&[("pth", "x")])
                .check_keys(&[SPECS, dotted])
                .unwrap_err()
                .to_string(),
            "unknown option 'pth' for 'bids'; valid options are: format, gcs.*, path, s3.*"
        );
        assert_eq!(
            options(&[("s3.endpiont", "x")])
                .check_keys(&[SPECS, dotted])
                .unwrap_err()
                .to_string(),
            "unknown option 's3.endpiont' for 'bids'; valid options are: format, gcs.*, path, \
             s3.endpoint, s3.region"
        );
    }

    #[test]
    fn values_are_parsed_with_named_errors() {
        let opts = options(&[("n", "0"), ("d", "1 Second"), ("f", "JSON"), ("b", "yes")]);
        assert_eq!(
            opts.positive("n").unwrap_err().to_string(),
            "option 'n' of 'bids' has the invalid value '0': expected a positive whole number"
        );
        assert_eq!(opts.duration("d").unwrap(), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_duration("250 Milliseconds"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("1 minute 30 seconds"),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(opts.choice("f", &["json", "csv"]).unwrap(), Some("json"));
        assert!(
            opts.boolean("b")
                .unwrap_err()
                .to_string()
                .contains("expected 'true' or 'false'")
        );
        assert_eq!(
            opts.required("zz").unwrap_err().to_string(),
            "option 'zz' is required for 'bids'"
        );
    }
}
