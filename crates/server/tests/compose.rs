//! The compose test (`deploy/compose-test.sh`): the image built offline, the three-node cluster
//! of `docker-compose.yml` brought up, faults injected with `docker kill` and `docker network
//! disconnect`, `down -v` at the end.
//!
//! It needs a Docker engine. Without one it fails, loudly, unless `FRESHVEC_NO_DOCKER=1` says
//! the machine has none by design (then it prints that it did not run).

use std::process::Command;

#[test]
fn three_node_compose_cluster_survives_a_leader_kill_and_a_partition() {
    let engine = Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success());
    if !engine {
        if std::env::var("FRESHVEC_NO_DOCKER").is_ok_and(|v| v == "1") {
            eprintln!(
                "COMPOSE TEST NOT RUN: no Docker engine, and FRESHVEC_NO_DOCKER=1 allows that"
            );
            return;
        }
        panic!(
            "no Docker engine answers `docker info`: the compose test cannot run. Start the \
             engine, or set FRESHVEC_NO_DOCKER=1 on a machine that has none by design."
        );
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/compose-test.sh");
    // The image's static binary builds in a target directory of its own: this test runs
    // inside `cargo test`, which holds the main one.
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/docker");
    let status = Command::new("bash")
        .arg(script)
        .env("FRESHVEC_BIN", env!("CARGO_BIN_EXE_freshvec"))
        .env("CARGO_TARGET_DIR", target)
        .status()
        .expect("running the compose test");
    assert!(status.success(), "deploy/compose-test.sh failed: {status}");
}
