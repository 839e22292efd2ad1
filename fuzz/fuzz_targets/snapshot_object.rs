//! A snapshot downloaded from an object store (`SnapshotStore::download`: the object read in
//! pieces, decoded on a blocking thread while it streams). The input is the uncompressed
//! stream (compressed here); the object is stored under the revision its header claims.
//! The download must agree with decoding the same bytes in memory.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};
use regatta_fuzz::same_state;
use regatta_materializer::Revision;
use regatta_materializer::snapshot::{self, SnapshotStore};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let object = zstd::bulk::compress(data, 1).expect("zstd compresses");
    let revision = Revision(
        data.get(12..20)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default())),
    );
    let dir = regatta_fuzz::fresh_dir("objects");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&dir).expect("local object store"));
    let snapshots = SnapshotStore::new(store.clone(), "fuzz");
    let downloaded = runtime().block_on(async {
        store
            .put(&snapshots.location(revision), object.clone().into())
            .await
            .expect("put object");
        snapshots.download(revision).await
    });
    let in_memory = snapshot::decode(&object);
    match (&downloaded, &in_memory) {
        (Ok(a), Ok(b)) => same_state(a, b),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("downloaded, but decoding in memory failed: {e}"),
        (Err(e), Ok(s)) if s.revision() == revision => {
            panic!("decoded in memory, but the download failed: {e}")
        }
        (Err(_), Ok(_)) => {}
    }
});
