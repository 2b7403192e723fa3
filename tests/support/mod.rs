//! Shared harness of the integration tests (`crate::support` in every test
//! module; the benchmarks include it too). `tests/harness_checks.rs` tests
//! its own parts.
// Each test module uses only part of the harness.
#![allow(dead_code)]

pub mod api;
pub mod certs;
pub mod cluster;
pub mod dovecot;
pub mod gateway;
pub mod hanging;
pub mod hostile_imap;
pub mod imap_proxy;
pub mod native_push;
pub mod oauth;
pub mod oauth_server;
pub mod postgres;
pub mod push;
pub mod raw_imap;
pub mod read_client;
pub mod samples;
pub mod scenario;
pub mod send;
pub mod smtp_sink;
pub mod tcp_proxy;
