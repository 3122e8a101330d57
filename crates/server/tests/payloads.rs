//! Payloads and filters through the real server, three nodes on 127.0.0.x: writes of points
//! with payloads, field indexes, payload writes by id and by filter, deletes by filter, and
//! the reads (filtered search with its plan, Get, Scroll, Count) on every replica, checked
//! against a model; then payloads and indexes survive a restart and a snapshot install (a
//! wiped follower), with digests equal across replicas. Bad payloads and filters are refused
//! and change nothing.

mod common;

use common::*;
use freshvec_server::proto::collections_client::CollectionsClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use std::collections::{BTreeMap, HashMap};
use tonic::Code;

fn s(v: &str) -> Value {
    Value { kind: Some(value::Kind::StringValue(v.into())) }
}

fn int(v: i64) -> Value {
    Value { kind: Some(value::Kind::IntegerValue(v)) }
}

fn tag_is(t: &str) -> Filter {
    let m = Match { match_value: Some(r#match::MatchValue::Keyword(t.into())) };
    let fc = FieldCondition { key: "tag".into(), r#match: Some(m), ..Default::default() };
    Filter {
        must: vec![Condition { condition: Some(condition::Condition::Field(fc)) }],
        ..Default::default()
    }
}

fn year_below(y: f64) -> Condition {
    let fc = FieldCondition {
        key: "year".into(),
        range: Some(Range { lt: Some(y), ..Default::default() }),
        ..Default::default()
    };
    Condition { condition: Some(condition::Condition::Field(fc)) }
}

/// The model: id -> (tag, year), every point has both.
type Model = BTreeMap<u64, (String, i64)>;

fn matches(model: &Model, t: &str, below: Option<i64>) -> Vec<u64> {
    model
        .iter()
        .filter(|(_, (tag, year))| tag == t && below.is_none_or(|b| *year < b))
        .map(|(id, _)| *id)
        .collect()
}

async fn points(url: &str) -> PointsClient<tonic::transport::Channel> {
    PointsClient::new(channel(url).await.expect("node reachable"))
}

async fn count(url: &str, f: Filter) -> u64 {
    let req = CountRequest {
        collection: "p".into(),
        filter: Some(f),
        consistency: Consistency::Linearizable as i32,
        ..Default::default()
    };
    points(url).await.count(req).await.unwrap().into_inner().count
}

/// Every id in order through Scroll pages of 37, with a filter.
async fn scroll_all(url: &str, f: &Filter) -> Vec<(u64, HashMap<String, Value>)> {
    let mut out = Vec::new();
    let mut offset = None;
    loop {
        let req = ScrollRequest {
            collection: "p".into(),
            filter: Some(f.clone()),
            offset,
            limit: 37,
            with_payload: Some(WithPayload { enable: true, ..Default::default() }),
            consistency: Consistency::Linearizable as i32,
            ..Default::default()
        };
        let r = points(url).await.scroll(req).await.unwrap().into_inner();
        out.extend(r.points.into_iter().map(|p| (p.id, p.payload)));
        match r.next_page_offset {
            Some(next) => offset = Some(next),
            None => return out,
        }
    }
}

/// Checks every read on node `url` against the model.
async fn check_reads(url: &str, model: &Model, rng: &mut Rng) {
    for t in ["a", "b", "c"] {
        let want = matches(model, t, None);
        assert_eq!(count(url, tag_is(t)).await, want.len() as u64, "{url}: count tag {t}");
        let got = scroll_all(url, &tag_is(t)).await;
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), want, "{url}: scroll tag {t}");
        for (id, p) in &got {
            assert_eq!(p.get("tag"), Some(&s(t)), "{url}: payload of {id}");
            assert_eq!(p.get("year"), Some(&int(model[id].1)), "{url}: payload of {id}");
        }
        let mut f = tag_is(t);
        f.must.push(year_below(2000.0));
        let want = matches(model, t, Some(2000));
        for _ in 0..5 {
            let req = SearchRequest {
                collection: "p".into(),
                vector: rng.vector(),
                params: Some(SearchParameters {
                    k: 10,
                    consistency: Consistency::Linearizable as i32,
                    ..Default::default()
                }),
                filter: Some(f.clone()),
                with_payload: Some(WithPayload {
                    include: vec!["year".into()],
                    ..Default::default()
                }),
                ..Default::default()
            };
            let r = points(url).await.search(req).await.unwrap().into_inner();
            let plan = r.plan.expect("a filtered search reports its plan");
            assert_eq!(plan.matched, want.len() as u64, "{url}: plan {plan:?}");
            assert_eq!(r.hits.len(), want.len().min(10), "{url}: {plan:?}");
            for h in &r.hits {
                assert!(want.contains(&h.id), "{url}: {} does not match", h.id);
                assert_eq!(h.payload.len(), 1, "only the included key");
                assert_eq!(h.payload.get("year"), Some(&int(model[&h.id].1)));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_replicate_filter_exactly_and_survive_restart_and_snapshot_install() {
    let _turn = SERIAL.lock().await;
    let seed = 0x9a71_0ad5;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut c =
        Cluster::new("payloads", 3, &["--snapshot-entries", "100000", "--keep-entries", "5"]);
    for id in 1..=3 {
        c.start(id, &[1, 2, 3]);
    }
    let l = leader(&c, &[1, 2, 3], 30).await;
    let follower = if l == 3 { 2 } else { 3 };
    create(&c.url(l), "p").await;
    let mut coll = CollectionsClient::new(channel(&c.url(l)).await.unwrap());
    let ix = |key: &str, t: FieldType| CreateFieldIndexRequest {
        collection: "p".into(),
        key: key.into(),
        r#type: t as i32,
    };
    coll.create_field_index(ix("tag", FieldType::Keyword)).await.unwrap();

    // Points with payloads, in both forms.
    let mut model = Model::new();
    let tags = ["a", "b", "c"];
    for b in 0..6u64 {
        let ids: Vec<u64> = (b * 100..b * 100 + 100).collect();
        let rows: Vec<(u64, String, i64, Vec<f32>)> = ids
            .iter()
            .map(|&id| {
                let t = tags[(rng.next() % 3) as usize].to_string();
                (id, t, 1980 + (rng.next() % 40) as i64, rng.vector())
            })
            .collect();
        let payload =
            |t: &str, y: i64| HashMap::from([("tag".into(), s(t)), ("year".into(), int(y))]);
        let req = if b % 2 == 0 {
            UpsertRequest {
                collection: "p".into(),
                points: rows
                    .iter()
                    .map(|(id, t, y, v)| Point {
                        id: *id,
                        vector: v.clone(),
                        payload: payload(t, *y),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        } else {
            UpsertRequest {
                collection: "p".into(),
                ids: ids.clone(),
                vectors_f32: rows
                    .iter()
                    .flat_map(|r| r.3.iter().flat_map(|x| x.to_le_bytes()))
                    .collect(),
                payloads: rows
                    .iter()
                    .map(|(_, t, y, _)| Struct { fields: payload(t, *y) })
                    .collect(),
                ..Default::default()
            }
        };
        points(&c.url(l)).await.upsert(req).await.unwrap();
        for (id, t, y, _) in rows {
            model.insert(id, (t, y));
        }
    }
    // An index created after the data is built over it.
    coll.create_field_index(ix("year", FieldType::Integer)).await.unwrap();

    // Payload writes by filter and by id, and a delete by filter, through a follower.
    let mut p = points(&c.url(follower)).await;
    p.set_payload(SetPayloadRequest {
        collection: "p".into(),
        payload: HashMap::from([("year".into(), int(1999))]),
        filter: Some(Filter { must: vec![year_below(1985.0)], ..Default::default() }),
        ..Default::default()
    })
    .await
    .unwrap();
    for (_, (_, y)) in model.iter_mut() {
        if *y < 1985 {
            *y = 1999;
        }
    }
    p.set_payload(SetPayloadRequest {
        collection: "p".into(),
        payload: HashMap::from([("tag".into(), s("c"))]),
        ids: vec![1, 2, 3],
        ..Default::default()
    })
    .await
    .unwrap();
    for id in [1, 2, 3] {
        model.get_mut(&id).unwrap().0 = "c".into();
    }
    let mut gone = tag_is("b");
    gone.must.push(year_below(1990.0));
    p.delete(DeleteRequest { collection: "p".into(), filter: Some(gone), ..Default::default() })
        .await
        .unwrap();
    model.retain(|_, (t, y)| !(t == "b" && *y < 1990));

    // Refusals change nothing: a missing id, a bad filter, an oversized payload.
    let e = p
        .set_payload(SetPayloadRequest {
            collection: "p".into(),
            payload: HashMap::from([("tag".into(), s("z"))]),
            ids: vec![1, 999_999],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let bad = Filter { must: vec![Condition { condition: None }], ..Default::default() };
    let e = p
        .delete(DeleteRequest { collection: "p".into(), filter: Some(bad), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let huge = HashMap::from([("t".into(), s(&"x".repeat(70_000)))]);
    let e = p
        .overwrite_payload(SetPayloadRequest {
            collection: "p".into(),
            payload: huge,
            ids: vec![4],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    let statuses = converged(&c, &[1, 2, 3], 30).await;
    println!("converged at {}: {:?}", statuses[0].applied_index, statuses[0].collections);
    assert_eq!(statuses[0].collections[0].vectors, model.len() as u64);
    for id in 1..=3 {
        check_reads(&c.url(id), &model, &mut rng).await;
    }

    // Restart: payloads and indexes come back from the checkpoint and the log.
    c.node(l).kill();
    c.start(l, &[1, 2, 3]);
    let l2 = leader(&c, &[1, 2, 3], 30).await;
    converged(&c, &[1, 2, 3], 60).await;
    check_reads(&c.url(l), &model, &mut rng).await;

    // Snapshot install: a wiped follower receives the checkpoint (vectors with payloads).
    let wiped = if l2 == 1 { 2 } else { 1 };
    c.node(wiped).kill();
    std::fs::remove_dir_all(&c.node(wiped).dir).unwrap();
    let mut cl = freshvec_server::proto::cluster_client::ClusterClient::new(
        channel(&c.url(l2)).await.unwrap(),
    );
    cl.trigger_snapshot(TriggerSnapshotRequest {}).await.unwrap();
    cl.purge_log(PurgeLogRequest { upto: 0 }).await.unwrap();
    c.start(wiped, &[1, 2, 3]);
    let statuses = converged(&c, &[1, 2, 3], 60).await;
    let w = statuses.iter().find(|s| s.node_id == wiped).unwrap();
    println!("node {wiped}: {} snapshot(s) installed", w.snapshots_installed);
    assert!(w.snapshots_installed >= 1);
    check_reads(&c.url(wiped), &model, &mut rng).await;
    let d = CollectionsClient::new(channel(&c.url(wiped)).await.unwrap())
        .describe(DescribeCollectionRequest { name: "p".into() })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = d.field_indexes.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["tag", "year"], "indexes restored on the installed replica");
}
