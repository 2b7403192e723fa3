//! Compiles `proto/` into Rust types (prost) and their proto3 JSON mapping
//! (pbjson), with protox as the compiler: no `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/lemonade/v1/mail.proto",
        "proto/lemonade/v1/send.proto",
        "proto/lemonade/v1/push.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(files, ["proto"])?;
    let descriptor_path = out.join("lemonade_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    prost_build::Config::new()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_fds(descriptors)?;
    let descriptor_set = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_set)?
        .preserve_proto_field_names()
        .build(&[".lemonade"])?;
    Ok(())
}
