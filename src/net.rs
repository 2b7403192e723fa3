//! Connecting to upstream mail servers: TCP with keepalive, TLS with verified
//! certificates, and the STARTTLS upgrade; unless private hosts are allowed,
//! only public addresses are dialled (account registration takes any host
//! name a user gives, which must not reach into the gateway's own network).
//!
//! Shared by the IMAP client and SMTP submission. One [`TlsConnector`] is built
//! at start and cloned into every connection (it is an `Arc` inside), so a
//! connection's own TLS state is only the rustls connection state. [`MaybeTls`] lets the
//! protocol code stay the same whether the server speaks TLS from the first
//! byte, after STARTTLS, or (when configured) not at all.
//!
//! [`MaybeTls::readable`] waits until the socket has data without reading it,
//! so an idle connection can park without holding any read buffer.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::error::ErrorClass;
use crate::public_ip::is_public_ip;
pub use crate::store::Security;

/// Idle time before the first TCP keepalive probe: short enough to notice a
/// dead NAT mapping well inside the IMAP IDLE refresh period.
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// Interval between keepalive probes once they start.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Where an upstream server is and how to secure the connection to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// Why a connection could not be made or secured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The host name did not resolve (or resolved to nothing).
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    /// Every resolved address refused or failed the TCP connect.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    /// Connecting or the TLS handshake took longer than allowed.
    #[error("timed out connecting to {host}:{port}")]
    Timeout { host: String, port: u16 },
    /// The host is not usable as a TLS server name.
    #[error("invalid TLS server name {0:?}")]
    InvalidName(String),
    /// The server's certificate was not accepted.
    #[error("TLS certificate of {host} rejected: {source}")]
    Certificate { host: String, source: io::Error },
    /// The TLS handshake failed for another reason (reset, protocol error).
    #[error("TLS handshake with {host} failed: {source}")]
    Handshake { host: String, source: io::Error },
    /// The extra CA file could not be read or held no usable certificate.
    #[error("CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// STARTTLS was asked on a connection that is already TLS.
    #[error("connection is already TLS")]
    AlreadyTls,
    /// Every address of the host is loopback, private or otherwise not
    /// public, and private hosts are not allowed.
    #[error("{host} resolves only to loopback, private or other non-public addresses (allowed only with upstream.allow_private_hosts)")]
    PrivateAddress { host: String },
}

impl NetError {
    /// How the reconnect policy should treat this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            NetError::Resolve { .. }
            | NetError::Connect { .. }
            | NetError::Timeout { .. }
            | NetError::Handshake { .. } => ErrorClass::Transient,
            NetError::InvalidName(_)
            | NetError::Certificate { .. }
            | NetError::CaFile { .. }
            | NetError::Config(_)
            | NetError::PrivateAddress { .. } => ErrorClass::Permanent,
            NetError::AlreadyTls => ErrorClass::Protocol,
        }
    }
}

/// The webpki roots plus every certificate in `extra_ca_file` (PEM).
pub fn trusted_roots(extra_ca_file: Option<&Path>) -> Result<rustls::RootCertStore, NetError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let Some(path) = extra_ca_file else {
        return Ok(roots);
    };
    let ca_error = |reason: String| NetError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let mut added = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| ca_error(e.to_string()))?;
        roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(ca_error("no certificate found".into()));
    }
    Ok(roots)
}

/// How upstream connections are made, built once and shared by every
/// connection: the TLS client configuration, and whether only public
/// addresses may be dialled.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    public_only: bool,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Trusts the webpki roots plus every certificate in `extra_ca_file`
    /// (PEM), e.g. a private CA or a test server's self-signed certificate.
    /// Certificates are always verified; there is no switch to turn that off.
    pub fn new(extra_ca_file: Option<&Path>) -> Result<Self, NetError> {
        let roots = trusted_roots(extra_ca_file)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NetError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConnector {
            config: Arc::new(config),
            public_only: false,
        })
    }

    /// Dials only public addresses from now on: a host that resolves only
    /// to loopback, private or other special addresses is refused with
    /// [`NetError::PrivateAddress`], and its other addresses are never tried.
    pub fn public_only(mut self) -> Self {
        self.public_only = true;
        self
    }

    /// Whether only public addresses are dialled.
    pub fn is_public_only(&self) -> bool {
        self.public_only
    }

    /// Runs the TLS handshake over `tcp`, verifying the certificate for `host`.
    pub async fn handshake(&self, host: &str, tcp: TcpStream) -> Result<MaybeTls, NetError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| NetError::InvalidName(host.to_owned()))?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        match connector.connect(name, tcp).await {
            Ok(stream) => Ok(MaybeTls::Tls(Box::new(stream))),
            Err(source) => {
                let host = host.to_owned();
                if is_certificate_error(&source) {
                    Err(NetError::Certificate { host, source })
                } else {
                    Err(NetError::Handshake { host, source })
                }
            }
        }
    }
}

/// Whether a handshake error is rustls refusing the peer's certificate.
fn is_certificate_error(e: &io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// The addresses of `host:port` that may be dialled: all of them, or with
/// `public_only` the public ones, refusing a host that has none.
pub async fn resolve(
    host: &str,
    port: u16,
    public_only: bool,
) -> Result<Vec<SocketAddr>, NetError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| NetError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    let any = !resolved.is_empty();
    let dialable: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| !public_only || is_public_ip(addr.ip()))
        .collect();
    if any && dialable.is_empty() {
        return Err(NetError::PrivateAddress {
            host: host.to_owned(),
        });
    }
    Ok(dialable)
}

/// Opens a TCP connection to `host:port` (every resolved address in turn,
/// only the public ones with `public_only`), with TCP keepalive and
/// `TCP_NODELAY` set, within `timeout` overall. The check is made on the
/// addresses actually dialled, so a name re-resolving into a private network
/// later is refused too.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
    public_only: bool,
) -> Result<TcpStream, NetError> {
    let attempt = async {
        let addrs = resolve(host, port, public_only).await?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(source) => NetError::Connect {
                host: host.to_owned(),
                port,
                source,
            },
            None => NetError::Resolve {
                host: host.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            },
        })
    };
    let stream =
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| NetError::Timeout {
                host: host.to_owned(),
                port,
            })??;
    // Failing to tune the socket is not a reason to refuse a working connection.
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL);
    let _ = SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    Ok(stream)
}

/// Connects to `upstream`: TCP, then TLS at once when `security` is
/// [`Security::Tls`]. For [`Security::Starttls`] the stream is returned plain;
/// the protocol asks for the upgrade and calls [`MaybeTls::upgrade`].
pub async fn connect(
    upstream: &Upstream,
    tls: &TlsConnector,
    timeout: Duration,
) -> Result<MaybeTls, NetError> {
    let tcp = connect_tcp(&upstream.host, upstream.port, timeout, tls.public_only).await?;
    match upstream.security {
        Security::Tls => tokio::time::timeout(timeout, tls.handshake(&upstream.host, tcp))
            .await
            .map_err(|_| NetError::Timeout {
                host: upstream.host.clone(),
                port: upstream.port,
            })?,
        Security::Starttls | Security::Plain => Ok(MaybeTls::Plain(tcp)),
    }
}

/// A connection that is either plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum MaybeTls {
    Plain(TcpStream),
    /// Boxed: the rustls connection state is much larger than a `TcpStream`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl MaybeTls {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// Upgrades a plain connection to TLS (after the protocol's STARTTLS).
    /// Any unread plaintext must have been consumed by the caller first.
    pub async fn upgrade(self, tls: &TlsConnector, host: &str) -> Result<MaybeTls, NetError> {
        match self {
            MaybeTls::Plain(tcp) => tls.handshake(host, tcp).await,
            MaybeTls::Tls(_) => Err(NetError::AlreadyTls),
        }
    }

    /// Waits until a read would make progress, without reading. Returns at
    /// once when TLS already holds decrypted data (the socket may then be
    /// silent although bytes are waiting). May return spuriously; a read
    /// after it can still wait. Cancel-safe.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(tcp) => tcp.readable().await,
            MaybeTls::Tls(tls) => {
                let (tcp, state) = tls.get_ref();
                if !state.wants_read() {
                    // Plaintext is buffered (or the peer closed): read now.
                    return Ok(());
                }
                tcp.readable().await
            }
        }
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_builds_with_webpki_roots() {
        assert!(TlsConnector::new(None).is_ok());
    }

    #[test]
    fn missing_ca_file_is_permanent() {
        let err = TlsConnector::new(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn refused_connection_is_transient() {
        // Bind then drop to find a port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = connect_tcp("127.0.0.1", port, Duration::from_secs(5), false)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    #[tokio::test]
    async fn public_only_refuses_loopback_and_private_hosts_without_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for host in [
            "127.0.0.1",
            "localhost",
            "::1",
            "10.0.0.1",
            "169.254.169.254",
        ] {
            let err = connect_tcp(host, port, Duration::from_secs(5), true)
                .await
                .unwrap_err();
            assert!(
                matches!(err, NetError::PrivateAddress { .. }),
                "{host}: {err:?}"
            );
            assert_eq!(err.class(), ErrorClass::Permanent);
        }
        // The listener saw no connection attempt; without the rule it does.
        assert!(
            connect_tcp("127.0.0.1", port, Duration::from_secs(5), false)
                .await
                .is_ok()
        );
        let (_, peer) = listener.accept().await.unwrap();
        let pending = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(listener.poll_accept(cx).is_pending())
        })
        .await;
        assert!(pending, "only the allowed connection arrived (from {peer})");
    }
}
