//! Clients that are not Rust, against real servers: `tests/python/client_check.py` (raw
//! stubs generated at test time), the `freshvec` package (`clients/python/tests`: one node,
//! read-your-writes on the followers of a three-node cluster, and the LangChain vector store
//! under LangChain's own standard tests), and the check that the package's committed stubs
//! match `proto/`. The Python environment is a virtualenv under the
//! build directory (`common::python`).

mod common;

use common::python::{python_env, repo, run};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One server on a free port with its data in a fresh directory; killed on drop.
struct Server {
    child: Child,
    dir: std::path::PathBuf,
    addr: String,
}

impl Server {
    fn start(name: &str, extra: &[&str]) -> Server {
        let port = common::free_port("127.0.0.1");
        let dir = std::env::temp_dir().join(format!("freshvec-py-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_freshvec"))
            .args(["serve", "--listen", &addr, "--metrics-listen", "off"])
            .args(["--peer-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&dir)
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait (with a deadline) until the port accepts connections.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, dir, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_python_client_creates_upserts_searches_and_reads_status() {
    let py = python_env();
    let server = Server::start("raw", &[]);
    let script = repo().join("tests/python/client_check.py");
    run(&py, &script, &[("FRESHVEC_SERVER", server.addr.clone())]);
}

#[test]
fn the_committed_python_stubs_match_the_proto() {
    let py = python_env();
    let out = Command::new(&py)
        .arg(repo().join("clients/python/scripts/gen_stubs.py"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_package_drives_one_node() {
    let py = python_env();
    let server = Server::start("pkg", &["--api-key", "py-secret"]);
    let env = [("FRESHVEC_SERVER", server.addr.clone()), ("FRESHVEC_API_KEY", "py-secret".into())];
    run(&py, &repo().join("clients/python/tests/test_client.py"), &env);
}

#[test]
fn the_langchain_vector_store_passes_langchains_standard_tests() {
    let py = python_env();
    let server = Server::start("langchain", &[]);
    let out = Command::new(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_langchain.py"])
        .current_dir(repo().join("clients/python"))
        .env("FRESHVEC_SERVER", &server.addr)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The standard suite ran (a skip or an empty collection would also exit 0).
    assert!(stdout.contains(" passed") && !stdout.contains("skipped"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_package_reads_its_writes_on_followers() {
    let py = python_env();
    let _turn = common::SERIAL.lock().await;
    let mut c = common::Cluster::new("pyryw", 3, &[]);
    for id in 1..=3 {
        c.start(id, &[1, 2, 3]);
    }
    let leader = common::leader(&c, &[1, 2, 3], 60).await;
    let mut urls = vec![c.url(leader)];
    urls.extend((1..=3).filter(|&id| id != leader).map(|id| c.url(id)));
    let env = [("FRESHVEC_CLUSTER", urls.join(","))];
    let script = repo().join("clients/python/tests/test_cluster.py");
    tokio::task::spawn_blocking(move || run(&py, &script, &env)).await.unwrap();
}
