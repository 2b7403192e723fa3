//! The HTTP API for phones: accounts, devices, the VAPID key, the read API
//! (`mail.rs`, JSON or protobuf by `codec.rs`, described by `openapi.rs`),
//! uploads and sending, health and metrics; responses are compressed by
//! Accept-Encoding. Routes are thin: they validate, call the store and the
//! supervisor, and map errors to `{"error": {"code", "message"}}` answers
//! (`rejections.rs` makes every other error answer JSON too). `serve.rs`
//! runs the router over HTTP/1.1 and closes idle and slow connections.
//! Paths that are no route may be the web app's files ([`crate::web`]).

mod accounts;
mod auth;
mod client_ip;
pub mod codec;
pub mod contract;
mod device_targets;
mod devices;
mod error;
mod keyed_locks;
mod login_guard;
mod mail;
pub mod manners;
mod messages;
mod oauth;
pub mod openapi;
mod registration_limit;
mod rejections;
pub mod routes;
mod schemas;
mod send;
pub mod serve;
mod upload_quota;
mod uploads;
mod window_counts;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;

use crate::proto::v1 as pb;
use codec::Format;

pub use error::ApiError;
pub use keyed_locks::KeyedLocks;
pub use login_guard::LoginGuard;
pub use registration_limit::RegistrationLimit;
pub(crate) use rejections::ApiPath;
pub use uploads::remove_unnamed_files as remove_unnamed_upload_files;

use crate::config::Config;
use crate::error_code::ErrorCode;
use crate::metrics::Metrics;
use crate::net::TlsConnector;
use crate::store::{Sealer, Store};
use crate::watch::{WatchControl, WatchStates};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub sealer: Arc<Sealer>,
    /// Logs in to accounts' servers; holds the OAuth providers and tokens.
    pub credentials: Arc<crate::credentials::Credentials>,
    /// The one-time state and grants of sign-ins through the browser.
    pub signins: Arc<crate::oauth::SignIns>,
    pub tls: TlsConnector,
    /// Sends pushes (test pushes go out from the API directly).
    pub pusher: Arc<dyn crate::notify::PushSender>,
    /// Told of changes the account's watcher must act on.
    pub watchers: Arc<dyn WatchControl>,
    /// Open while this node may serve (in a cluster: holds its lease).
    pub ready: crate::lease::LeaseGate,
    /// In a cluster: the shared store's cluster side, and this node's id.
    pub cluster: Option<Arc<crate::store::PgStore>>,
    pub node_id: Option<String>,
    pub states: WatchStates,
    pub metrics: Arc<Metrics>,
    /// The VAPID public key, base64url, as browsers want it.
    pub vapid_public_key: Arc<str>,
    /// IMAP sessions of the read API.
    pub pool: crate::read::SessionPool,
    /// Runs send jobs.
    pub outbox: crate::send::Outbox,
    /// Counts refused registration logins.
    pub login_guard: Arc<LoginGuard>,
    /// Counts new accounts per client.
    pub registrations: Arc<RegistrationLimit>,
    /// Keeps read-check-write steps on one login or account from
    /// interleaving.
    pub locks: Arc<KeyedLocks>,
    /// What uploads still streaming may add to their accounts' quotas.
    pub upload_reservations: Arc<upload_quota::UploadReservations>,
}

/// Runs a handler's store-changing steps to their end even when the request
/// is dropped: hyper drops a handler's future when its client goes away (a
/// phone losing its link), and the timeout layer when it fires. A step that
/// wrote to the store must not stop before what makes the write take effect
/// (starting the account's watcher, telling it of a device, starting a
/// send), or the write sits unused until the gateway restarts.
pub(crate) async fn to_completion<T, F>(work: F) -> Result<T, ApiError>
where
    F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(work).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a request's steps panicked");
        Err(ApiError::new(
            ErrorCode::InternalError,
            "the gateway failed to finish the request",
        ))
    })
}

/// Builds the router from the route registry: each operation at the path
/// and method its proto rule names.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.api.max_body_bytes;
    let timeout = Duration::from_secs(state.config.api.request_timeout_secs);
    let (streaming, bounded): (Vec<_>, Vec<_>) =
        routes::table().into_iter().partition(|r| r.doc.streaming);
    let web = crate::web::WebApp::new(&state.config.web);
    let bounded = bounded
        .into_iter()
        .fold(Router::new(), |router, route| add(router, &route, |m| m))
        .fallback(move |request: axum::extract::Request| web_or_not_found(web.clone(), request))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            rejections::request_timeout,
        ));
    // Added after the timeout, so it does not apply: an upload of
    // `send.max_upload_bytes` over a phone's uplink can take many minutes.
    // Instead each wait for more of the body is bounded by the same
    // `api.request_timeout_secs` (see `uploads`).
    streaming
        .into_iter()
        .fold(bounded, |router, route| {
            add(router, &route, |m| {
                m.layer(axum::extract::DefaultBodyLimit::disable())
                    .layer(axum::middleware::map_response(close_after_refusal))
            })
        })
        .layer(axum::middleware::map_response(rejections::json_errors))
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Precise(7))
                .compress_when(manners::CompressWhen),
        )
        .layer(axum::middleware::map_response(manners::vary_accept))
        .layer(axum::middleware::map_response(
            manners::close_after_unread_body,
        ))
        .layer(manners::cors(&state.config.api.cors_origins))
        .layer(axum::middleware::from_fn(manners::request_id))
        .with_state(state)
}

/// Serves one registered operation (`routes::the_registry_and_the_proto_agree`
/// checks that every entry has a rule).
fn add(
    router: Router<AppState>,
    route: &routes::Route,
    layers: impl FnOnce(MethodRouter<AppState>) -> MethodRouter<AppState>,
) -> Router<AppState> {
    let Some(rule) = contract::rule(route.rpc) else {
        tracing::error!(
            rpc = route.rpc,
            "a registered route has no rule in api.proto"
        );
        return router;
    };
    let Some(filter) = routes::filter(&rule.method) else {
        return router;
    };
    router.route(&rule.path, layers((route.handler)(filter)))
}

async fn vapid(State(state): State<AppState>, format: Format) -> Response {
    let answer = pb::VapidKeyResponse {
        public_key: state.vapid_public_key.to_string(),
    };
    format.respond(StatusCode::OK, &answer)
}

async fn healthz(format: Format) -> Response {
    let answer = pb::HealthResponse {
        status: "ok".into(),
        reason: None,
    };
    format.respond(StatusCode::OK, &answer)
}

/// Ready once this node may serve: alone, at once; in a cluster, while it
/// holds its lease (a load balancer sends nothing to a node that lost it).
async fn readyz(State(state): State<AppState>, format: Format) -> Response {
    if state.ready.is_held() {
        let answer = pb::HealthResponse {
            status: "ready".into(),
            reason: None,
        };
        format.respond(StatusCode::OK, &answer)
    } else {
        let answer = pb::HealthResponse {
            status: "not_ready".into(),
            reason: Some("this node does not hold its cluster lease".into()),
        };
        format.respond(StatusCode::SERVICE_UNAVAILABLE, &answer)
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(&state.states.counts());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// An upload refused before its body was read leaves the rest of that body
/// on the connection, which the server then drops; `Connection: close` keeps
/// the client from sending its next request on it.
async fn close_after_refusal(mut response: axum::response::Response) -> axum::response::Response {
    if !response.status().is_success() {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The web app's files (when it is on), else `404 not_found`.
async fn web_or_not_found(web: crate::web::WebApp, request: axum::extract::Request) -> Response {
    let (parts, _) = request.into_parts();
    match web.answer(&parts).await {
        Some(answer) => answer,
        None => ApiError::not_found("route").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_run_to_their_end_when_the_request_is_dropped() {
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (finish_tx, finish) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let request = tokio::spawn(to_completion(async move {
            let _ = started_tx.send(());
            let _ = finish.await;
            let _ = done_tx.send(());
            Ok(())
        }));
        started.await.unwrap();
        // The client goes away: the handler's future is dropped.
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        let _ = finish_tx.send(());
        done.await.expect("the steps ran to their end");
    }

    #[tokio::test]
    async fn a_panic_in_the_steps_is_an_internal_error() {
        let answer = to_completion(async {
            if true {
                panic!("broken step");
            }
            Ok(())
        })
        .await;
        assert_eq!(answer.unwrap_err().code, ErrorCode::InternalError);
    }
}
