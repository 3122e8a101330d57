//! The `freshvec` binary: the server (the default), the benchmark harness, and the crash-test
//! writer.

use clap::{Parser, Subcommand};
use freshvec_server::{bench, cli, crash_writer, serve};

#[derive(Parser, Debug)]
#[command(name = "freshvec", version, about = "A vector database for data that keeps changing")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: serve, with these settings.
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the gRPC API over the collections in the data directory (the default).
    Serve(serve::ServeArgs),
    /// Benchmark the embedded engine on TEXMEX files (or a generated dataset).
    Bench(Box<bench::BenchArgs>),
    /// Manage collections on a running server.
    Collections {
        #[command(subcommand)]
        cmd: cli::CollectionsCmd,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// Upsert the rows of a TEXMEX .fvecs file into a collection, in batches.
    Upsert {
        #[command(flatten)]
        args: cli::UpsertArgs,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// Page through a collection's points in id order (optionally filtered).
    Scroll {
        #[command(flatten)]
        args: cli::ScrollArgs,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// Count a collection's points (optionally filtered), exactly.
    Count {
        #[command(flatten)]
        args: cli::CountArgs,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// Search a collection.
    Search {
        #[command(flatten)]
        args: cli::SearchArgs,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// Show the node's replication status and per-collection digests.
    Status {
        /// Refresh every this many seconds.
        #[arg(long, num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// Exit 0 if the node is SERVING (a container health check): ready by default,
    /// `--service liveness` only asks whether the process answers.
    Health {
        #[arg(long, default_value = "")]
        service: String,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// Cluster operations: snapshot, purge, add-node, remove-node.
    Cluster {
        #[command(subcommand)]
        cmd: cli::ClusterCmd,
        #[command(flatten)]
        conn: cli::Conn,
    },
    /// A durable writer for crash tests (prints each acknowledged batch).
    #[command(hide = true)]
    CrashWriter(crash_writer::CrashWriterArgs),
}

/// Structured logs on stderr: `FRESHVEC_LOG` filters (default `info,openraft=warn`),
/// `FRESHVEC_LOG_FORMAT=json` writes one JSON object per line.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FRESHVEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("FRESHVEC_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    // The config file fills in the environment before the flags are parsed (and before any
    // thread starts).
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = freshvec_server::config::path_from(&args) {
        use clap::Args as _;
        let known: Vec<String> = serve::ServeArgs::augment_args(clap::Command::new("serve"))
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        if let Err(e) = freshvec_server::config::load(std::path::Path::new(&path), &known) {
            eprintln!("error: config file {e}");
            std::process::exit(2);
        }
    }
    let cli = Cli::parse();
    match cli.command {
        None => {
            init_logs();
            serve::run(cli.serve)
        }
        Some(Command::Serve(args)) => {
            init_logs();
            serve::run(args)
        }
        Some(Command::Bench(args)) => bench::run(*args),
        Some(Command::CrashWriter(args)) => crash_writer::run(args),
        Some(Command::Collections { cmd, conn }) => exit(cli::run(cli::collections(conn, cmd))),
        Some(Command::Upsert { args, conn }) => exit(cli::run(cli::upsert(conn, args))),
        Some(Command::Search { args, conn }) => exit(cli::run(cli::search(conn, args))),
        Some(Command::Scroll { args, conn }) => exit(cli::run(cli::scroll(conn, args))),
        Some(Command::Count { args, conn }) => exit(cli::run(cli::count(conn, args))),
        Some(Command::Status { watch, conn }) => exit(cli::run(cli::status(conn, watch))),
        Some(Command::Health { service, conn }) => exit(cli::run(cli::health(conn, service))),
        Some(Command::Cluster { cmd, conn }) => exit(cli::run(cli::cluster(conn, cmd))),
    }
}

fn exit(code: i32) -> ! {
    std::process::exit(code)
}
