//! Compiles the etcd v3 wire protocol in `../proto` with `protox` (pure Rust: no system
//! `protoc`) and generates the tonic servers (and clients, for tests) with `tonic-prost-build`;
//! records the compiler's version for `strata --version`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `strata --version` prints the compiler that built it, as etcd prints its Go version.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STRATA_RUSTC_VERSION={version}");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("..").join("proto");
    let files = [
        root.join("etcdserverpb/rpc.proto"),
        root.join("mvccpb/kv.proto"),
        root.join("authpb/auth.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Methods Strata does not serve yet (auth, membership changes) answer Unimplemented.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
