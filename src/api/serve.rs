//! Serving the router over HTTP/1.1, one task per connection, closing
//! connections that hold the gateway without using it: one that has not sent
//! a request's whole header `api.header_read_timeout_secs` after its first
//! byte, one with no request under way for `api.idle_timeout_secs`, and one
//! whose response has not moved for as long (a client that stopped
//! reading). A request whose handler is still working is never cut here:
//! `api.request_timeout_secs` bounds handlers, and uploads bound each wait
//! for more of their body themselves.
//!
//! The deadlines follow what each connection does: its reads and writes,
//! and when a request's handler starts, answers and its response ends.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long connections may take.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// From a request's first byte to the end of its header.
    pub header_read: Duration,
    /// With no request under way, or a response that does not move.
    pub idle: Duration,
    /// At shutdown, how long requests under way may take to finish.
    pub drain: Duration,
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets the
/// requests under way finish (for at most `limits.drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let force = CancellationToken::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait for some to be
                    // closed rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        connections.spawn(connection(
            tcp,
            peer,
            app.clone(),
            limits,
            shutdown.clone(),
            force.clone(),
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(limits.drain, connections.wait())
        .await
        .is_err()
    {
        force.cancel();
        connections.wait().await;
    }
}

/// Serves one connection until it ends, a limit closes it, or the gateway
/// stops.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
    force: CancellationToken,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(Watched {
        inner: tcp,
        activity: activity.clone(),
    });
    let app = TowerToHyperService::new(app);
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let handling = Handling::start(&activity);
            let answer = app.call(request);
            async move {
                let response = answer.await?;
                let responding = handling.answered();
                Ok::<_, Infallible>(response.map(|body| TrackedBody {
                    inner: body,
                    responding: Some(responding),
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The limits below replace hyper's own header timeout.
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = force.cancelled() => break,
            why = activity.expired(limits) => {
                tracing::debug!(%peer, why, "closing an HTTP connection");
                break;
            }
        }
    }
}

/// What a connection is doing, for its deadlines.
#[derive(Debug)]
struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests whose handlers have not answered yet.
    handling: u32,
    /// Answered requests whose response bodies have not ended.
    responding: u32,
    /// Since when no request has been under way.
    idle_since: Instant,
    /// When the first byte of the next request arrived.
    head_since: Option<Instant>,
    /// The last byte read or written.
    moved: Instant,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Activity {
            state: Mutex::new(State {
                handling: 0,
                responding: 0,
                idle_since: now,
                head_since: None,
                moved: now,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.moved = now;
        if state.handling == 0 && state.responding == 0 && state.head_since.is_none() {
            // The header deadline may come before the idle one.
            state.head_since = Some(now);
            drop(state);
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.lock().moved = Instant::now();
    }

    fn change(&self, f: impl FnOnce(&mut State, Instant)) {
        f(&mut self.lock(), Instant::now());
        self.changed.notify_one();
    }

    /// When the connection is to be closed, and why; `None` while a
    /// handler works.
    fn deadline(&self, limits: ServeLimits) -> Option<(Instant, &'static str)> {
        let state = self.lock();
        if state.handling > 0 {
            None
        } else if state.responding > 0 {
            Some((state.moved + limits.idle, "response stalled"))
        } else if let Some(since) = state.head_since {
            Some((since + limits.header_read, "request header too slow"))
        } else {
            Some((state.idle_since + limits.idle, "idle"))
        }
    }

    /// Resolves, with the reason, once a deadline has passed.
    async fn expired(&self, limits: ServeLimits) -> &'static str {
        loop {
            match self.deadline(limits) {
                Some((at, why)) if Instant::now() >= at => return why,
                Some((at, _)) => {
                    tokio::select! {
                        _ = self.changed.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// A request whose handler is working; counted until it answers or is
/// dropped.
struct Handling(Arc<Activity>);

impl Handling {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.change(|state, _| {
            state.handling += 1;
            state.head_since = None;
        });
        Handling(activity.clone())
    }

    fn answered(self) -> Responding {
        self.0.change(|state, now| {
            state.responding += 1;
            state.moved = now;
        });
        // Dropping `self` ends the handling.
        Responding(self.0.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.change(|state, now| {
            state.handling = state.handling.saturating_sub(1);
            if state.handling == 0 && state.responding == 0 {
                state.idle_since = now;
            }
        });
    }
}

/// A response whose body has not ended.
struct Responding(Arc<Activity>);

impl Drop for Responding {
    fn drop(&mut self) {
        self.0.change(|state, now| {
            state.responding = state.responding.saturating_sub(1);
            if state.handling == 0 && state.responding == 0 {
                state.idle_since = now;
            }
        });
    }
}

/// A response body that says when it ended.
struct TrackedBody {
    inner: axum::body::Body,
    responding: Option<Responding>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.responding = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, telling its [`Activity`] of bytes moved.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
