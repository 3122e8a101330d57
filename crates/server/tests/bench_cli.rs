//! Runs the real `freshvec bench` binary on a generated seed-shaped dataset and checks the
//! JSON it writes: the field names the peers benchmark uses, a fully drained index, and the
//! recall target at the default (calibrated) search parameters.

use std::process::Command;

#[test]
fn bench_on_a_generated_dataset_writes_comparable_json() {
    let seed = 42;
    println!("seed {seed}");
    let dir = std::env::temp_dir().join(format!("freshvec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("bench.json");
    let status = Command::new(env!("CARGO_BIN_EXE_freshvec"))
        .args(["bench", "--generate", "seed", "--seed", &seed.to_string(), "--min-seconds", "0.05"])
        .args(["--sweep", "--sweep-nprobe", "4,96", "--json"])
        .arg(&out)
        .status()
        .expect("running freshvec");
    assert!(status.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    for field in [
        "update_qps",
        "update_qps_incl_rebalance",
        "search_qps",
        "recall_at_k",
        "p50_ms",
        "p99_ms",
        "build_s",
        "peak_rss_mb",
    ] {
        assert!(v[field].as_f64().is_some_and(|x| x >= 0.0), "missing {field}");
    }
    assert_eq!(v["stats"]["vectors"], 10_000);
    assert_eq!(v["stats"]["pending_jobs"], 0, "rebalancing drained before searching");
    // The default depth comes from the shard's calibration for recall 0.95; the 200 queries
    // measure recall to about +-0.017 (two standard errors), the calibration's own estimate
    // is reported beside it.
    let recall = v["recall_at_k"].as_f64().unwrap();
    let estimate = v["calibration"]["default_recall_estimate"].as_f64().unwrap();
    println!("recall@10 at default parameters: {recall} (calibration's estimate {estimate})");
    assert!(estimate >= 0.95, "the calibrated default aims below 0.95: {estimate}");
    assert!(recall >= 0.93, "recall {recall} well below the 0.95 target");
    assert!((recall - estimate).abs() <= 0.03, "estimate {estimate} against measured {recall}");
    let sweep = v["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 2);
    assert!(sweep[0]["recall_at_k"].as_f64() < sweep[1]["recall_at_k"].as_f64());
}
