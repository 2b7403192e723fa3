//! Lemonade: a push mail gateway for phones.
#![forbid(unsafe_code)]

pub mod error;
pub mod imap;
pub mod mail;
pub mod net;
pub mod store;
