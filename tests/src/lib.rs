//! Helpers for end-to-end tests that run the `freshvec` binary as a real process.
