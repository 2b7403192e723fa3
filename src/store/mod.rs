//! Durable state (skeleton: records only).
mod types;
pub use types::*;
