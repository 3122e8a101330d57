//! The JSON gateway with a real HTTP client (`tests/python/rest_check.py`, Python's urllib):
//! every RPC over both protocols with equal answers, bad input refused with the same code
//! over both (and the HTTP status mapped from it), the API key, the message limit and the
//! admission pool shared with gRPC, calls counted in the metrics. Also: the gateway is off
//! unless asked for.

mod common;

use common::python::{python_env, repo, run};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_json_gateway_answers_every_rpc_as_grpc_does() {
    let py = python_env();
    let ip = "127.0.0.1";
    let (api, http, metrics) =
        (common::free_port(ip), common::free_port(ip), common::free_port(ip));
    let dir = std::env::temp_dir().join(format!("freshvec-rest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = Command::new(env!("CARGO_BIN_EXE_freshvec"))
        .args(["serve", "--listen", &format!("{ip}:{api}"), "--peer-listen", "127.0.0.1:0"])
        .args(["--http-listen", &format!("{ip}:{http}")])
        .args(["--metrics-listen", &format!("{ip}:{metrics}")])
        .args(["--api-key", "rest-secret", "--max-concurrent-requests", "4"])
        .arg("--data-dir")
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child, std::path::PathBuf);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let _guard = Kill(&mut server, dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect((ip, http)).is_err() {
        assert!(Instant::now() < deadline, "the gateway never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let env = [
        ("FRESHVEC_SERVER", format!("{ip}:{api}")),
        ("FRESHVEC_HTTP", format!("{ip}:{http}")),
        ("FRESHVEC_METRICS", format!("{ip}:{metrics}")),
        ("FRESHVEC_API_KEY", "rest-secret".into()),
    ];
    run(&py, &repo().join("tests/python/rest_check.py"), &env);
}
