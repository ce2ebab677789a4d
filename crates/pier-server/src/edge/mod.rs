//! The network edge: who the client is (`client_ip`, behind trusted proxies), the limits on
//! anonymous endpoints, and serving connections with timeouts and a cap (`serve`). It knows
//! neither the engine nor the HTTP layer; the middlewares that answer in the i'mport envelope
//! are `http::edge`.
//! Every limit's default lives in `Config::new`; docs/security/edge.md lists them with their flags.

pub mod buckets;
pub mod serve;

use crate::config::Config;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use buckets::KeyedBuckets;
pub use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

/// Keys one limiter holds at most. 100k keys of at most ~250 bytes is ~25 MB per limiter at
/// worst; past it the least used keys are evicted (see `buckets`).
pub const LIMITER_MAX_KEYS: usize = 100_000;

/// The client's address as the server determined it (`client_ip`), in request extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Parses a `--trusted-proxies` entry: a CIDR (`10.0.0.0/8`, `fd00::/8`) or one address.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is neither a CIDR (10.0.0.0/8) nor an IP address"))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
}

/// One `X-Forwarded-For` element: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(canonical)
}

/// The client's address, the one every limit and log uses: the TCP peer, unless the peer is a
/// trusted proxy; then `X-Forwarded-For` is read from the right (each trusted proxy appends the
/// address it saw) and the first hop that is not itself a trusted proxy is the client. Entries
/// left of it were written by the client and are ignored, so a client cannot choose its
/// address by sending its own header. An unparseable hop ends the walk at the last trusted
/// address (a proxy wrote something we cannot read; the proxy is what we know).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let mut client = canonical(peer);
    if !trusted(client, proxies) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for h in hops.iter().rev() {
        match hop(h) {
            Some(ip) => {
                client = ip;
                if !trusted(ip, proxies) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The key an address is limited under: IPv4 addresses one by one; IPv6 by /64, because one
/// host usually holds a whole /64 and could otherwise rotate through 2^64 addresses.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The request's `ClientIp` (set by `client_addr`; unspecified when it did not run).
pub fn client_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ClientIp>()
        .map(|c| c.0)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// The limits of the anonymous endpoints (browser-facing: the SDK, the windows, the demo).
pub struct AnonLimits {
    epoch: Instant,
    /// `POST /checkout/prepare` per client address and per merchant (`user_code`): each call
    /// writes a payment and a checkout row and opens a PG session.
    prepare_addr: KeyedBuckets<IpAddr>,
    prepare_merchant: KeyedBuckets<String>,
    /// Every other anonymous endpoint, per client address.
    pages_addr: KeyedBuckets<IpAddr>,
}

impl AnonLimits {
    pub fn new(cfg: &Config) -> Self {
        Self {
            epoch: Instant::now(),
            prepare_addr: KeyedBuckets::new(
                cfg.prepare_per_addr_per_sec,
                1000,
                cfg.prepare_per_addr_burst,
                LIMITER_MAX_KEYS,
            ),
            prepare_merchant: KeyedBuckets::new(
                cfg.prepare_per_merchant_per_sec,
                1000,
                cfg.prepare_per_merchant_burst,
                LIMITER_MAX_KEYS,
            ),
            pages_addr: KeyedBuckets::new(
                cfg.anon_per_addr_per_sec,
                1000,
                cfg.anon_per_addr_burst,
                LIMITER_MAX_KEYS,
            ),
        }
    }

    /// Real time, not the engine clock: these limits are about load, which happens in real time.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// A `POST /checkout/prepare` from `client` may go on.
    pub fn prepare_addr_allows(&self, client: IpAddr) -> bool {
        self.prepare_addr.take(&limit_key(client), self.now_ms())
    }

    /// A request to another anonymous endpoint from `client` may go on.
    pub fn pages_addr_allows(&self, client: IpAddr) -> bool {
        self.pages_addr.take(&limit_key(client), self.now_ms())
    }

    /// A `POST /checkout/prepare` for merchant `user_code` may go on.
    pub fn prepare_merchant_allows(&self, user_code: &str) -> bool {
        self.prepare_merchant
            .take(&user_code.to_owned(), self.now_ms())
    }
}

/// `X-Content-Type-Options: nosniff` on every answer, API and pages alike (no answer of Pier's
/// is meant to be sniffed into another type). Nothing in the stack sets a `Server` header.
pub fn nosniff() -> tower_http::set_header::SetResponseHeaderLayer<HeaderValue> {
    tower_http::set_header::SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for x in v {
            h.append("x-forwarded-for", HeaderValue::from_str(x).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| parse_cidr(s).unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_sends() {
        let h = xff(&["9.9.9.9"]);
        assert_eq!(client_ip(ip("1.2.3.4"), &h, &[]), ip("1.2.3.4"));
        assert_eq!(
            client_ip(ip("1.2.3.4"), &h, &nets(&["10.0.0.0/8"])),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn trusted_proxy_gives_the_rightmost_untrusted_hop() {
        let p = nets(&["10.0.0.0/8"]);
        // The client sent a spoofed XFF; the proxy appended the real address.
        let h = xff(&["6.6.6.6, 7.7.7.7, 203.0.113.9"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &p), ip("203.0.113.9"));
        // Two trusted proxies in a row, and split over two header lines.
        let h = xff(&["6.6.6.6, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &p), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxy_without_header_or_with_garbage() {
        let p = nets(&["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &p),
            ip("10.0.0.1")
        );
        let h = xff(&["6.6.6.6, not-an-ip"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &p), ip("10.0.0.1"));
        let h = xff(&["6.6.6.6, junk, 10.2.2.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &p), ip("10.2.2.2"));
        // Every hop trusted: the leftmost is the best we know.
        let h = xff(&["10.3.3.3, 10.2.2.2"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &p), ip("10.3.3.3"));
    }

    #[test]
    fn ports_ipv6_and_mapped_addresses() {
        let p = nets(&["::1/128", "10.0.0.0/8"]);
        let h = xff(&["[2001:db8::1]:4711"]);
        assert_eq!(client_ip(ip("::1"), &h, &p), ip("2001:db8::1"));
        let h = xff(&["198.51.100.7:80"]);
        assert_eq!(client_ip(ip("::1"), &h, &p), ip("198.51.100.7"));
        // A v4-mapped peer matches a v4 CIDR.
        let h = xff(&["198.51.100.7"]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &h, &p), ip("198.51.100.7"));
    }

    #[test]
    fn cidr_parsing_and_limit_keys() {
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert_eq!(parse_cidr("127.0.0.1").unwrap().prefix_len(), 32);
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("proxy").is_err());
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(limit_key(ip("1.2.3.4")), limit_key(ip("1.2.3.5")));
    }
}
