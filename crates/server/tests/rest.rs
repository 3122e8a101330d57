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

/// With --tls-cert the gateway serves HTTPS with the gRPC API's certificate (and the key is
/// still wanted); a client that trusts it gets answers, plain HTTP gets none.
#[test]
fn the_json_gateway_serves_tls_when_the_api_does() {
    let py = python_env();
    let ip = "127.0.0.1";
    let (api, http) = (common::free_port(ip), common::free_port(ip));
    let dir = std::env::temp_dir().join(format!("freshvec-rest-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, pem_key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, key.cert.pem()).unwrap();
    std::fs::write(&pem_key, key.key_pair.serialize_pem()).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_freshvec"))
        .args(["serve", "--listen", &format!("{ip}:{api}"), "--peer-listen", "127.0.0.1:0"])
        .args(["--http-listen", &format!("{ip}:{http}"), "--metrics-listen", "off"])
        .args(["--api-key", "tls-secret"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&pem_key)
        .arg("--data-dir")
        .arg(dir.join("data"))
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
    let script = r#"
import http.client, json, os, ssl, time, urllib.error, urllib.request
port, ca = os.environ["PORT"], os.environ["CA"]
ctx = ssl.create_default_context(cafile=ca)
def call(path, key=True, scheme="https"):
    req = urllib.request.Request(f"{scheme}://localhost:{port}{path}")
    if key:
        req.add_header("authorization", "Bearer tls-secret")
    try:
        with urllib.request.urlopen(req, context=ctx if scheme == "https" else None, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
deadline = time.monotonic() + 30
while call("/v1/health", key=False)[0] != 200:
    assert time.monotonic() < deadline
    time.sleep(0.05)
assert call("/v1/collections") == (200, {}), call("/v1/collections")
st, body = call("/v1/collections", key=False)
assert st == 401 and body["code"] == "UNAUTHENTICATED", (st, body)
try:
    call("/v1/collections", scheme="http")
    raise SystemExit("plain HTTP was answered")
except (urllib.error.URLError, http.client.HTTPException, OSError):
    pass
print("tls gateway ok")
"#;
    let file = std::env::temp_dir().join(format!("freshvec-rest-tls-{}.py", std::process::id()));
    std::fs::write(&file, script).unwrap();
    let cert_env = _guard.1.join("cert.pem").display().to_string();
    run(&py, &file, &[("PORT", http.to_string()), ("CA", cert_env)]);
    let _ = std::fs::remove_file(&file);
}
