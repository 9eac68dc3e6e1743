//! [`StorageOptions`]: how to reach an object store named by a URL (`s3://bucket/prefix`,
//! `gs://…`, `az://…`): the `s3.*`, `gcs.*`, `azure.*` and `storage.*` keys of a statement's
//! options over the usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), and the
//! retry policy for an unreachable endpoint.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::error::{ConnectorError, Result};
use crate::options::{ConnectorOptions, OptionSpec};

/// Options of every connector that takes a path and of every sink (for its checkpoint).
pub const STORAGE_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "s3.region",
        help: "s3:// paths: the bucket's region (default $AWS_REGION, else us-east-1)",
    },
    OptionSpec {
        key: "s3.endpoint",
        help: "s3:// paths: an S3-compatible endpoint URL such as http://127.0.0.1:9000 (default $AWS_ENDPOINT, else AWS)",
    },
    OptionSpec {
        key: "s3.access_key_id",
        help: "s3:// paths: the access key (default $AWS_ACCESS_KEY_ID, else the instance's credentials)",
    },
    OptionSpec {
        key: "s3.secret_access_key",
        help: "s3:// paths: the secret key (default $AWS_SECRET_ACCESS_KEY)",
    },
    OptionSpec {
        key: "s3.session_token",
        help: "s3:// paths: a session token for temporary credentials (default $AWS_SESSION_TOKEN)",
    },
    OptionSpec {
        key: "s3.allow_http",
        help: "s3:// paths: 'true' allows a plain-http endpoint (default $AWS_ALLOW_HTTP, else false)",
    },
    OptionSpec {
        key: "s3.virtual_hosted_style_request",
        help: "s3:// paths: 'true' addresses the bucket as a host name instead of a path (default false)",
    },
    OptionSpec {
        key: "gcs.service_account_path",
        help: "gs:// paths: a service account key file (default $GOOGLE_SERVICE_ACCOUNT or application default credentials)",
    },
    OptionSpec {
        key: "azure.account_name",
        help: "az:// paths: the storage account (default $AZURE_STORAGE_ACCOUNT_NAME)",
    },
    OptionSpec {
        key: "azure.account_key",
        help: "az:// paths: the account key (default $AZURE_STORAGE_ACCOUNT_KEY)",
    },
    OptionSpec {
        key: "azure.endpoint",
        help: "az:// paths: a custom endpoint such as an Azurite emulator's (default $AZURE_STORAGE_ENDPOINT)",
    },
    OptionSpec {
        key: "storage.retry_timeout",
        help: "object stores: how long a failing request is retried with exponential backoff before the query fails (default '30 seconds')",
    },
];

/// How long a failing object-store request is retried by default.
const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// The object-store settings of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// `(scheme prefix, option key, object_store config key, value)`, e.g.
    /// `("s3", "s3.endpoint", "aws_endpoint", url)`.
    settings: Vec<(&'static str, &'static str, String, String)>,
    retry_timeout: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            settings: Vec::new(),
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
        }
    }
}

impl StorageOptions {
    /// Reads the storage keys of `options`; other keys are left to their connector.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let mut settings = Vec::new();
        for spec in STORAGE_OPTIONS {
            let Some(value) = options.get(spec.key) else {
                continue;
            };
            let (scheme, key) = spec.key.split_once('.').unwrap_or(("", spec.key));
            let config_key = match (scheme, key) {
                ("storage", _) => continue,
                ("s3", "allow_http") => "aws_allow_http".to_string(),
                ("s3", key) => format!("aws_{key}"),
                ("gcs", key) => format!("google_{key}"),
                (_, key) => format!("azure_storage_{key}"),
            };
            let scheme = match scheme {
                "s3" => "s3",
                "gcs" => "gcs",
                _ => "azure",
            };
            settings.push((scheme, spec.key, config_key, value.to_string()));
        }
        let retry_timeout = options
            .duration("storage.retry_timeout")?
            .unwrap_or(DEFAULT_RETRY_TIMEOUT);
        Ok(Self {
            settings,
            retry_timeout,
        })
    }

    /// Overrides how long failing requests are retried.
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = timeout;
        self
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 100,
            retry_timeout: self.retry_timeout,
        }
    }

    fn for_scheme<'a>(&'a self, scheme: &'static str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.settings
            .iter()
            .filter(move |(s, _, _, _)| *s == scheme)
            .map(|(_, _, key, value)| (key.as_str(), value.as_str()))
    }

    /// Refuses settings meant for another kind of store than `url`'s.
    fn check_scheme(&self, url: &str, scheme: &'static str) -> Result<()> {
        if let Some((other, key, _, _)) = self.settings.iter().find(|(s, ..)| *s != scheme) {
            let store = match *other {
                "s3" => "s3://",
                "gcs" => "gs://",
                _ => "az://",
            };
            return Err(ConnectorError::Config(format!(
                "option '{key}' applies to {store} paths, but '{url}' is not one; remove it"
            )));
        }
        Ok(())
    }

    /// The object store holding `url` (whose scheme is not `file`), and the path of `url`
    /// inside it.
    pub(crate) fn open(&self, url: &str) -> Result<(Arc<dyn ObjectStore>, String)> {
        let parsed = url::Url::parse(url)
            .map_err(|e| ConnectorError::Config(format!("'{url}' is not a valid URL: {e}")))?;
        let path = parsed.path().trim_matches('/').to_string();
        let bad =
            |e: object_store::Error| ConnectorError::Config(format!("cannot use '{url}': {e}"));
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" | "s3a" => {
                self.check_scheme(url, "s3")?;
                let mut builder = AmazonS3Builder::from_env().with_url(url);
                for (key, value) in self.for_scheme("s3") {
                    builder = builder.with_config(key.parse().map_err(bad)?, value);
                }
                Arc::new(builder.with_retry(self.retry()).build().map_err(bad)?)
            }
            "gs" => {
                self.check_scheme(url, "gcs")?;
                let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url);
                for (key, value) in self.for_scheme("gcs") {
                    builder = builder.with_config(key.parse().map_err(bad)?, value);
                }
                Arc::new(builder.with_retry(self.retry()).build().map_err(bad)?)
            }
            "az" | "abfs" | "abfss" | "azure" => {
                self.check_scheme(url, "azure")?;
                let mut builder = MicrosoftAzureBuilder::from_env().with_url(url);
                for (key, value) in self.for_scheme("azure") {
                    builder = builder.with_config(key.parse().map_err(bad)?, value);
                }
                Arc::new(builder.with_retry(self.retry()).build().map_err(bad)?)
            }
            other => {
                return Err(ConnectorError::Config(format!(
                    "'{url}': {other}:// is not a supported store; use a local path, file://, \
                     s3://, gs:// or az://"
                )));
            }
        };
        Ok((store, path))
    }
}
