//! The `freshvec` binary.

fn main() {
    println!("freshvec {}", env!("CARGO_PKG_VERSION"));
}
