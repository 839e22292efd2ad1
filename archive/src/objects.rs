//! Object storage named by a URL, opened once at startup.
//!
//! | URL | store |
//! |---|---|
//! | `file:///dir` | a local directory (the embedded default), created if missing |
//! | `s3://bucket/prefix` | Amazon S3 or any S3-compatible server |
//! | `gs://bucket/prefix` | Google Cloud Storage |
//! | `az://container/prefix` | Azure Blob Storage |
//! | `memory://` | in memory, for tests |
//!
//! The prefix is optional. Every key this cluster writes lives under it: the store returned
//! is rooted there (a [`PrefixStore`] for remote stores, the directory itself for `file://`),
//! so no caller can forget it.
//!
//! Remote stores take their connection settings from the standard environment variables of
//! each cloud, read by `object_store`'s `from_env` builders:
//!
//! - S3: `AWS_ENDPOINT_URL` (an S3-compatible server, e.g. `http://minio:9000`),
//!   `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP=true` (plain HTTP), and the web-identity and
//!   container-credential variables used on Kubernetes.
//! - GCS: `GOOGLE_SERVICE_ACCOUNT` (path of a service-account key file) or
//!   `GOOGLE_SERVICE_ACCOUNT_KEY`; without them, the instance's metadata server.
//! - Azure: `AZURE_STORAGE_ACCOUNT_NAME` and `AZURE_STORAGE_ACCOUNT_KEY` (or a SAS token,
//!   or workload identity variables).
//!
//! [`Settings`] (the binary's `--object-store.endpoint`, `.region`, `.access-key-id`,
//! `.secret-access-key`) override the S3 settings from the environment. An `http://`
//! endpoint allows plain HTTP. `Settings::timeout` (`--object-store.timeout`) bounds every
//! request to a remote store, so a hanging store fails an upload instead of stalling it.

use std::{sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    gcp::{GoogleCloudStorageBuilder, GoogleConfigKey},
    local::LocalFileSystem,
    memory::InMemory,
    path::Path,
    prefix::PrefixStore,
};

use crate::error::{Error, Result};

/// Returns a configuration error.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(Error::Config(format!($($arg)*)))
    };
}

/// An opened object store and the key prefix everything of this cluster lives under.
///
/// Stores opened by [`open`] are already rooted at the URL's prefix, so `prefix` is empty
/// for them; it is there for callers that share one store between clusters.
#[derive(Clone, Debug)]
pub struct ObjectStorage {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
}

impl ObjectStorage {
    /// The archived segments of this cluster (`<prefix>/segments/`, `<prefix>/holes/`).
    pub fn segments(&self) -> crate::segments::SegmentArchive {
        crate::segments::SegmentArchive::new(self.store.clone(), &self.prefix)
    }

    /// The snapshots of this cluster (`<prefix>/snapshots/`).
    pub fn snapshots(&self) -> regatta_materializer::snapshot::SnapshotStore {
        regatta_materializer::snapshot::SnapshotStore::new(self.store.clone(), &self.prefix)
    }
}

/// Connection settings of a remote object store beyond its URL (the binary's
/// `--object-store.*` flags). The S3 fields override the environment's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// S3 endpoint, for S3-compatible servers; an `http://` endpoint allows plain HTTP.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// S3 access key id.
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    pub secret_access_key: Option<String>,
    /// Time limit of each request to a remote store (connecting included).
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Opens the store a `--object-store` URL names with settings from the environment only
/// (for commands that take a URL alone).
pub fn open(url: &str) -> Result<ObjectStorage> {
    open_with(url, &Settings::default())
}

/// Opens the store a `--object-store` URL names (see the module docs for the URLs and
/// environment variables accepted), creating a local directory if needed. Nothing is sent
/// over the network here: a wrong URL or missing setting fails now, an unreachable store
/// fails its first request.
pub fn open_with(url: &str, flags: &Settings) -> Result<ObjectStorage> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!(
            "--object-store {url:?}: not a URL (use file:///path, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix)"
        );
    };
    let s3_flags = flags.endpoint.is_some()
        || flags.region.is_some()
        || flags.access_key_id.is_some()
        || flags.secret_access_key.is_some();
    if s3_flags && !matches!(scheme, "s3" | "s3a") {
        bail!(
            "--object-store.endpoint, .region, .access-key-id and .secret-access-key apply to s3:// URLs only"
        );
    }
    let store: Arc<dyn ObjectStore> = match scheme {
        "file" => return open_dir(url, rest),
        "memory" if rest.is_empty() => Arc::new(InMemory::new()),
        "s3" | "s3a" => {
            let (bucket, prefix) = bucket_and_prefix(url, rest)?;
            rooted(build_s3(url, bucket, flags)?, prefix)
        }
        "gs" => {
            let (bucket, prefix) = bucket_and_prefix(url, rest)?;
            let store = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_config(
                    GoogleConfigKey::Client(ClientConfigKey::Timeout),
                    secs(flags.timeout),
                )
                .with_config(
                    GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    secs(connect_timeout(flags.timeout)),
                )
                .with_retry(retry(flags.timeout))
                .build()
                .map_err(|e| {
                    Error::store(format!("--object-store {url:?}: Google Cloud Storage"), e)
                })?;
            rooted(store, prefix)
        }
        "az" | "azure" => {
            let (container, prefix) = bucket_and_prefix(url, rest)?;
            let store = MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .with_config(
                    AzureConfigKey::Client(ClientConfigKey::Timeout),
                    secs(flags.timeout),
                )
                .with_config(
                    AzureConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    secs(connect_timeout(flags.timeout)),
                )
                .with_retry(retry(flags.timeout))
                .build()
                .map_err(|e| {
                    Error::store(format!("--object-store {url:?}: Azure Blob Storage"), e)
                })?;
            rooted(store, prefix)
        }
        _ => bail!(
            "--object-store {url:?}: unsupported scheme {scheme:?} (use file:///path, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix)"
        ),
    };
    Ok(ObjectStorage {
        store,
        prefix: String::new(),
    })
}

fn open_dir(url: &str, path: &str) -> Result<ObjectStorage> {
    if !path.starts_with('/') {
        bail!(
            "--object-store {url:?}: a file URL needs an absolute path (file:///var/lib/regatta/objects)"
        );
    }
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        what: "creating the object store directory",
        path: path.into(),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(path)
        .map_err(|e| Error::store(format!("opening the object store directory {path}"), e))?;
    Ok(ObjectStorage {
        store: Arc::new(store),
        prefix: String::new(),
    })
}

/// Splits `bucket/some/prefix/` into the bucket and a checked key prefix (`some/prefix`).
fn bucket_and_prefix<'a>(url: &str, rest: &'a str) -> Result<(&'a str, Option<Path>)> {
    if rest.contains(['?', '#']) {
        bail!("--object-store {url:?}: query strings and fragments are not accepted");
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("--object-store {url:?}: no bucket (e.g. s3://my-bucket/regatta)");
    }
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Ok((bucket, None));
    }
    let path = Path::parse(prefix).map_err(|e| {
        Error::Config(format!(
            "--object-store {url:?}: bad key prefix {prefix:?}: {e}"
        ))
    })?;
    Ok((bucket, Some(path)))
}

fn rooted<T: ObjectStore>(store: T, prefix: Option<Path>) -> Arc<dyn ObjectStore> {
    match prefix {
        Some(prefix) => Arc::new(PrefixStore::new(store, prefix)),
        None => Arc::new(store),
    }
}

fn build_s3(url: &str, bucket: &str, flags: &Settings) -> Result<impl ObjectStore> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &flags.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &flags.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &flags.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &flags.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    // An operator who names an http:// endpoint means it (an S3-compatible server inside
    // the cluster); anything else keeps TLS unless AWS_ALLOW_HTTP says otherwise.
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    if let Some(endpoint) = &endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            bail!("S3 endpoint {endpoint:?} must be an http:// or https:// URL");
        }
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
    }
    builder
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            secs(flags.timeout),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            secs(connect_timeout(flags.timeout)),
        )
        .with_retry(retry(flags.timeout))
        .build()
        .map_err(|e| Error::store(format!("--object-store {url:?}: S3"), e))
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

fn connect_timeout(request: Duration) -> Duration {
    request.min(Duration::from_secs(5))
}

/// A few retries inside one request, bounded in time; the callers retry further with their
/// own backoff (the snapshot uploader does).
fn retry(request: Duration) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: (request * 2).max(Duration::from_secs(10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}/objects", dir.path().display());
        assert!(open(&url).is_ok());
        assert!(dir.path().join("objects").is_dir());
        assert!(open("memory://").is_ok());
        for bad in [
            "file://relative/dir",
            "ftp://x",
            "/plain/path",
            "s3://",
            "s3:///prefix",
            "gs://",
            "az://",
            "s3://bucket/a/../b",
            "s3://bucket/p?x=1",
            "memory://x",
        ] {
            assert!(open(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn s3_urls_open_without_network() {
        let flags = Settings {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            ..Settings::default()
        };
        for good in ["s3://bucket", "s3://bucket/", "s3://bucket/a/b/"] {
            let opened = open_with(good, &flags).expect(good);
            assert!(opened.prefix.is_empty());
        }
        let bad_endpoint = Settings {
            endpoint: Some("localhost:9000".into()),
            ..Settings::default()
        };
        assert!(open_with("s3://bucket", &bad_endpoint).is_err());
        assert!(
            open_with("file:///tmp/x", &flags).is_err(),
            "S3 flags with a file URL"
        );
    }

    #[test]
    fn prefixes_are_parsed() {
        let (bucket, prefix) = bucket_and_prefix("u", "b/one/two/").expect("parses");
        assert_eq!(bucket, "b");
        assert_eq!(prefix.expect("a prefix").as_ref(), "one/two");
        assert!(bucket_and_prefix("u", "b").expect("parses").1.is_none());
        assert!(bucket_and_prefix("u", "b//").expect("parses").1.is_none());
        assert!(bucket_and_prefix("u", "b/x//y").is_err());
    }

    #[tokio::test]
    async fn the_prefix_is_applied_to_every_key() {
        use object_store::{ObjectStoreExt, PutPayload};
        let inner = Arc::new(InMemory::new());
        let rooted = rooted(inner.clone(), Some(Path::from("cluster/a")));
        rooted
            .put(&Path::from("snapshots/x"), PutPayload::from_static(b"1"))
            .await
            .expect("put");
        inner
            .head(&Path::from("cluster/a/snapshots/x"))
            .await
            .expect("written under the prefix");
    }
}
