//! Which address a request came from, for limits kept per client.
//!
//! The client is the peer of the connection, unless the peer is one of
//! `api.trusted_proxies` (a TLS-terminating proxy in front of the gateway).
//! Then it is the right-most address of `X-Forwarded-For` that is not a
//! trusted proxy: each proxy appends the address it was connected from, so
//! everything left of that was written by the client itself and proves
//! nothing. `X-Forwarded-For` from any other peer is ignored, so a client
//! cannot pick its own address.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::AppState;

/// The client's address (see the module's description).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        // Without connection info (a router served without it) every
        // request counts as one client: stricter, never looser.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(ClientIp(client_ip(
            peer,
            &forwarded,
            &state.config.api.trusted_proxies,
        )))
    }
}

/// The client behind `peer`, given the `X-Forwarded-For` header lines in
/// the order they came.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.contains(&ip.to_canonical());
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .rev();
    for hop in hops {
        // Anything not an address (a port, garbage) ends the walk at the
        // last proxy that was trusted.
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// The key a client is counted by: an IPv4 client by its address, an IPv6
/// one by its /64 (one host usually has a whole /64 to pick addresses
/// from).
pub fn client_key(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxy = [ip("127.0.0.1")];
        assert_eq!(
            client_ip(ip("198.51.100.7"), &["203.0.113.1"], &proxy),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("198.51.100.7"), &["203.0.113.1"], &[]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = [ip("127.0.0.1"), ip("10.0.0.2")];
        // The client wrote the first entry itself: it is not believed.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                &["6.6.6.6, 198.51.100.7", "10.0.0.2"],
                &proxies
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &["2001:db8::5"], &proxies),
            ip("2001:db8::5")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("127.0.0.1"), &[], &proxies), ip("127.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &["198.51.100.7, junk"], &proxies),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &["198.51.100.7, junk, 10.0.0.2"], &proxies),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let proxies = [ip("127.0.0.1")];
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &["::ffff:198.51.100.7"], &proxies),
            ip("198.51.100.7")
        );
    }
}
