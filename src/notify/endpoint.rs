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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::error::ErrorClass;

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

/// Whether `ip` is a globally reachable unicast address: not loopback,
/// private, shared (CGNAT), link-local, unique-local, multicast, unspecified,
/// documentation, benchmarking, reserved, or an IPv6 form of one of those
/// (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", 0.0.0.0
        || a == 10 // RFC 1918
        || a == 127 // loopback
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10 shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (b & 0xf0) == 16) // RFC 1918
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // RFC 1918
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4); // ::ffff:a.b.c.d
    }
    if s[..6] == [0; 6] {
        return false; // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64 well-known prefix: as public as the IPv4 address it carries.
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4: the IPv4 address sits in bits 16..48.
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    // 2001::/23 holds IETF protocol assignments (Teredo, ORCHID, benchmarking…),
    // 2001:db8::/32 and 3fff::/20 (RFC 9637) are for documentation.
    let ietf_2001 = s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0xdb8);
    let documentation_3fff = s[0] == 0x3fff && s[1] < 0x1000;
    // Only 2000::/3 is global unicast; this also excludes 64:ff9b:1::/48,
    // 100::/64, 5f00::/16, fc00::/7, fe80::/10, fec0::/10 and ff00::/8.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    global_unicast && !ietf_2001 && !documentation_3fff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn public_addresses_are_public() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "142.250.185.74",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2001:4860:4860::8888",
            "2a00:1450:4001:80b::200a",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
            "2001:200::1",
        ] {
            assert!(is_public_ip(ip(text)), "{text} should be public");
        }
    }

    #[test]
    fn private_and_special_addresses_are_not() {
        for text in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "100::1",
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:10::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(!is_public_ip(ip(text)), "{text} should not be public");
        }
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
