//! Named kill points for the fault tests: with `FRESHVEC_FAILPOINT=name[:n]` in its
//! environment, the process aborts (as `kill -9` would stop it: no destructor, no flush) the
//! `n`-th time (the first, by default) it reaches `hit(name)`. Unset, a hit is one load of an
//! initialised cell.
//!
//! Points: `snap_send_chunk` (the sender, per chunk), `snap_recv_chunk` (the receiver, per
//! chunk), `snap_recv_before_verify`, `snap_install_before_rename`,
//! `snap_install_after_rename`, `snap_install_after_swap` (after `CURRENT` names the new root,
//! before the old one is removed), `ckpt_before_manifest` (collection checkpoints written,
//! node manifest not yet), `ckpt_after_manifest` (manifest in place, not yet published).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn armed() -> Option<&'static (String, u64)> {
    ARMED
        .get_or_init(|| {
            let v = std::env::var("FRESHVEC_FAILPOINT").ok()?;
            let (name, n) = match v.split_once(':') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (v, 1),
            };
            Some((name, n.max(1)))
        })
        .as_ref()
}

/// Aborts the process if `name` is the armed point and this is its `n`-th hit.
pub fn hit(name: &str) {
    if let Some((armed, n)) = armed() {
        if armed == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 >= *n {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
    }
}
