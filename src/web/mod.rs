//! The mail web app (`web/`), served at `/` when `web.enabled`: its files
//! are embedded in the binary (listed by `build.rs`), or read from
//! `web.dir` while someone works on the app. Every answer carries the
//! app's Content-Security-Policy and a validator (`ETag`, `no-cache`), so a
//! phone revalidates cheaply and the service worker keeps the copy for
//! offline use. Only the app's own files are answered here; any other path
//! (the API under `/v1/`, `/healthz`, `/metrics`, …) is the router's.

mod files;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;

use crate::config::WebConfig;
pub use files::{content_type, Asset};

/// The app's policy. No inline script anywhere; message HTML is shown in a
/// sandboxed `srcdoc` frame, which inherits this policy, hence inline styles
/// (mail is styled inline) and `https:` images (shown only once the reader
/// asks: the frame's own policy blocks them until then).
pub const CSP: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: https:; \
    connect-src 'self'; frame-src 'self' blob: data: about:; worker-src 'self'; \
    manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Where the app's files come from.
#[derive(Clone)]
pub enum WebApp {
    Off,
    Embedded(Arc<files::Embedded>),
    Dir(PathBuf),
}

impl WebApp {
    pub fn new(config: &WebConfig) -> WebApp {
        match (&config.enabled, &config.dir) {
            (false, _) => WebApp::Off,
            (true, Some(dir)) => WebApp::Dir(dir.clone()),
            (true, None) => WebApp::Embedded(Arc::new(files::Embedded::load())),
        }
    }

    /// The answer for `request` if it asks for one of the app's files.
    pub async fn answer(&self, request: &Parts) -> Option<Response> {
        if !matches!(request.method, Method::GET | Method::HEAD) {
            return None;
        }
        let name = file_name(request.uri.path())?;
        let asset = match self {
            WebApp::Off => return None,
            WebApp::Embedded(files) => files.get(name)?,
            WebApp::Dir(dir) => files::read(dir, name).await?,
        };
        let matches = request
            .headers
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|tag| tag.trim() == asset.etag));
        Some(respond(asset, matches))
    }
}

/// The file a path names: `/` is `index.html`; the API's paths are never
/// the app's.
fn file_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?;
    if name.is_empty() {
        return Some("index.html");
    }
    if name.starts_with("v1/") || !files::is_safe(name) {
        return None;
    }
    Some(name)
}

fn respond(asset: Asset, not_modified: bool) -> Response {
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        (StatusCode::OK, Body::from(asset.body))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(ETAG, tag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Parts {
        axum::http::Request::get(path)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn api_paths_and_odd_names_are_not_the_apps() {
        assert_eq!(file_name("/"), Some("index.html"));
        assert_eq!(file_name("/js/app.js"), Some("js/app.js"));
        for path in [
            "/v1/accounts",
            "/../Cargo.toml",
            "/js/../../x",
            "/.hidden",
            "/js//app.js",
            "/a\\b",
            "relative",
        ] {
            assert_eq!(file_name(path), None, "{path}");
        }
    }

    #[tokio::test]
    async fn the_index_has_the_policy_and_a_validator() {
        let app = WebApp::new(&WebConfig::default());
        let answer = app.answer(&get("/")).await.expect("the app answers /");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(answer.headers()[CONTENT_SECURITY_POLICY], CSP);
        let tag = answer.headers()[ETAG].clone();
        let mut again = get("/");
        again.headers.insert(IF_NONE_MATCH, tag);
        let answer = app.answer(&again).await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn nothing_is_answered_when_off_or_for_other_methods() {
        let off = WebApp::new(&WebConfig {
            enabled: false,
            dir: None,
        });
        assert!(off.answer(&get("/")).await.is_none());
        let on = WebApp::new(&WebConfig::default());
        let mut post = get("/");
        post.method = Method::POST;
        assert!(on.answer(&post).await.is_none());
        assert!(on.answer(&get("/no-such.js")).await.is_none());
    }
}
