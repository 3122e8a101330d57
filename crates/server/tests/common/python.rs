//! The Python environment the Python tests share: a virtualenv under the build directory,
//! made on first use with the packages `clients/python/tests/requirements.txt` pins (from the
//! package index), and the `freshvec`
//! package (`clients/python`) installed into it afresh on every run, as a user would
//! (`pip install clients/python`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static ENV: Mutex<Option<PathBuf>> = Mutex::new(None);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, with the pinned packages and the client package installed (the venv is
/// made again when the pins change).
pub fn python_env() -> PathBuf {
    let mut done = ENV.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(py) = done.as_ref() {
        return py.clone();
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyclient-venv");
    let py = venv.join("bin/python");
    let pins = repo().join("clients/python/tests/requirements.txt");
    let wanted = std::fs::read_to_string(&pins).expect("the pinned requirements");
    let stamp = venv.join("requirements.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv failed");
        let pip = Command::new(&py).args(["-m", "pip", "install", "-q", "-r"]).arg(&pins).status();
        assert!(pip.is_ok_and(|s| s.success()), "installing {} failed", pins.display());
        std::fs::write(&stamp, &wanted).unwrap();
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
