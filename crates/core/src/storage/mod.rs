//! Durable storage: the fault seam every file operation goes through, the framing every file
//! uses, the journal, and checkpoints.

pub mod frame;
pub mod fs;
pub mod journal;
