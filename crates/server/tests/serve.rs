//! The server as a user runs it: a real `freshvec serve` process on 127.0.0.1, driven through
//! the generated gRPC client; validation codes; SIGTERM shutdown; restart with the same data.

use freshvec_server::proto::cluster_client::ClusterClient;
use freshvec_server::proto::collections_client::CollectionsClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The tests here take turns: each picks a free port and then starts a server on it, and two
/// doing that at once could pick the same one.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Kills the server if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16) -> Server {
    start_with(dir, port, &["--metrics-listen", "127.0.0.1:0"])
}

fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_freshvec"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--peer-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .spawn()
            .expect("starting the server"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls health until SERVING, within a deadline.
async fn wait_serving(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let channel = tonic::transport::Channel::from_shared(url.to_string()).unwrap();
        if let Ok(ch) = channel.connect().await {
            let mut h = HealthClient::new(ch);
            let req = HealthCheckRequest { service: String::new() };
            if let Ok(r) = h.check(req).await {
                if r.into_inner().status == ServingStatus::Serving as i32 {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "the server did not become SERVING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status code of a call that must fail.
fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.map(|_| ()).unwrap_err().code()
}

fn point(id: u64) -> Point {
    Point {
        id,
        vector: vec![id as f32, (id % 7) as f32, 1.0, -(id as f32) / 3.0],
        ..Default::default()
    }
}

fn params(k: u32, exact: bool) -> Option<SearchParameters> {
    Some(SearchParameters { k, exact, ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_validates_shuts_down_cleanly_and_restarts_with_its_data() {
    let _turn = SERIAL.lock().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("freshvec-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut server = start_with(&dir, port, &["--metrics-listen", &metrics_addr]);
    wait_serving(&url).await;
    let mut colls = CollectionsClient::connect(url.clone()).await.unwrap();
    let mut points = PointsClient::connect(url.clone()).await.unwrap();

    let create = |name: &str, dimension: u32, metric: Metric| CreateCollectionRequest {
        name: name.into(),
        dimension,
        metric: metric as i32,
        ..Default::default()
    };
    colls.create(create("docs", 4, Metric::L2)).await.unwrap();
    colls.create(create("unit", 3, Metric::Cosine)).await.unwrap();
    assert_eq!(code(colls.create(create("docs", 4, Metric::L2)).await), Code::AlreadyExists);
    assert_eq!(code(colls.create(create("bad name!", 4, Metric::L2)).await), Code::InvalidArgument);
    assert_eq!(code(colls.create(create("zero", 0, Metric::L2)).await), Code::InvalidArgument);
    assert_eq!(
        code(colls.create(create("nometric", 4, Metric::Unspecified)).await),
        Code::InvalidArgument
    );

    let upsert = |collection: &str, pts: Vec<Point>| UpsertRequest {
        collection: collection.into(),
        points: pts,
        ..Default::default()
    };
    let w = points.upsert(upsert("docs", (0..100).map(point).collect())).await.unwrap();
    let first_write = w.into_inner().index;
    assert!(first_write > 0);
    // Refused requests name the field and change nothing.
    let mut wrong = point(500);
    wrong.vector.pop();
    let e = points.upsert(upsert("docs", vec![point(501), wrong])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("points[1].vector"), "{}", e.message());
    let mut nan = point(502);
    nan.vector[2] = f32::NAN;
    assert_eq!(code(points.upsert(upsert("docs", vec![nan])).await), Code::InvalidArgument);
    assert_eq!(code(points.upsert(upsert("docs", vec![])).await), Code::InvalidArgument);
    assert_eq!(
        code(points.upsert(upsert("docs", vec![point(1), point(1)])).await),
        Code::InvalidArgument
    );
    let zero = Point { id: 1, vector: vec![0.0; 3], ..Default::default() };
    assert_eq!(code(points.upsert(upsert("unit", vec![zero])).await), Code::InvalidArgument);
    assert_eq!(code(points.upsert(upsert("nope", vec![point(1)])).await), Code::NotFound);
    let search = |collection: &str, vector: Vec<f32>, params| SearchRequest {
        collection: collection.into(),
        vector,
        params,
        ..Default::default()
    };
    assert_eq!(
        code(points.search(search("docs", point(3).vector, params(0, false))).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(points.search(search("docs", vec![1.0], params(5, false))).await),
        Code::InvalidArgument
    );
    let got = points
        .get(GetRequest {
            collection: "docs".into(),
            ids: vec![500, 501, 502],
            with_vectors: false,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(got.into_inner().points.is_empty(), "a refused batch changed something");

    let hits = points
        .search(search("docs", point(42).vector, params(3, true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((hits.hits[0].id, hits.hits[0].distance), (42, 0.0));
    let hits = points
        .search(search("docs", point(42).vector, params(5, false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hits.hits[0].id, 42);
    let w = points
        .delete(DeleteRequest {
            collection: "docs".into(),
            ids: vec![42, 43],
            ..Default::default()
        })
        .await
        .unwrap();
    let delete_index = w.into_inner().index;
    assert_eq!(delete_index, first_write + 1);
    let got = points
        .get(GetRequest {
            collection: "docs".into(),
            ids: vec![41, 42, 44],
            with_vectors: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points, vec![point(41), point(44)]);
    let d = colls
        .describe(DescribeCollectionRequest { name: "docs".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.vectors, d.dimension, d.applied_index), (98, 4, delete_index));

    // Prometheus metrics: request counts by method and code, gauges, fsync latency.
    let metrics = {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(&metrics_addr).unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        sock.read_to_string(&mut body).unwrap();
        body
    };
    for want in [
        "HTTP/1.1 200 OK",
        "freshvec_requests_total{method=\"freshvec.v1.Points/Upsert\",code=\"0\"} 1",
        "freshvec_requests_total{method=\"freshvec.v1.Points/Upsert\",code=\"3\"}",
        "freshvec_request_seconds_bucket{method=\"freshvec.v1.Points/Search\",le=\"+Inf\"}",
        "freshvec_vectors{collection=\"docs\"} 98",
        "freshvec_journal_fsync_seconds_count ",
        "freshvec_raft_is_leader 1",
    ] {
        assert!(metrics.contains(want), "metrics lack {want}:\n{metrics}");
    }

    // SIGTERM: finish, checkpoint, exit 0.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.0.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    drop(server);

    let _server = start(&dir, port);
    wait_serving(&url).await;
    let mut colls = CollectionsClient::connect(url.clone()).await.unwrap();
    let mut points = PointsClient::connect(url.clone()).await.unwrap();
    let names = colls.list(ListCollectionsRequest {}).await.unwrap().into_inner().names;
    assert_eq!(names, vec!["docs".to_string(), "unit".to_string()]);
    let d = colls
        .describe(DescribeCollectionRequest { name: "docs".into() })
        .await
        .unwrap()
        .into_inner();
    // A restarted leader appends a blank entry of its new term, so applied moves past it.
    assert_eq!(d.vectors, 98);
    assert!(d.applied_index >= delete_index);
    let hits = points
        .search(search("docs", point(77).vector, params(1, true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((hits.hits[0].id, hits.hits[0].distance), (77, 0.0));
    colls.drop(DropCollectionRequest { name: "unit".into() }).await.unwrap();
    assert_eq!(
        code(colls.describe(DescribeCollectionRequest { name: "unit".into() }).await),
        Code::NotFound
    );
    drop(_server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_required_when_configured() {
    let _turn = SERIAL.lock().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("freshvec-serve-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let server = start_with(&dir, port, &["--api-key", "s3cret-token"]);
    // Health checks need no key.
    wait_serving(&url).await;
    let channel = tonic::transport::Channel::from_shared(url).unwrap().connect().await.unwrap();
    let mut anonymous = CollectionsClient::new(channel.clone());
    assert_eq!(code(anonymous.list(ListCollectionsRequest {}).await), Code::Unauthenticated);
    let bearer = |value: &'static str| {
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", value.parse().unwrap());
            Ok(req)
        }
    };
    let mut wrong =
        CollectionsClient::with_interceptor(channel.clone(), bearer("Bearer s3cret-tokem"));
    assert_eq!(code(wrong.list(ListCollectionsRequest {}).await), Code::Unauthenticated);
    let mut ok = CollectionsClient::with_interceptor(channel, bearer("Bearer s3cret-token"));
    assert!(ok.list(ListCollectionsRequest {}).await.unwrap().into_inner().names.is_empty());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every bad input gets its exact status code, and none changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_exact_codes_and_change_nothing() {
    let _turn = SERIAL.lock().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("freshvec-serve-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let server = start(&dir, port);
    wait_serving(&url).await;
    let mut c = CollectionsClient::connect(url.clone()).await.unwrap();
    let mut p = PointsClient::connect(url.clone()).await.unwrap();
    let create = |name: &str, dimension: u32, metric: i32| CreateCollectionRequest {
        name: name.into(),
        dimension,
        metric,
        ..Default::default()
    };
    c.create(create("docs", 4, Metric::L2 as i32)).await.unwrap();
    c.create(create("unit", 3, Metric::Cosine as i32)).await.unwrap();
    let seed: Vec<Point> = (0..50).map(point).collect();
    p.upsert(UpsertRequest { collection: "docs".into(), points: seed, ..Default::default() })
        .await
        .unwrap();
    let before = c.describe(DescribeCollectionRequest { name: "docs".into() }).await.unwrap();
    let before = before.into_inner();

    let up = |collection: &str, points: Vec<Point>| UpsertRequest {
        collection: collection.into(),
        points,
        ..Default::default()
    };
    let pt = |id: u64, vector: Vec<f32>| Point { id, vector, ..Default::default() };
    let sp = |k: u32, nprobe: u32| Some(SearchParameters { k, nprobe, ..Default::default() });
    let search = |collection: &str, vector: Vec<f32>, params| SearchRequest {
        collection: collection.into(),
        vector,
        params,
        ..Default::default()
    };
    let mut cases: Vec<(&str, Code, Result<(), tonic::Status>)> = Vec::new();
    macro_rules! case {
        ($name:expr, $code:expr, $call:expr) => {
            cases.push(($name, $code, $call.await.map(|_| ())))
        };
    }
    let ia = Code::InvalidArgument;
    case!("create: empty name", ia, c.create(create("", 4, 1)));
    case!("create: 65-char name", ia, c.create(create(&"a".repeat(65), 4, 1)));
    case!("create: space in name", ia, c.create(create("a b", 4, 1)));
    case!("create: slash in name", ia, c.create(create("a/b", 4, 1)));
    case!("create: non-ASCII name", ia, c.create(create("vé", 4, 1)));
    case!("create: dimension 0", ia, c.create(create("x", 0, 1)));
    case!("create: dimension too large", ia, c.create(create("x", 1 << 20, 1)));
    case!("create: metric unspecified", ia, c.create(create("x", 4, 0)));
    case!("create: unknown metric", ia, c.create(create("x", 4, 99)));
    case!(
        "create: 2000 shards",
        ia,
        c.create(CreateCollectionRequest { shards: 2000, ..create("x", 4, 1) })
    );
    case!(
        "create: merge limit over half the split limit",
        ia,
        c.create(CreateCollectionRequest {
            index: Some(IndexParameters { split_limit: 10, merge_limit: 9, ..Default::default() }),
            ..create("x", 4, 1)
        })
    );
    case!(
        "create: unknown encoding",
        ia,
        c.create(CreateCollectionRequest {
            index: Some(IndexParameters { encoding: 99, ..Default::default() }),
            ..create("x", 4, 1)
        })
    );
    case!("create: exists", Code::AlreadyExists, c.create(create("docs", 4, 1)));
    case!(
        "describe: unknown",
        Code::NotFound,
        c.describe(DescribeCollectionRequest { name: "nope".into() })
    );
    case!("describe: bad name", ia, c.describe(DescribeCollectionRequest { name: "n/a".into() }));
    case!("drop: unknown", Code::NotFound, c.drop(DropCollectionRequest { name: "nope".into() }));
    case!("upsert: empty batch", ia, p.upsert(up("docs", vec![])));
    case!(
        "upsert: over the batch limit",
        ia,
        p.upsert(up("docs", (0..10_001).map(point).collect()))
    );
    case!("upsert: duplicate ids", ia, p.upsert(up("docs", vec![point(900), point(900)])));
    case!("upsert: short vector", ia, p.upsert(up("docs", vec![pt(900, vec![1.0; 3])])));
    case!("upsert: long vector", ia, p.upsert(up("docs", vec![pt(900, vec![1.0; 5])])));
    case!("upsert: empty vector", ia, p.upsert(up("docs", vec![pt(900, vec![])])));
    case!("upsert: NaN", ia, p.upsert(up("docs", vec![pt(900, vec![1.0, f32::NAN, 0.0, 0.0])])));
    case!(
        "upsert: +inf",
        ia,
        p.upsert(up("docs", vec![point(901), pt(900, vec![f32::INFINITY; 4])]))
    );
    case!(
        "upsert: -inf",
        ia,
        p.upsert(up("docs", vec![pt(900, vec![0.0, 0.0, 0.0, f32::NEG_INFINITY])]))
    );
    case!("upsert: zero vector under cosine", ia, p.upsert(up("unit", vec![pt(1, vec![0.0; 3])])));
    case!("upsert: unknown collection", Code::NotFound, p.upsert(up("nope", vec![point(1)])));
    case!("upsert: bad collection name", ia, p.upsert(up("no pe", vec![point(1)])));
    case!(
        "delete: empty",
        ia,
        p.delete(DeleteRequest { collection: "docs".into(), ids: vec![], ..Default::default() })
    );
    case!(
        "delete: duplicate ids",
        ia,
        p.delete(DeleteRequest {
            collection: "docs".into(),
            ids: vec![1, 2, 1],
            ..Default::default()
        })
    );
    case!(
        "delete: over the batch limit",
        ia,
        p.delete(DeleteRequest {
            collection: "docs".into(),
            ids: (0..10_001).collect(),
            ..Default::default()
        })
    );
    case!(
        "delete: unknown collection",
        Code::NotFound,
        p.delete(DeleteRequest { collection: "nope".into(), ids: vec![1], ..Default::default() })
    );
    case!(
        "get: empty",
        ia,
        p.get(GetRequest {
            collection: "docs".into(),
            ids: vec![],
            with_vectors: true,
            ..Default::default()
        })
    );
    case!(
        "get: unknown collection",
        Code::NotFound,
        p.get(GetRequest {
            collection: "nope".into(),
            ids: vec![1],
            with_vectors: false,
            ..Default::default()
        })
    );
    case!("search: k 0", ia, p.search(search("docs", vec![0.0; 4], sp(0, 0))));
    case!("search: no parameters", ia, p.search(search("docs", vec![0.0; 4], None)));
    case!("search: k over the maximum", ia, p.search(search("docs", vec![0.0; 4], sp(1001, 0))));
    case!(
        "search: nprobe over the maximum",
        ia,
        p.search(search("docs", vec![0.0; 4], sp(5, 9000)))
    );
    case!("search: short query", ia, p.search(search("docs", vec![0.0; 3], sp(5, 0))));
    case!("search: NaN query", ia, p.search(search("docs", vec![f32::NAN; 4], sp(5, 0))));
    case!("search: zero query under cosine", ia, p.search(search("unit", vec![0.0; 3], sp(5, 0))));
    case!(
        "search: unknown collection",
        Code::NotFound,
        p.search(search("nope", vec![0.0; 4], sp(5, 0)))
    );
    case!("search: min applied index never reached within the deadline", Code::DeadlineExceeded, {
        let mut r = tonic::Request::new(search(
            "docs",
            vec![0.0; 4],
            Some(SearchParameters {
                k: 5,
                consistency: Consistency::MinAppliedIndex as i32,
                min_applied_index: 1_000,
                ..Default::default()
            }),
        ));
        r.set_timeout(Duration::from_millis(400));
        p.search(r)
    });
    case!(
        "search batch: no queries",
        ia,
        p.search_batch(SearchBatchRequest {
            collection: "docs".into(),
            queries: vec![],
            params: sp(5, 0),
            ..Default::default()
        })
    );
    case!(
        "search batch: one bad query",
        ia,
        p.search_batch(SearchBatchRequest {
            collection: "docs".into(),
            queries: vec![
                Query { vector: vec![0.0; 4], ..Default::default() },
                Query { vector: vec![0.0; 2], ..Default::default() }
            ],
            params: sp(5, 0),
            ..Default::default()
        })
    );

    // Request-sized resources past their bounds, and vectors that would break the arithmetic.
    case!(
        "search: rerank 10^9",
        ia,
        p.search(search("docs", vec![0.0; 4], {
            Some(SearchParameters { k: 10, rerank: 1_000_000_000, ..Default::default() })
        }))
    );
    case!(
        "search: rerank one past the maximum",
        ia,
        p.search(search("docs", vec![0.0; 4], {
            Some(SearchParameters { k: 10, rerank: 65, ..Default::default() })
        }))
    );
    case!(
        "search: rerank at the maximum",
        Code::Ok,
        p.search(search("docs", vec![0.0; 4], {
            Some(SearchParameters { k: 1000, rerank: 64, ..Default::default() })
        }))
    );
    case!("search: query of 3e38 components", ia, {
        p.search(search("docs", vec![3e38; 4], sp(5, 0)))
    });
    case!("upsert: components of 3e38", ia, p.upsert(up("docs", vec![pt(900, vec![3e38; 4])])));
    case!("upsert: squared norm over 1e24", ia, {
        p.upsert(up("docs", vec![pt(900, vec![6e11, 6e11, 6e11, 0.0])]))
    });
    case!("upsert: 3e38 under dot", ia, {
        p.upsert(up("unit", vec![pt(900, vec![-3e38, 1.0, 0.0])]))
    });
    let with_index = |index: IndexParameters| CreateCollectionRequest {
        index: Some(index),
        ..create("x", 4, 1)
    };
    case!("create: replicas 1000", ia, {
        c.create(with_index(IndexParameters { replicas: 1000, ..Default::default() }))
    });
    case!("create: replicas one past the maximum", ia, {
        c.create(with_index(IndexParameters { replicas: 9, ..Default::default() }))
    });
    case!("create: posting size u32::MAX", ia, {
        c.create(with_index(IndexParameters { posting_size: u32::MAX, ..Default::default() }))
    });
    case!("create: split limit u32::MAX", ia, {
        c.create(with_index(IndexParameters { split_limit: u32::MAX, ..Default::default() }))
    });
    case!("create: shards u32::MAX", ia, {
        c.create(CreateCollectionRequest { shards: u32::MAX, ..create("x", 4, 1) })
    });
    case!("search batch: one query past the maximum", ia, {
        p.search_batch(SearchBatchRequest {
            collection: "docs".into(),
            queries: vec![Query { vector: vec![0.0; 4], ..Default::default() }; 1025],
            params: sp(1, 0),
            ..Default::default()
        })
    });
    case!("search batch: queries times k past the maximum", ia, {
        p.search_batch(SearchBatchRequest {
            collection: "docs".into(),
            queries: vec![Query { vector: vec![0.0; 4], ..Default::default() }; 300],
            params: sp(1000, 0),
            ..Default::default()
        })
    });
    case!("message over the size limit", Code::ResourceExhausted, {
        p.upsert(up("docs", (0..9_000).map(|i| pt(10_000 + i, vec![0.5; 1000])).collect()))
    });
    let mut cl = ClusterClient::connect(url.clone()).await.unwrap();
    case!("remove node: not a member", Code::NotFound, {
        cl.remove_node(RemoveNodeRequest { node_id: 99 })
    });
    case!("remove node: the only voter", Code::FailedPrecondition, {
        cl.remove_node(RemoveNodeRequest { node_id: 1 })
    });
    case!("add node: address without a port", ia, {
        cl.add_node(AddNodeRequest { node_id: 5, address: "127.0.0.1".into() })
    });
    case!("add node: nobody answers there", Code::Unavailable, {
        cl.add_node(AddNodeRequest { node_id: 5, address: "127.0.0.1:1".into() })
    });

    let mut wrong = Vec::new();
    for (name, want, got) in &cases {
        let got = got.as_ref().map(|_| Code::Ok).unwrap_or_else(|s| s.code());
        if got != *want {
            wrong.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    println!("{} bad-input cases", cases.len());
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(cases.len() >= 30);
    // Still healthy, and nothing changed.
    wait_serving(&url).await;
    let after = c.describe(DescribeCollectionRequest { name: "docs".into() }).await.unwrap();
    let after = after.into_inner();
    assert_eq!((after.vectors, after.applied_index), (before.vectors, before.applied_index));
    let names = c.list(ListCollectionsRequest {}).await.unwrap().into_inner().names;
    assert_eq!(names, vec!["docs".to_string(), "unit".to_string()]);
    let voters = cl.status(StatusRequest {}).await.unwrap().into_inner().voters;
    assert_eq!(voters, vec![1], "a refused membership change changed the membership");

    // The node's own budget: 4,096 shards in all (each runs a background thread); "docs"
    // and "unit" hold two.
    for i in 0..4 {
        let shards = if i == 3 { 1022 } else { 1024 };
        let big = CreateCollectionRequest { shards, ..create(&format!("s{i}"), 4, 1) };
        c.create(big).await.unwrap();
    }
    let one_more = c.create(create("s4", 4, 1)).await;
    assert_eq!(code(one_more), Code::ResourceExhausted);
    for i in 0..4 {
        c.drop(DropCollectionRequest { name: format!("s{i}") }).await.unwrap();
    }
    c.create(create("s4", 4, 1)).await.unwrap();
    wait_serving(&url).await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Far more concurrent requests than the limit: the excess is refused quickly with
/// RESOURCE_EXHAUSTED, the admitted requests complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_quickly_and_admitted_requests_complete() {
    let _turn = SERIAL.lock().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("freshvec-serve-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let server = start_with(&dir, port, &["--max-concurrent-requests", "2"]);
    wait_serving(&url).await;
    let mut c = CollectionsClient::connect(url.clone()).await.unwrap();
    let create = CreateCollectionRequest {
        name: "big".into(),
        dimension: 4,
        metric: Metric::L2 as i32,
        ..Default::default()
    };
    c.create(create).await.unwrap();
    let mut p = PointsClient::connect(url.clone()).await.unwrap();
    for chunk in 0..4u64 {
        let pts = (chunk * 5000..(chunk + 1) * 5000).map(point).collect();
        p.upsert(UpsertRequest { collection: "big".into(), points: pts, ..Default::default() })
            .await
            .unwrap();
    }
    // Each request: 200 exact searches over 20,000 vectors.
    let heavy = SearchBatchRequest {
        collection: "big".into(),
        queries: (0..200)
            .map(|i| Query { vector: point(i).vector, ..Default::default() })
            .collect(),
        params: Some(SearchParameters { k: 10, exact: true, ..Default::default() }),
        ..Default::default()
    };
    let started = Instant::now();
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (mut p, req) = (p.clone(), heavy.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = p.search_batch(req).await;
                (r.map(|_| ()).map_err(|s| s.code()), t.elapsed())
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for call in calls {
        let (r, took) = call.await.unwrap();
        match r {
            Ok(()) => ok += 1,
            Err(Code::ResourceExhausted) => {
                refused += 1;
                assert!(took < Duration::from_secs(2), "a refusal took {took:?}");
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    println!("{ok} admitted, {refused} refused in {:?}", started.elapsed());
    assert!(ok >= 1 && refused >= 1, "{ok} admitted, {refused} refused");
    assert!(started.elapsed() < Duration::from_secs(60));
    // A request that cannot finish within its deadline gets DEADLINE_EXCEEDED.
    let mut late = tonic::Request::new(SearchBatchRequest {
        collection: "big".into(),
        queries: (0..1_024)
            .map(|i| Query { vector: point(i).vector, ..Default::default() })
            .collect(),
        params: Some(SearchParameters { k: 10, exact: true, ..Default::default() }),
        ..Default::default()
    });
    late.set_timeout(Duration::from_millis(10));
    let t = Instant::now();
    assert_eq!(code(p.search_batch(late).await), Code::DeadlineExceeded);
    assert!(t.elapsed() < Duration::from_secs(5), "answered after {:?}", t.elapsed());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The client subcommands against a real server: output a shell can read, and exit codes
/// 0 (done), 1 (the server refused), 2 (bad usage), 3 (no server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_subcommands_work_and_exit_with_meaningful_codes() {
    let _turn = SERIAL.lock().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("freshvec-serve-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let server = start(&dir.join("data"), port);
    wait_serving(&url).await;
    // A small .fvecs file: 30 rows of dimension 3.
    let fvecs = dir.join("rows.fvecs");
    let mut bytes = Vec::new();
    for i in 0..30u32 {
        bytes.extend_from_slice(&3i32.to_le_bytes());
        for x in [i as f32, 1.0, -(i as f32)] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(&fvecs, bytes).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_freshvec"))
            .args(args)
            .env("FRESHVEC_SERVER", &addr)
            .output()
            .expect("running the client");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(run(&["collections", "create", "rows", "--dimension", "3"]).0, 0);
    let (code, out) = run(&[
        "upsert",
        "--collection",
        "rows",
        "--fvecs",
        fvecs.to_str().unwrap(),
        "--batch",
        "7",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upserted 30 points"), "{out}");
    let (code, out) = run(&["collections", "list"]);
    assert_eq!((code, out.trim()), (0, "rows"));
    let (code, out) = run(&["collections", "describe", "rows"]);
    assert!(code == 0 && out.contains("vectors        30"), "{out}");
    let (code, out) =
        run(&["search", "--collection", "rows", "--k", "2", "--exact", "--vector", "12,1,-12"]);
    assert_eq!(code, 0);
    let first = out.lines().nth(1).unwrap_or_default().split_whitespace().collect::<Vec<_>>();
    assert_eq!(first[..2], ["1", "12"], "{out}");
    let (code, out) = run(&["status"]);
    assert!(code == 0 && out.contains("rows") && out.contains("30"), "{out}");
    // A reader that is gone before the output comes (`| grep -q`, `| head`): exit 0, no panic.
    for args in [&["status"][..], &["search", "--collection", "rows", "--vector", "1,1,1"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_freshvec"))
            .args(args)
            .env("FRESHVEC_SERVER", &addr)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the client");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("waiting for the client");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?} into a closed pipe: {stderr}");
        assert!(stderr.is_empty(), "{args:?} into a closed pipe: {stderr}");
    }
    assert_eq!(run(&["collections", "describe", "missing"]).0, 1);
    assert_eq!(
        run(&["collections", "create", "x", "--dimension", "3", "--metric", "hamming"]).0,
        2
    );
    assert_eq!(run(&["status", "--server", "127.0.0.1:1"]).0, 3);
    assert_eq!(run(&["collections", "drop", "rows"]).0, 0);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_config_file_configures_the_server_under_flags_and_environment() {
    let _turn = SERIAL.lock().await;
    let dir = std::env::temp_dir().join(format!("freshvec-serve-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = dir.join("freshvec.conf");
    let text = format!(
        "# a node configured by file\nlisten = \"127.0.0.1:{port}\"\ndata-dir = \"{}\"\n\
         metrics-listen = off\npeer-listen = 127.0.0.1:0\n",
        dir.join("data").display()
    );
    std::fs::write(&config, text).unwrap();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_freshvec"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .spawn()
            .unwrap(),
    );
    wait_serving(&format!("http://127.0.0.1:{port}")).await;
    assert!(dir.join("data").join("raft").exists(), "the data directory came from the file");
    drop(server);
    // A line naming no flag is refused with its line number, exit code 2.
    std::fs::write(&config, "listen = 127.0.0.1:1\nlisten_port = 7\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freshvec"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("freshvec.conf:2: unknown key \"listen_port\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tls_serves_the_api_to_clients_that_trust_its_certificate() {
    let _turn = SERIAL.lock().await;
    let dir = std::env::temp_dir().join(format!("freshvec-serve-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, pem_key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, key.cert.pem()).unwrap();
    std::fs::write(&pem_key, key.key_pair.serialize_pem()).unwrap();
    let port = free_port();
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        pem_key.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ];
    let server = start_with(&dir.join("data"), port, &tls);
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_freshvec"))
            .args(args)
            .args(["--server", &format!("localhost:{port}")])
            .output()
            .unwrap()
    };
    let ca = cert.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cli(&["health", "--tls-ca", ca]).status.success() {
        assert!(Instant::now() < deadline, "the TLS server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cli(&["health", "--service", "liveness", "--tls-ca", ca]).status.success());
    let created = cli(&["collections", "create", "t", "--dimension", "3", "--tls-ca", ca]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let status = cli(&["status", "--tls-ca", ca]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("ROLE_LEADER"));
    // A plaintext client gets nowhere.
    assert!(!cli(&["status"]).status.success());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
