//! The web app's files: those embedded at build time, or one read from
//! `web.dir`, each with its content type and entity tag.

use std::collections::HashMap;
use std::path::Path;

use axum::body::Bytes;
use sha2::{Digest, Sha256};

/// Every file under `web/`, as `build.rs` listed them.
const EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The largest file read from `web.dir`.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// One file, ready to answer with.
#[derive(Clone)]
pub struct Asset {
    pub body: Bytes,
    pub content_type: &'static str,
    /// Weak (the body may be compressed on the way), from its digest.
    pub etag: String,
}

impl Asset {
    fn new(name: &str, body: Bytes) -> Asset {
        let digest = Sha256::digest(&body);
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            body,
            content_type: content_type(name),
            etag: format!("W/\"{hex}\""),
        }
    }
}

/// The embedded files by name.
pub struct Embedded(HashMap<&'static str, Asset>);

impl Embedded {
    pub fn load() -> Embedded {
        Embedded(
            EMBEDDED
                .iter()
                .map(|(name, body)| (*name, Asset::new(name, Bytes::from_static(body))))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<Asset> {
        self.0.get(name).cloned()
    }
}

/// Reads `name` from `dir` (a name [`is_safe`] said yes to).
pub async fn read(dir: &Path, name: &str) -> Option<Asset> {
    let path = dir.join(name);
    let meta = tokio::fs::metadata(&path).await.ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    let body = tokio::fs::read(&path).await.ok()?;
    Some(Asset::new(name, Bytes::from(body)))
}

/// Whether a request's path can name a file of the app: segments of
/// letters, digits, `-`, `_` and `.`, none empty or starting with a dot.
pub fn is_safe(name: &str) -> bool {
    name.len() <= 200
        && name.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// The content type of a file by its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("webmanifest") => "application/manifest+json",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
