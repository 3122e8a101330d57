//! Multi-process tests (cluster, crash, compose) that run the `freshvec` binary as real
//! processes live in this crate's `tests/` folder as the server and replication land. The
//! engine's own tests are unit tests in `crates/core`; the benchmark CLI's end-to-end test is in
//! `crates/server/tests`.
