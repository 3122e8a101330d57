//! The `freshvec` binary: for now the embedded benchmark harness (`freshvec bench`).

mod bench;
mod crash_writer;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "freshvec", version, about = "A vector database for data that keeps changing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark the embedded engine on TEXMEX files (or a generated dataset).
    Bench(Box<bench::BenchArgs>),
    /// A durable writer for crash tests (prints each acknowledged batch).
    #[command(hide = true)]
    CrashWriter(crash_writer::CrashWriterArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::run(*args),
        Command::CrashWriter(args) => crash_writer::run(args),
    }
}
