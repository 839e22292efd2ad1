//! The `--object-store.*` flags; opening a store from its URL is
//! [`regatta_archive::objects`] (the URLs and environment variables it accepts are listed
//! there).

use std::time::Duration;

use anyhow::Result;
use clap::Args;
pub use regatta_archive::objects::ObjectStorage;

/// Connection settings of a remote object store beyond its URL (shared by core and edge).
#[derive(Args, Debug, Clone)]
pub struct ObjectStoreFlags {
    /// S3 endpoint, for S3-compatible servers (e.g. `http://minio:9000`; an `http://`
    /// endpoint allows plain HTTP). Default: `AWS_ENDPOINT_URL`, else Amazon S3.
    #[arg(long = "object-store.endpoint", env = "REGATTA_OBJECT_STORE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// S3 region. Default: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[arg(long = "object-store.region", env = "REGATTA_OBJECT_STORE_REGION")]
    pub region: Option<String>,
    /// S3 access key id. Default: `AWS_ACCESS_KEY_ID`, else the instance's or pod's role.
    #[arg(
        long = "object-store.access-key-id",
        env = "REGATTA_OBJECT_STORE_ACCESS_KEY_ID"
    )]
    pub access_key_id: Option<String>,
    /// S3 secret access key (better set through this environment variable or the config
    /// file than on the command line). Default: `AWS_SECRET_ACCESS_KEY`.
    #[arg(
        long = "object-store.secret-access-key",
        env = "REGATTA_OBJECT_STORE_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Option<String>,
    /// Time limit of each request to a remote object store (connecting included); a
    /// request over it fails and is retried a few times.
    #[arg(long = "object-store.timeout", env = "REGATTA_OBJECT_STORE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl Default for ObjectStoreFlags {
    /// The client's own defaults (the flags' `default_value`s say the same).
    fn default() -> Self {
        let regatta_archive::objects::Settings {
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            timeout,
        } = regatta_archive::objects::Settings::default();
        Self {
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            timeout,
        }
    }
}

impl ObjectStoreFlags {
    /// The settings these flags give the object store client.
    pub fn settings(&self) -> regatta_archive::objects::Settings {
        regatta_archive::objects::Settings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            timeout: self.timeout,
        }
    }
}

/// Opens the store a `--object-store` URL names with the `--object-store.*` flags.
pub fn open_with(url: &str, flags: &ObjectStoreFlags) -> Result<ObjectStorage> {
    Ok(regatta_archive::objects::open_with(url, &flags.settings())?)
}
