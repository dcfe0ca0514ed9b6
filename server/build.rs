//! Compiles the etcd v3 wire protocol in `../proto` with `protox` (pure Rust: no system
//! `protoc`) and generates the tonic servers (and clients, for tests) with `tonic-prost-build`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
