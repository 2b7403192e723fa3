//! Lemonade: a push mail gateway for phones.
#![forbid(unsafe_code)]

pub mod error;
pub mod mail;
pub mod notify;
pub mod store;
