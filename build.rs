//! Compiles `proto/` into Rust types (prost) and their proto3 JSON mapping
//! (pbjson), with protox as the compiler: no `protoc` is needed. The
//! descriptor set keeps the methods' `google.api.http` options, from which
//! the router and the OpenAPI document are built. Also lists the web
//! app's files under `web/` for the binary to embed (`src/web/assets.rs`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/lemonade/v1/mail.proto",
        "proto/lemonade/v1/send.proto",
        "proto/lemonade/v1/push.proto",
        "proto/lemonade/v1/api.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files)?;
    // Encoded by protox, so options from extensions are kept.
    let descriptor_set = compiler.encode_file_descriptor_set();
    let descriptor_path = out.join("lemonade_descriptor.bin");
    std::fs::write(&descriptor_path, &descriptor_set)?;
    prost_build::Config::new()
        .skip_protoc_run()
        .compile_fds(compiler.file_descriptor_set())?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_set)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".lemonade", ".google.api"])?;
    web_assets(&out)
}

/// Writes `web_assets.rs`: every file under `web/` (hidden ones left out)
/// as `(path, include_bytes!(…))`, sorted by path.
fn web_assets(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=web");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("web");
    let mut files = Vec::new();
    collect(&root, &root, &mut files)?;
    files.sort();
    let mut code = String::from("&[\n");
    for (name, path) in files {
        code.push_str(&format!("    ({name:?}, include_bytes!({path:?})),\n"));
    }
    code.push_str("]\n");
    std::fs::write(out.join("web_assets.rs"), code)?;
    Ok(())
}

fn collect(
    root: &std::path::Path,
    dir: &std::path::Path,
    files: &mut Vec<(String, String)>,
) -> Result<(), Box<dyn std::error::Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let name = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            let full = path.to_str().ok_or("a web file's path is not UTF-8")?;
            files.push((name, full.to_string()));
        }
    }
    Ok(())
}
