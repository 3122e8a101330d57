//! A client that is not Rust: `tests/python/client_check.py` (grpcio, stubs generated from
//! `proto/` at test time) against a real server. Its Python environment is a virtualenv made
//! under the build directory on first use (grpcio-tools from the package index).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn python_env() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyclient-venv");
    let py = venv.join("bin/python");
    let ready = py.exists()
        && Command::new(&py)
            .args(["-c", "import grpc, grpc_tools"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv failed");
        let pip = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "grpcio==1.76.0", "grpcio-tools==1.76.0"])
            .status();
        assert!(pip.is_ok_and(|s| s.success()), "installing grpcio-tools failed");
    }
    py
}

#[test]
fn a_python_client_creates_upserts_searches_and_reads_status() {
    let py = python_env();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("freshvec-py-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = Command::new(env!("CARGO_BIN_EXE_freshvec"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "off"])
        .args(["--peer-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (with a deadline) until the port accepts connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/client_check.py");
    let out = Command::new(&py)
        .arg(script)
        .env("FRESHVEC_SERVER", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
