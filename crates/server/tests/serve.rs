//! The server as a user runs it: a real `freshvec serve` process on 127.0.0.1, driven through
//! the generated gRPC client; validation codes; SIGTERM shutdown; restart with the same data.

use freshvec_server::proto::collections_client::CollectionsClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Kills the server if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16) -> Server {
    start_with(dir, port, &[])
}

fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_freshvec"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
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
    Point { id, vector: vec![id as f32, (id % 7) as f32, 1.0, -(id as f32) / 3.0] }
}

fn params(k: u32, exact: bool) -> Option<SearchParameters> {
    Some(SearchParameters { k, exact, ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_validates_shuts_down_cleanly_and_restarts_with_its_data() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("freshvec-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let mut server = start(&dir, port);
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
    };
    let w = points.upsert(upsert("docs", (0..100).map(point).collect())).await.unwrap();
    assert_eq!(w.into_inner().index, 1);
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
    let zero = Point { id: 1, vector: vec![0.0; 3] };
    assert_eq!(code(points.upsert(upsert("unit", vec![zero])).await), Code::InvalidArgument);
    assert_eq!(code(points.upsert(upsert("nope", vec![point(1)])).await), Code::NotFound);
    let search = |collection: &str, vector: Vec<f32>, params| SearchRequest {
        collection: collection.into(),
        vector,
        params,
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
        .delete(DeleteRequest { collection: "docs".into(), ids: vec![42, 43] })
        .await
        .unwrap();
    assert_eq!(w.into_inner().index, 2);
    let got = points
        .get(GetRequest { collection: "docs".into(), ids: vec![41, 42, 44], with_vectors: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points, vec![point(41), point(44)]);
    let d = colls
        .describe(DescribeCollectionRequest { name: "docs".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.vectors, d.dimension, d.applied_index), (98, 4, 2));

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
    assert_eq!((d.vectors, d.applied_index), (98, 2));
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
