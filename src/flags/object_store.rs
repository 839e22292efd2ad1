//! Object storage: `--object-store` (a URL) and the connection settings of a remote store
//! (`--object-store.endpoint`, `.region`, `.access-key-id`, `.secret-access-key`,
//! `.timeout`; declared with the code that opens a store, [`crate::objects`]). A core's
//! upload and retention options (`--object-store.snapshot-*`, `.keep-snapshots`,
//! `.check-interval`) are its own, in `core/args.rs`.

#[derive(clap::Args, Debug, Clone)]
pub struct ObjectStoreArgs {
    /// Object storage, as a URL (`file:///dir`, `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix`; credentials from the cloud's usual environment variables,
    /// e.g. `AWS_ACCESS_KEY_ID`). A core keeps snapshots and archived segments there
    /// (default: `file://<data-dir>/objects`); an edge bootstraps from it (unset: snapshots
    /// come from the upstream itself).
    #[arg(long = "object-store", env = "REGATTA_OBJECT_STORE")]
    pub object_store: Option<String>,
    #[command(flatten)]
    pub connection: crate::objects::ObjectStoreFlags,
}
