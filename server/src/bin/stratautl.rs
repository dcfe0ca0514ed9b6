//! `stratautl`: offline tools for a Strata data directory or snapshot file, shaped like
//! `etcdutl`: `stratautl snapshot restore FILE --data-dir DIR [...]` and `stratautl snapshot
//! status FILE [-w simple|table|json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strata_server::restore::{RestoreOptions, human_bytes, restore, status};

/// Offline utilities for Strata (etcdutl's commands and flags).
#[derive(Parser, Debug)]
#[command(name = "stratautl", version)]
struct Cli {
    /// Output format: simple, table or json.
    #[arg(
        short = 'w',
        long = "write-out",
        default_value = "simple",
        global = true
    )]
    write_out: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manages Strata node snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Restores a Strata member snapshot to a Strata data directory.
    Restore {
        /// The snapshot file (`etcdctl snapshot save` output).
        filename: PathBuf,
        /// Path to the output data directory (default: `<name>.strata`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Human-readable name for this member.
        #[arg(long, default_value = "default")]
        name: String,
        /// Initial cluster configuration for restore bootstrap (`name=peerURL`).
        #[arg(long)]
        initial_cluster: Option<String>,
        /// Initial cluster token for the cluster during restore bootstrap.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster.
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        /// Ignore the snapshot's sha256 checksum.
        #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
        skip_hash_check: bool,
    },
    /// Gets backend snapshot status of a given file.
    Status {
        /// The snapshot file.
        filename: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Snapshot(SnapshotCommand::Restore {
            filename,
            data_dir,
            name,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
        }) => {
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.strata")));
            let o = RestoreOptions {
                snapshot: filename,
                data_dir,
                name,
                initial_cluster,
                initial_cluster_token,
                initial_advertise_peer_urls,
                skip_hash_check,
            };
            let r = restore(&o)?;
            eprintln!(
                "restored snapshot {} into {}: member {:x} in cluster {:x}, revision {}, {} keys",
                o.snapshot.display(),
                o.data_dir.display(),
                r.identity.member_id,
                r.identity.cluster_id,
                r.digest.revision,
                r.digest.total_keys
            );
            Ok(())
        }
        Command::Snapshot(SnapshotCommand::Status { filename }) => {
            let s = status(&filename)?;
            match cli.write_out.as_str() {
                "simple" => println!(
                    "{:x}, {}, {}, {}",
                    s.hash,
                    s.revision,
                    s.total_keys,
                    human_bytes(s.total_size)
                ),
                "json" => println!(
                    "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}",
                    s.hash, s.revision, s.total_keys, s.total_size
                ),
                "table" => print_table(&[
                    format!("{:x}", s.hash),
                    s.revision.to_string(),
                    s.total_keys.to_string(),
                    human_bytes(s.total_size),
                ]),
                other => {
                    return Err(format!(
                        "unknown output format {other:?} (simple, table, json)"
                    ));
                }
            }
            Ok(())
        }
    }
}

/// etcdutl's table (tablewriter): centred headers, right-aligned numbers, left-aligned size.
fn print_table(row: &[String; 4]) {
    let heads = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    let widths: Vec<usize> = heads
        .iter()
        .zip(row)
        .map(|(h, v)| h.len().max(v.len()))
        .collect();
    let line: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+";
    println!("{line}");
    let head: String = heads
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!("| {h:^w$} "))
        .collect::<String>()
        + "|";
    println!("{head}");
    println!("{line}");
    let body: String = row
        .iter()
        .zip(&widths)
        .enumerate()
        .map(|(i, (v, w))| {
            if i == 1 || i == 2 {
                format!("| {v:>w$} ")
            } else {
                format!("| {v:<w$} ")
            }
        })
        .collect::<String>()
        + "|";
    println!("{body}");
    println!("{line}");
}
