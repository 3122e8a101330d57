//! Durable storage: the fault seam every file operation goes through, the framing every file
//! uses, the journal, the memory-mapped vector files (every `unsafe` is in `mmap`), and
//! checkpoints.

pub mod frame;
pub mod fs;
pub mod journal;
pub mod mmap;
pub mod vectors;
