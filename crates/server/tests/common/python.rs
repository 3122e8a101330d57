//! The Python environment the Python tests share: a virtualenv under the build directory,
//! made on first use with pinned packages from the package index, and the `freshvec`
//! package (`clients/python`) installed into it afresh on every run, as a user would
//! (`pip install clients/python`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// What the tests pin: the stub generator and runtimes, numpy, the package's build backend.
pub const PINNED: [&str; 5] = [
    "grpcio==1.76.0",
    "grpcio-tools==1.76.0",
    "protobuf==6.33.6",
    "numpy==2.2.6",
    "hatchling==1.27.0",
];

static ENV: Mutex<Option<PathBuf>> = Mutex::new(None);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, with the pinned packages and the client package installed.
pub fn python_env() -> PathBuf {
    let mut done = ENV.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(py) = done.as_ref() {
        return py.clone();
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyclient-venv");
    let py = venv.join("bin/python");
    let ready = py.exists()
        && Command::new(&py)
            .args(["-c", "import grpc, grpc_tools, numpy, hatchling"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv failed");
        let pip = Command::new(&py).args(["-m", "pip", "install", "-q"]).args(PINNED).status();
        assert!(pip.is_ok_and(|s| s.success()), "installing {PINNED:?} failed");
    }
    // The package as it is in the tree (no build isolation: the pinned backend is there).
    let pip = Command::new(&py)
        .args(["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"])
        .args(["--force-reinstall"])
        .arg(repo().join("clients/python"))
        .status();
    assert!(pip.is_ok_and(|s| s.success()), "pip install clients/python failed");
    *done = Some(py.clone());
    py
}

/// Runs a Python script with `env`; panics with its output unless it exits 0. Prints its
/// stdout (the figures and seeds it reports).
pub fn run(py: &Path, script: &Path, env: &[(&str, String)]) {
    let out = Command::new(py).arg(script).envs(env.iter().map(|(k, v)| (k, v))).output().unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{} failed\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
