//! A real full disk: a durable collection on a small tmpfs is written until the file system
//! refuses. The refusal surfaces as an error (no panic, no acknowledgement), the journal then
//! refuses every write until reopened, and after reopening every acknowledged batch is there,
//! every refused one is wholly there or wholly absent, and once space is freed writes go on.
//!
//! Mounting needs root (CI runs as root). Elsewhere the test fails, loudly, unless
//! `FRESHVEC_NO_MOUNT=1` says mounting is impossible by design (then it prints that it did not
//! run).

use freshvec_core::durable::{DurableCollection, Op};
use freshvec_core::storage::fs::RealFs;
use freshvec_core::{IndexParams, Metric};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const DIM: usize = 32;
const BATCH: u64 = 64;

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn batch(first: u64) -> (Vec<u64>, Vec<f32>) {
    let ids: Vec<u64> = (first..first + BATCH).collect();
    let vectors =
        ids.iter().flat_map(|&id| (0..DIM).map(move |j| (id * 31 + j as u64) as f32)).collect();
    (ids, vectors)
}

fn open(dir: &Path) -> DurableCollection {
    DurableCollection::open(Arc::new(RealFs), dir, IndexParams::new(DIM, Metric::L2))
        .expect("reopening after a full disk")
}

#[test]
fn a_full_disk_refuses_writes_and_loses_nothing_acknowledged() {
    let mount = std::env::temp_dir().join(format!("freshvec-full-{}", std::process::id()));
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        let _ = std::fs::remove_dir_all(&mount);
        if std::env::var("FRESHVEC_NO_MOUNT").is_ok_and(|v| v == "1") {
            eprintln!(
                "DISK-FULL TEST NOT RUN: cannot mount a tmpfs, and FRESHVEC_NO_MOUNT=1 allows that"
            );
            return;
        }
        panic!(
            "mounting a tmpfs failed (needs root); set FRESHVEC_NO_MOUNT=1 where that is by design"
        );
    }
    let _guard = Tmpfs(mount.clone());
    let dir = mount.join("c");
    let coll =
        DurableCollection::create(Arc::new(RealFs), &dir, IndexParams::new(DIM, Metric::L2), 1)
            .unwrap();
    // A filler that is deleted later to make room again.
    let filler = mount.join("filler");
    std::fs::write(&filler, vec![0u8; 1 << 20]).unwrap();
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    let mut first = 0;
    while refused.len() < 3 {
        assert!(first < 1_000_000, "the disk never filled");
        let (ids, vectors) = batch(first);
        match coll.apply(&Op::upsert(ids, vectors)) {
            Ok(_) => acked.push(first),
            Err(e) => {
                if refused.is_empty() {
                    println!("refused after {} acknowledged batches: {e}", acked.len());
                }
                refused.push(first);
            }
        }
        first += BATCH;
    }
    // After the first refusal every write is refused (the journal is poisoned).
    assert_eq!(refused.windows(2).filter(|w| w[1] != w[0] + BATCH).count(), 0);
    drop(coll);

    let coll = open(&dir);
    let contents = coll.contents();
    for &b in &acked {
        let (ids, vectors) = batch(b);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(contents.get(id).map(Vec::as_slice), Some(&vectors[i * DIM..(i + 1) * DIM]));
        }
    }
    for &b in &refused {
        let present = (b..b + BATCH).filter(|id| contents.contains_key(id)).count();
        assert!(present == 0 || present == BATCH as usize, "batch {b} half applied");
    }
    println!("{} acknowledged batches all present after reopening", acked.len());

    // Room again: writes go on.
    std::fs::remove_file(&filler).unwrap();
    let (ids, vectors) = batch(first);
    coll.apply(&Op::upsert(ids, vectors)).expect("a write once space is back");
}
