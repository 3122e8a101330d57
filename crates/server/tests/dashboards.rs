//! The operator files under `deploy/` name only metrics the server serves: every
//! `freshvec_*` name in the Grafana dashboard and the Prometheus alert rules must appear on a
//! live node's `/metrics` (after a few calls, so the per-method and per-collection series
//! exist). The dashboard must be valid JSON whose panels all carry queries.

mod common;

use freshvec_server::proto::collections_client::CollectionsClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every `freshvec_...` token in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("freshvec_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The metric names a scrape shows: sample names, and declared families (with a
/// histogram's `_bucket`, `_sum` and `_count`).
fn served(page: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in page.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut parts = decl.split_whitespace();
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            out.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            out.insert(line[..end].to_string());
        }
    }
    out
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    page
}

#[tokio::test]
async fn dashboards_and_alerts_name_only_served_metrics() {
    let ip = "127.0.0.1";
    let (api, metrics) = (common::free_port(ip), common::free_port(ip));
    let dir = std::env::temp_dir().join(format!("freshvec-dash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    struct Kill(std::process::Child, std::path::PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let child = Command::new(env!("CARGO_BIN_EXE_freshvec"))
        .args(["serve", "--listen", &format!("{ip}:{api}"), "--peer-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", &format!("{ip}:{metrics}")])
        .arg("--data-dir")
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Kill(child, dir);
    let url = format!("http://{ip}:{api}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ch = loop {
        if let Some(ch) = common::channel(&url).await {
            let mut c = CollectionsClient::new(ch.clone());
            let req = CreateCollectionRequest {
                name: "dash".into(),
                dimension: 4,
                metric: Metric::L2 as i32,
                ..Default::default()
            };
            if c.create(req).await.is_ok() {
                break ch;
            }
        }
        assert!(Instant::now() < deadline, "the server never accepted a create");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut p = PointsClient::new(ch);
    let points = (0..10).map(|id| Point { id, vector: vec![id as f32; 4], ..Default::default() });
    let up =
        UpsertRequest { collection: "dash".into(), points: points.collect(), ..Default::default() };
    p.upsert(up).await.unwrap();
    let search = SearchRequest {
        collection: "dash".into(),
        vector: vec![1.0; 4],
        params: Some(SearchParameters { k: 3, ..Default::default() }),
        ..Default::default()
    };
    p.search(search).await.unwrap();
    let page = scrape(&format!("{ip}:{metrics}"));
    let on_page = served(&page);

    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let dashboard = std::fs::read_to_string(deploy.join("grafana/freshvec.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    let graphs: Vec<_> = panels.iter().filter(|p| p["type"] != "row").collect();
    assert!(graphs.len() >= 10, "{} panels", graphs.len());
    for g in &graphs {
        let targets = g["targets"].as_array().expect("targets");
        assert!(targets
            .iter()
            .all(|t| t["expr"].as_str().is_some_and(|e| e.contains("freshvec_"))));
    }
    let alerts = std::fs::read_to_string(deploy.join("prometheus/alerts.yml")).unwrap();
    assert!(alerts.matches("- alert:").count() >= 8 && alerts.matches("expr:").count() >= 8);
    for (file, text) in [("grafana/freshvec.json", &dashboard), ("prometheus/alerts.yml", &alerts)]
    {
        let named = names_in(text);
        assert!(!named.is_empty());
        let missing: Vec<_> = named.difference(&on_page).collect();
        assert!(missing.is_empty(), "deploy/{file} names metrics /metrics lacks: {missing:?}");
        println!("deploy/{file}: {} metric names, all served", named.len());
    }
}
