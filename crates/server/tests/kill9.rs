//! Real crashes: a child process appends acknowledged batches to a durable collection while
//! this test kills it with SIGKILL at random moments; after every kill the collection is
//! reopened and must hold every acknowledged batch (and at most the one in flight).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CYCLES: usize = 100;

/// A small seeded generator, so the kill moments are reproducible.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_never_loses_an_acknowledged_batch() {
    let seed = 0x6b696c6c_u64;
    println!("seed {seed:#x}");
    let bin = env!("CARGO_BIN_EXE_freshvec");
    let dir = std::env::temp_dir().join(format!("freshvec-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = seed;
    let mut acked = 0u64;
    let mut total_acks = 0u64;
    for cycle in 0..CYCLES {
        let mut child = Command::new(bin)
            .args(["crash-writer", "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the writer");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill after a random number of acknowledgements (0 = while it is still opening).
        let wait_for = next(&mut rng) % 12;
        let mut seen = 0;
        while seen < wait_for {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("ack ") {
                        acked = rest.split(' ').next().unwrap().parse().unwrap();
                        seen += 1;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("cycle {cycle}: the writer stopped acknowledging");
                }
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping the writer");
        reader.join().expect("reader thread");
        // Acknowledgements printed before the kill count too.
        for line in rx.try_iter() {
            if let Some(rest) = line.strip_prefix("ack ") {
                acked = rest.split(' ').next().unwrap().parse().unwrap();
            }
        }
        total_acks += seen;
        let out = Command::new(bin)
            .args(["crash-writer", "--dir"])
            .arg(&dir)
            .args(["--verify", &acked.to_string()])
            .output()
            .expect("running the check");
        assert!(
            out.status.success(),
            "cycle {cycle}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The check may have replayed the batch in flight: later writers continue from there.
        let applied: u64 = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .and_then(|x| x.parse().ok())
            .expect("ok applied N");
        acked = applied;
    }
    println!(
        "{CYCLES} kill cycles, {total_acks} acknowledged batches waited for, last batch {acked}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
