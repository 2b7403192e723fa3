//! The guard that keeps push endpoints out of private networks (SSRF).
//!
//! A push endpoint is a URL a client hands us, and the gateway will POST to it
//! for as long as the subscription lives. Unless private endpoints are
//! explicitly allowed (tests, a self-hosted push server on the LAN), an
//! endpoint must be `https`, carry no credentials, and reach only public
//! addresses: an IP literal is checked when the endpoint is registered and
//! again before each send, and host names are resolved through
//! [`PublicOnlyResolver`], which drops every non-public address, so a name
//! that resolves (or later re-resolves) into a private network is refused at
//! connect time too.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::error::ErrorClass;
use crate::public_ip::is_public_ip;

/// How long a registration-time DNS check may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an endpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not a URL at all.
    #[error("push endpoint is not a valid URL: {0}")]
    Invalid(String),
    /// A scheme other than `https` (or `http` when private endpoints are allowed).
    #[error("push endpoint must use https, not {0}")]
    InsecureScheme(String),
    /// `user:password@` in the URL.
    #[error("push endpoint must not contain credentials")]
    Credentials,
    /// No host to connect to.
    #[error("push endpoint has no host")]
    NoHost,
    /// An IP literal that is not a public address.
    #[error("push endpoint address {0} is not public")]
    PrivateAddress(IpAddr),
    /// The host name resolves only to non-public addresses.
    #[error("push endpoint host {0} resolves to no public address")]
    ResolvesPrivate(String),
    /// The host name did not resolve (yet).
    #[error("push endpoint host {host} did not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

impl EndpointError {
    /// A name that does not resolve may resolve later; everything else is final.
    pub fn class(&self) -> ErrorClass {
        match self {
            EndpointError::Unresolvable { .. } => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// Checks an endpoint's form: it parses; it is `https` (or `http` when
/// `allow_private`); it has a host and no userinfo; and, unless
/// `allow_private`, an IP-literal host is a public address. Host names are
/// not resolved here; see [`check_endpoint_resolves`].
pub fn check_endpoint(url: &str, allow_private: bool) -> Result<Url, EndpointError> {
    let parsed = Url::parse(url).map_err(|err| EndpointError::Invalid(err.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        other => return Err(EndpointError::InsecureScheme(other.to_owned())),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(EndpointError::Credentials);
    }
    let host = parsed.host().ok_or(EndpointError::NoHost)?;
    if !allow_private {
        let literal = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal.filter(|ip| !is_public_ip(*ip)) {
            return Err(EndpointError::PrivateAddress(ip));
        }
    }
    Ok(parsed)
}

/// [`check_endpoint`], and, unless `allow_private`, a DNS lookup showing the
/// host name reaches at least one public address (the others are never used).
pub async fn check_endpoint_resolves(url: &str, allow_private: bool) -> Result<Url, EndpointError> {
    let parsed = check_endpoint(url, allow_private)?;
    if allow_private {
        return Ok(parsed);
    }
    if let Some(url::Host::Domain(host)) = parsed.host() {
        let port = parsed.port_or_known_default().unwrap_or(443);
        let unresolvable = |reason: String| EndpointError::Unresolvable {
            host: host.to_owned(),
            reason,
        };
        let addrs = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| unresolvable("timed out".into()))?
            .map_err(|err| unresolvable(err.to_string()))?;
        if !addrs.into_iter().any(|addr| is_public_ip(addr.ip())) {
            return Err(EndpointError::ResolvesPrivate(host.to_owned()));
        }
    }
    Ok(parsed)
}

/// Resolves host names for push requests and keeps only public addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnlyResolver;

/// The error a connection attempt fails with when a name resolves only to
/// non-public addresses; [`crate::notify::client`] recognizes it in the chain.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to no public address")]
pub struct BlockedAddress {
    pub host: String,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = resolved.filter(|a| is_public_ip(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(BlockedAddress { host }) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn https_endpoints_with_public_or_named_hosts_pass() {
        for url in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
            "https://push.example.org:8443/up/xyz",
            "https://8.8.8.8/push",
            "https://[2001:4860:4860::8888]/push",
        ] {
            assert!(check_endpoint(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn endpoints_are_refused_for_the_right_reason() {
        let refused = |url| check_endpoint(url, false).unwrap_err();
        assert!(matches!(refused("not a url"), EndpointError::Invalid(_)));
        assert_eq!(
            refused("http://push.example.org/x"),
            EndpointError::InsecureScheme("http".into())
        );
        assert_eq!(
            refused("ftp://push.example.org/x"),
            EndpointError::InsecureScheme("ftp".into())
        );
        assert_eq!(
            refused("https://user:pw@push.example.org/"),
            EndpointError::Credentials
        );
        assert_eq!(
            refused("https://user@push.example.org/"),
            EndpointError::Credentials
        );
        assert_eq!(
            refused("https://127.0.0.1/x"),
            EndpointError::PrivateAddress(ip("127.0.0.1"))
        );
        // The URL parser normalizes the odd IPv4 spellings before we look.
        assert_eq!(
            refused("https://2130706433/x"),
            EndpointError::PrivateAddress(ip("127.0.0.1"))
        );
        assert_eq!(
            refused("https://0x7f.1/x"),
            EndpointError::PrivateAddress(ip("127.0.0.1"))
        );
        assert_eq!(
            refused("https://[::ffff:10.0.0.1]/x"),
            EndpointError::PrivateAddress(ip("::ffff:10.0.0.1"))
        );
        assert_eq!(
            refused("https://[fd00::1]:8443/x"),
            EndpointError::PrivateAddress(ip("fd00::1"))
        );
        assert_eq!(
            refused("https://169.254.169.254/latest/meta-data"),
            EndpointError::PrivateAddress(ip("169.254.169.254"))
        );
        assert!(matches!(
            refused("data:text/plain,hi"),
            EndpointError::InsecureScheme(_)
        ));
        assert_eq!(
            refused("https://127.0.0.1/x").class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn allowing_private_endpoints_admits_http_and_loopback_but_not_credentials() {
        assert!(check_endpoint("http://127.0.0.1:8080/push/1", true).is_ok());
        assert!(check_endpoint("https://[::1]/push/1", true).is_ok());
        assert!(check_endpoint("http://localhost/push", true).is_ok());
        assert_eq!(
            check_endpoint("http://a:b@127.0.0.1/", true).unwrap_err(),
            EndpointError::Credentials
        );
        assert!(matches!(
            check_endpoint("ftp://127.0.0.1/", true),
            Err(EndpointError::InsecureScheme(_))
        ));
    }

    #[tokio::test]
    async fn registration_refuses_names_that_resolve_to_loopback() {
        assert_eq!(
            check_endpoint_resolves("https://localhost/push", false).await,
            Err(EndpointError::ResolvesPrivate("localhost".into()))
        );
        assert!(check_endpoint_resolves("http://localhost/push", true)
            .await
            .is_ok());
        // IP literals need no lookup.
        assert!(check_endpoint_resolves("https://8.8.8.8/push", false)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_with_only_private_addresses() {
        let name: Name = "localhost".parse().unwrap();
        let err = match PublicOnlyResolver.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        assert!(err.downcast_ref::<BlockedAddress>().is_some(), "{err}");
    }
}
