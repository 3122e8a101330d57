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

/// What the suite does not do: reopen. The purged log id and the vote survive a restart
/// (the fault suite's soak found a purge tag that did not decode on reopening).
#[tokio::test]
async fn the_purged_log_id_and_the_vote_survive_reopening() {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, LogId, Vote};
    let (guard, mut log, _sm) = Builder.build().await.unwrap();
    let purged = LogId::new(CommittedLeaderId::new(7, 2), 41);
    log.purge(purged).await.unwrap();
    log.save_vote(&Vote::new_committed(7, 2)).await.unwrap();
    drop(log);
    let mut log = LogStore::open(&guard.0.join("raft")).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(purged));
    assert_eq!(state.last_log_id, Some(purged));
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new_committed(7, 2)));
}
