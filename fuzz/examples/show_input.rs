//! Prints what a fuzz input means, for triage: the decoded plan of a `wal_recovery_structured`
//! input, or the files a `wal_recovery_bytes` input puts in the store.
//!
//! ```text
//! cd fuzz && cargo run --release --example show_input -- wal_recovery_structured artifacts/wal_recovery_structured/crash-...
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_fuzz::layout::{self, SegmentHeader};
use strata_fuzz::{bytes_input, structured_input};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: show_input <wal_recovery_bytes|wal_recovery_structured> <input file>");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).unwrap();
    match target.as_str() {
        "wal_recovery_structured" => {
            let plan = structured_input::decode(&data);
            println!("{:?}", plan.config());
            for op in &plan.ops {
                println!("op {op:?}");
            }
            println!("crash {:?}", plan.crash);
            for m in &plan.mutations {
                println!("mutation {m:?}");
            }
        }
        "wal_recovery_bytes" => {
            let case = bytes_input::decode(&data);
            println!(
                "repair: {}, write after open: {}",
                case.repair, case.write_after_open
            );
            for (name, bytes) in &case.files {
                println!(
                    "{name}: {} bytes ({} used), header fields {:?}",
                    bytes.len(),
                    layout::used_len(bytes),
                    SegmentHeader::read_unchecked(bytes)
                );
            }
        }
        other => {
            eprintln!("unknown target {other}");
            std::process::exit(2);
        }
    }
}
