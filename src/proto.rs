//! The API's message types, generated at build time from `proto/` (prost for
//! protobuf, pbjson for the proto3 JSON mapping with the proto field names).
//! `proto/` is the one schema clients generate their code from.
#![allow(clippy::all, missing_docs)]

/// `lemonade.v1`: the read and send APIs and the push payload.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/lemonade.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/lemonade.v1.serde.rs"));
}

/// The compiled descriptors of `proto/` (a `FileDescriptorSet`).
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lemonade_descriptor.bin"));
