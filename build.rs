//! Compiles `proto/` into Rust types (prost) and their proto3 JSON mapping
//! (pbjson), with protox as the compiler: no `protoc` is needed. The
//! descriptor set keeps the methods' `google.api.http` options, from which
//! the router and the OpenAPI document are built.

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
    Ok(())
}
