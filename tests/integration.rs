//! The integration tests, as modules of one test binary: one link rather
//! than one per file. Each module owns one area and says what it talks to
//! (real Dovecot, PostgreSQL, SMTP sink, Web Push receiver, Chromium);
//! `support` is the harness they share. Run one area with
//! `cargo test --test integration push_gateway::`.

mod support;

mod api_errors;
mod api_limits;
mod api_races;
mod cluster;
mod harness_checks;
mod hostile;
mod imap_client;
mod imap_send_commands;
mod oauth;
mod push_client;
mod push_fetching;
mod push_gateway;
mod read_api;
mod read_delta;
mod read_pool;
mod send_crash;
mod send_flows;
mod send_paths;
