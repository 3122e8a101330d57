//! openraft's storage test suite against the log store (on the journal) and the state machine.

use freshvec_replication::log_store::LogStore;
use freshvec_replication::state::StateMachine;
use freshvec_replication::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory removed when the test that built the store is done with it.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Builder;

static NEXT: AtomicU64 = AtomicU64::new(0);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = std::env::temp_dir().join(format!(
            "freshvec-suite-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let log = LogStore::open(&dir.join("raft"))?;
        let sm = StateMachine::open(&dir.join("state"))?;
        Ok((TempDir(dir), log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("the storage suite passes");
}
