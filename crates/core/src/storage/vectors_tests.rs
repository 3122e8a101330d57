use super::*;
use crate::distance::distance;
use crate::rng::Rng;
use crate::storage::fs::{MemFs, RealFs};
use std::collections::BTreeMap;

const DIM: usize = 8;

fn dir() -> &'static Path {
    Path::new("data/vectors")
}

type Model = BTreeMap<u64, Vec<f32>>;

/// Appends `n` seeded batches of upserts and deletes over `ids` ids, mirrored in `model`.
fn churn(store: &VectorStore, model: &mut Model, rng: &mut Rng, n: usize, ids: usize) {
    for b in 0..n {
        let k = 1 + rng.below(6);
        let batch: Vec<u64> = (0..k).map(|_| rng.below(ids) as u64).collect();
        if rng.below(5) == 0 {
            store.append(b as u64, &batch, None).unwrap();
            batch.iter().for_each(|id| drop(model.remove(id)));
        } else {
            let rows: Vec<f32> = (0..k * DIM).map(|_| rng.normal()).collect();
            store.append(b as u64, &batch, Some(&rows)).unwrap();
            for (id, row) in batch.iter().zip(rows.chunks_exact(DIM)) {
                model.insert(*id, row.to_vec());
            }
        }
    }
}

fn contents(store: &VectorStore) -> Model {
    let ids: Vec<u64> = (0..10_000).collect();
    store
        .with_vectors(|v| ids.iter().filter_map(|&id| Some((id, v(id)?.to_vec()))).collect())
        .unwrap()
}

fn open(fs: &MemFs, at: OpenAt) -> Result<VectorStore> {
    VectorStore::open(Arc::new(fs.clone()), dir(), DIM, at)
}

fn files(fs: &MemFs) -> Vec<String> {
    fs.list(dir()).unwrap()
}

/// Bytes of every file in the store, all generations.
fn disk_bytes(fs: &MemFs) -> u64 {
    files(fs).iter().map(|n| fs.read(&dir().join(n)).unwrap().len() as u64).sum()
}

#[test]
fn appends_read_back_in_place_and_reopen_from_the_sidecar() {
    let seed = 0x7ec5;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let fs = MemFs::new();
    let store = open(&fs, OpenAt::Fresh).unwrap();
    let mut model = Model::new();
    churn(&store, &mut model, &mut rng, 300, 200);
    assert_eq!(contents(&store), model);
    assert_eq!(store.len(), model.len());
    let q: Vec<f32> = (0..DIM).map(|_| rng.normal()).collect();
    let ids: Vec<u64> = (0..250).collect();
    let got = store.distances(Metric::L2, &q, &ids).unwrap();
    for (id, d) in ids.iter().zip(got) {
        assert_eq!(d, model.get(id).map(|v| distance(Metric::L2, &q, v)));
    }
    let mark = store.sync().unwrap();
    drop(store);
    let back = open(&fs, OpenAt::Newest).unwrap();
    assert_eq!((contents(&back), back.mark()), (model.clone(), mark));
    back.verify().unwrap();
    // The same bytes through a real memory mapping.
    let tmp = std::env::temp_dir().join(format!("freshvec-vectors-{}", std::process::id()));
    let real = VectorStore::open(Arc::new(RealFs), &tmp, DIM, OpenAt::Fresh).unwrap();
    for (id, v) in &model {
        real.append(1, &[*id], Some(v)).unwrap();
    }
    assert_eq!(real.get(*model.keys().next().unwrap()).unwrap().as_ref(), model.values().next());
    drop(real);
    let real = VectorStore::open(Arc::new(RealFs), &tmp, DIM, OpenAt::Newest).unwrap();
    assert_eq!(contents(&real), model);
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The corruption table of the vector files: every cut of the last record, random byte flips
/// and zero-filled tails in the vector file, damage anywhere in the sidecar. Nothing panics; a
/// damaged sidecar only costs a scan; damage before the tail is refused with file and offset.
#[test]
fn damage_is_recovered_from_or_refused_with_file_and_offset() {
    let seed = 0xdead;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let fs = MemFs::new();
    let store = open(&fs, OpenAt::Fresh).unwrap();
    let mut model = Model::new();
    churn(&store, &mut model, &mut rng, 60, 40);
    let last_len = record_len(DIM, LIVE);
    store.append(99, &[777], Some(&[0.5; DIM])).unwrap();
    let before_last = model.clone();
    model.insert(777, vec![0.5; DIM]);
    let mark = store.sync().unwrap();
    drop(store);
    let vpath = vec_path(dir(), mark.generation);
    let ipath = idx_path(dir(), mark.generation);
    let (vec, idx) = (fs.read(&vpath).unwrap(), fs.read(&ipath).unwrap());
    let with = |vbytes: &[u8], ibytes: &[u8]| {
        let fs = fs.reboot(None);
        write_file(&fs, &vpath, vbytes);
        write_file(&fs, &ipath, ibytes);
        fs
    };
    let mut outcomes = [0usize; 3];
    // 1. Every cut of the last record: the records before it, nothing else.
    for cut in vec.len() - last_len..vec.len() {
        let fs = with(&vec[..cut], &idx);
        let s = open(&fs, OpenAt::Newest).unwrap();
        assert_eq!(contents(&s), before_last, "cut at {cut}");
        s.verify().unwrap();
        outcomes[0] += 1;
    }
    // 2. Zero-filled tails: recovered whole.
    for zeros in [1, 7, 64, 4096] {
        let mut v = vec.clone();
        v.resize(v.len() + zeros, 0);
        let s = open(&with(&v, &idx), OpenAt::Newest).unwrap();
        assert_eq!(contents(&s), model);
        outcomes[0] += 1;
    }
    // 3. A flipped byte in the vector file: refused at open or by verify, naming the file
    //    and an offset; or, in the last record only, recovered without it.
    for _ in 0..400 {
        let mut v = vec.clone();
        let at = rng.below(v.len());
        v[at] ^= 1 << rng.below(8);
        let fs = with(&v, &idx);
        let refused = match open(&fs, OpenAt::Newest) {
            Err(e) => Some(e.to_string()),
            Ok(s) => match s.verify() {
                Err(e) => Some(e.to_string()),
                Ok(()) => {
                    let got = contents(&s);
                    assert!(at >= vec.len() - last_len, "damage at {at} went unnoticed");
                    assert!(got == before_last || got == model, "damage at {at}");
                    None
                }
            },
        };
        if let Some(e) = refused {
            assert!(e.contains("gen-") && (e.contains("byte") || e.contains("header")), "{e}");
            outcomes[1] += 1;
        }
    }
    // 4. Damage in the sidecar: the scan takes over and the contents are whole; the sidecar is
    //    rewritten, so the next open trusts all of it again.
    for _ in 0..300 {
        let mut i = idx.clone();
        match rng.below(3) {
            0 => {
                let at = rng.below(i.len());
                i[at] ^= 1 << rng.below(8);
            }
            1 => i.truncate(rng.below(i.len())),
            _ => i = (0..rng.below(200)).map(|_| rng.below(256) as u8).collect(),
        }
        let fs = with(&vec, &i);
        let s = open(&fs, OpenAt::Newest).unwrap();
        assert_eq!(contents(&s), model);
        drop(s);
        assert_eq!(fs.read(&ipath).unwrap(), idx, "the sidecar was not rebuilt");
        outcomes[2] += 1;
    }
    println!(
        "recovered {} cuts and zero tails, refused {} flips with file and offset, rebuilt {} sidecars",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert!(outcomes[1] > 300);
}

fn write_file(fs: &MemFs, path: &Path, bytes: &[u8]) {
    fs.remove_file(path).unwrap();
    let mut f = fs.open_append(path).unwrap();
    f.append(bytes).unwrap();
    f.sync().unwrap();
}

#[test]
fn arbitrary_bytes_never_panic() {
    let seed = 0xb17e5;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let fs = MemFs::new();
    drop(open(&fs, OpenAt::Fresh).unwrap());
    let (vpath, ipath) = (vec_path(dir(), 0), idx_path(dir(), 0));
    let mut header = frame::header(frame::VECTORS).to_vec();
    for _ in 0..2000 {
        let fs = fs.reboot(None);
        let n = rng.below(300);
        let mut v: Vec<u8> = if rng.below(2) == 0 { header.clone() } else { Vec::new() };
        v.extend((0..n).map(|_| rng.below(256) as u8));
        let i: Vec<u8> = (0..rng.below(100)).map(|_| rng.below(256) as u8).collect();
        write_file(&fs, &vpath, &v);
        write_file(&fs, &ipath, &i);
        if let Ok(s) = open(&fs, OpenAt::Newest) {
            let _ = s.verify();
            let _ = contents(&s);
        }
    }
    header.clear();
}

#[test]
fn opening_at_a_mark_drops_what_followed_it() {
    let seed = 0x3a4c;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let fs = MemFs::new();
    let store = open(&fs, OpenAt::Fresh).unwrap();
    let mut model = Model::new();
    churn(&store, &mut model, &mut rng, 50, 30);
    let mark = store.sync().unwrap();
    let at_mark = model.clone();
    churn(&store, &mut model, &mut rng, 50, 30);
    store.compact().unwrap();
    churn(&store, &mut model, &mut rng, 10, 30);
    drop(store);
    let s = open(&fs, OpenAt::Mark(mark)).unwrap();
    assert_eq!((contents(&s), s.mark()), (at_mark, mark));
    assert!(files(&fs).iter().all(|f| f.starts_with("gen-000000")), "{:?}", files(&fs));
    drop(s);
    // A mark past the end of the file is refused, never trusted.
    let long = Mark { len: mark.len + 4, ..mark };
    assert!(open(&fs, OpenAt::Mark(long)).unwrap_err().to_string().contains("shorter"));
    assert!(open(&fs, OpenAt::Mark(Mark { generation: 5, len: 16 })).is_err());
}

/// 100% churn several times over with compactions while a second thread keeps appending:
/// the contents always match, and the files stay within a small factor of the live data.
#[test]
fn compaction_keeps_the_contents_and_bounds_the_files() {
    let seed = 0xc0c0;
    println!("seed {seed:#x}");
    let fs = MemFs::new();
    let mut store = open(&fs, OpenAt::Fresh).unwrap();
    let mut model = Model::new();
    let ids = 2000;
    let mut rng = Rng::new(seed);
    let rows: Vec<f32> = (0..ids * DIM).map(|_| rng.normal()).collect();
    let all: Vec<u64> = (0..ids as u64).collect();
    store.append(0, &all, Some(&rows)).unwrap();
    for (id, row) in all.iter().zip(rows.chunks_exact(DIM)) {
        model.insert(*id, row.to_vec());
    }
    let mut compactions = 0;
    for round in 0..6 {
        // Rewrite every id once, in batches, on another thread, while compacting here.
        let writer_seed = seed ^ round;
        let mut writer_model = model.clone();
        std::thread::scope(|s| {
            let w = s.spawn(|| {
                let mut rng = Rng::new(writer_seed);
                for chunk in all.chunks(50) {
                    let rows: Vec<f32> = (0..chunk.len() * DIM).map(|_| rng.normal()).collect();
                    store.append(round + 1, chunk, Some(&rows)).unwrap();
                    for (id, row) in chunk.iter().zip(rows.chunks_exact(DIM)) {
                        writer_model.insert(*id, row.to_vec());
                    }
                }
                store.append(round + 1, &all[..ids / 10], None).unwrap();
                all[..ids / 10].iter().for_each(|id| drop(writer_model.remove(id)));
            });
            if store.needs_compaction(2.0, 0) || round % 2 == 1 {
                store.compact().unwrap();
                compactions += 1;
            }
            w.join().unwrap();
        });
        model = writer_model;
        assert_eq!(contents(&store), model, "round {round}");
        if store.needs_compaction(2.0, 0) {
            let c = store.compact().unwrap();
            compactions += 1;
            println!("round {round}: compacted {:?} -> {:?}", c.from, c.to);
        }
        store.remove_below(store.mark().generation).unwrap();
        let (disk, live) = (disk_bytes(&fs), store.live_bytes());
        assert!(
            disk as f64 <= 2.0 * live as f64,
            "round {round}: {disk} bytes on disk, {live} live"
        );
        let mark = store.sync().unwrap();
        drop(store);
        store = open(&fs, OpenAt::Mark(mark)).unwrap();
        assert_eq!(contents(&store), model, "reopened after round {round}");
        store.verify().unwrap();
    }
    assert!(compactions >= 3, "{compactions} compactions");
}

/// A batch larger than one write buffer goes out in several appends, with the same result.
#[test]
fn a_large_batch_is_written_in_chunks() {
    let (dim, n) = (1024, 5000);
    let fs = MemFs::new();
    let store = VectorStore::open(Arc::new(fs.clone()), dir(), dim, OpenAt::Fresh).unwrap();
    let ids: Vec<u64> = (0..n as u64).collect();
    let rows: Vec<f32> = (0..n * dim).map(|i| (i % 977) as f32).collect();
    assert!(n * record_len(dim, LIVE) > 2 * FLUSH, "the batch must span several buffers");
    store.append(3, &ids, Some(&rows)).unwrap();
    let mark = store.sync().unwrap();
    assert_eq!(mark.len as usize, HEADER_LEN + n * record_len(dim, LIVE));
    drop(store);
    let back = VectorStore::open(Arc::new(fs), dir(), dim, OpenAt::Mark(mark)).unwrap();
    back.verify().unwrap();
    for id in [0, 2046, 2047, 2048, 4999] {
        let want = &rows[id * dim..(id + 1) * dim];
        assert_eq!(back.get(id as u64).unwrap().as_deref(), Some(want), "id {id}");
    }
}
