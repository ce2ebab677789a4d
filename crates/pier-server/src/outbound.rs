//! The one HTTP client for every request Pier's server makes to a URL someone else supplied
//! (webhook targets, notice_url, confirm_url). It keeps server-side request forgery out:
//!
//! - only `http`/`https` URLs with a host;
//! - every address a host name resolves to is checked ([`forbidden`]) and the connection goes
//!   only to checked addresses: the client's resolver ([`CheckedResolver`]) is the only one
//!   reqwest uses, and it refuses the whole name if any of its addresses is forbidden, so a
//!   name cannot rebind between the check and the connect;
//! - IP-literal hosts (reqwest does not call the resolver for them) are checked up front, after
//!   the URL parser normalised them (`[::ffff:7f00:1]`, `2130706433` and `0x7f.1` all become the
//!   address they mean);
//! - `localhost` and `*.localhost` (with or without a trailing dot) are loopback by definition
//!   (RFC 6761) and refused without asking DNS;
//! - no proxy from the environment, no redirects, a connect timeout and a total deadline, and a
//!   response body read to at most [`MAX_BODY_BYTES`].
//!
//! Errors are typed: [`OutboundError::Refused`] says why a target was not contacted,
//! [`OutboundError::Failed`] that contacting it failed. Neither carries what the target answered.
//! `allow_private` (`--outbound-allow-private`, old name `--webhook-allow-private`) lifts the
//! address check for local development and tests; scheme and host checks always apply.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Most bytes of a response body that are read; the rest is dropped unread. A webhook's answer
/// is ignored and a confirm_url's `{"reason": …}` needs well under 1 KiB, so 16 KiB bounds the
/// memory one slow or huge answer can take (16 webhook slots ⇒ at most 256 KiB in flight).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The flag named in every refusal that it would lift.
pub const ALLOW_FLAG: &str = "--outbound-allow-private";

/// Why an outbound request did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The target was not contacted: its URL or one of its addresses is not allowed.
    Refused { reason: String },
    /// The target was allowed but contacting it failed (timeout, connect error, …).
    Failed { reason: String },
}

impl OutboundError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, OutboundError::Failed { reason } if reason.starts_with("timeout"))
    }
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::Refused { reason } => write!(f, "refused: {reason}"),
            OutboundError::Failed { reason } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for OutboundError {}

/// What an allowed target answered: its status and at most [`MAX_BODY_BYTES`] of its body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The kind of address `ip` is when a request must not go there, `None` for a public unicast
/// address. IPv4 embedded in IPv6 (mapped `::ffff:0:0/96`, compatible `::/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the IPv4 address it carries.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let kind = if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if ip.is_unspecified() || o[0] == 0 {
        "'this network' (0.0.0.0/8)"
    } else if ip.is_broadcast() {
        "broadcast"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_documentation() {
        "documentation"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (CGNAT 100.64.0.0/10)"
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        "benchmarking (198.18.0.0/15)"
    } else if o[0] >= 240 {
        "reserved (240.0.0.0/4)"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        // IETF protocol assignments (192.0.0.0/24): DS-Lite, NAT64 discovery, …
        "protocol-assignment (192.0.0.0/24)"
    } else if o[0] == 192 && o[1] == 88 && o[2] == 99 {
        "6to4 relay anycast (192.88.99.0/24)"
    } else {
        return None;
    };
    Some(kind)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d (IPv4-compatible, deprecated).
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        return forbidden_v4(embedded_v4(s[6], s[7])).or(if s[5] == 0 {
            // Deprecated; no public host is reached this way.
            Some("IPv4-compatible")
        } else {
            None
        });
    }
    // NAT64 well-known prefix 64:ff9b::/96: a translator would connect to the IPv4 it carries.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded_v4(s[6], s[7]));
    }
    // Local-use NAT64 64:ff9b:1::/48 (RFC 8215) only reaches what an operator's own
    // translator reaches.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    // 6to4 2002:V4::/48 is routed to the IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return forbidden_v4(embedded_v4(s[1], s[2]));
    }
    let kind = if (s[0] & 0xfe00) == 0xfc00 {
        "unique-local (fc00::/7)"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local (fe80::/10)"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "site-local (fec0::/10)"
    } else if (s[0] & 0xff00) == 0xff00 {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation (2001:db8::/32)"
    } else if s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0 {
        "benchmarking (2001:2::/48)"
    } else if s[0] == 0x2001 && s[1] == 0 {
        // Teredo 2001::/32 tunnels to an obfuscated IPv4 address that cannot be checked here.
        "Teredo (2001::/32)"
    } else if s[..4] == [0x100, 0, 0, 0] {
        "discard-only (100::/64)"
    } else {
        return None;
    };
    Some(kind)
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
}

/// Why `ip` is refused, naming the flag that lifts it.
fn address_reason(ip: IpAddr, kind: &str) -> String {
    format!("{ip} is a {kind} address (allow with {ALLOW_FLAG})")
}

/// True for `localhost`, `*.localhost`, with or without a trailing dot (RFC 6761 §6.3).
fn is_localhost_name(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// Checks a target URL before anything is sent: parse, http(s) only, a host, and (unless
/// `allow_private`) no forbidden IP literal and no `localhost` name. Host names are checked
/// again, address by address, when the request resolves them.
pub fn check_url(url: &str, allow_private: bool) -> Result<url::Url, OutboundError> {
    let refuse = |reason: String| OutboundError::Refused { reason };
    let u = url::Url::parse(url).map_err(|e| refuse(format!("invalid URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(refuse(format!("scheme {:?}: http(s) only", u.scheme())));
    }
    if !u.username().is_empty() || u.password().is_some() {
        // Credentials in a URL someone else supplied would be sent to the target as-is.
        return Err(refuse("credentials in the URL are not allowed".into()));
    }
    let ip = match u.host() {
        None => return Err(refuse("URL has no host".into())),
        Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        Some(url::Host::Domain(d)) => {
            if !allow_private && is_localhost_name(d) {
                return Err(refuse(format!(
                    "{d} is a loopback name (allow with {ALLOW_FLAG})"
                )));
            }
            None
        }
    };
    if let (Some(ip), false) = (ip, allow_private) {
        if let Some(kind) = forbidden(ip) {
            return Err(refuse(address_reason(ip, kind)));
        }
    }
    Ok(u)
}

/// The resolver of the outbound client: resolves with the system resolver and hands reqwest
/// only checked addresses. A name with any forbidden address is refused whole (a name that
/// mixes public and internal addresses is an attack or a misconfiguration either way).
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow {
                for a in &addrs {
                    if let Some(kind) = forbidden(a.ip()) {
                        let e: Box<dyn std::error::Error + Send + Sync> =
                            Box::new(OutboundError::Refused {
                                reason: format!(
                                    "{host} resolves to {}, a {kind} address (allow with {ALLOW_FLAG})",
                                    a.ip()
                                ),
                            });
                        return Err(e);
                    }
                }
            }
            if addrs.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} has no address").into();
                return Err(e);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The outbound client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    allow_private: bool,
}

impl Outbound {
    /// A client with `connect_timeout` (resolution and TCP/TLS set-up) and `deadline` (the
    /// whole request, body read included).
    pub fn new(
        connect_timeout: Duration,
        deadline: Duration,
        allow_private: bool,
        user_agent: &str,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(deadline)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .user_agent(user_agent)
            .build()?;
        Ok(Self {
            http,
            allow_private,
        })
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// POSTs `body` with `headers` to `url` and reads at most [`MAX_BODY_BYTES`] of the answer.
    /// Any HTTP status is an `Ok` answer; redirects are answers too, never followed.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, OutboundError> {
        let u = check_url(url, self.allow_private)?;
        let mut req = self.http.post(u).body(body);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let mut res = req.send().await.map_err(|e| classify(&e))?;
        let status = res.status().as_u16();
        let mut body = Vec::new();
        // Read in chunks up to the bound; the rest is dropped with the connection.
        loop {
            match res.chunk().await {
                Ok(Some(c)) => {
                    let room = MAX_BODY_BYTES - body.len();
                    body.extend_from_slice(&c[..c.len().min(room)]);
                    if body.len() >= MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                // The status arrived; a body cut short is just a shorter body.
                Err(_) => break,
            }
        }
        Ok(Answer { status, body })
    }
}

/// Turns a reqwest error into a refusal (our resolver said no) or a failure, without anything
/// the target sent.
fn classify(e: &reqwest::Error) -> OutboundError {
    use std::error::Error as _;
    let mut src = e.source();
    while let Some(inner) = src {
        if let Some(OutboundError::Refused { reason }) = inner.downcast_ref::<OutboundError>() {
            return OutboundError::Refused {
                reason: reason.clone(),
            };
        }
        src = inner.source();
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "request error"
    };
    // The chain of causes, without reqwest's own line (it repeats the URL).
    let mut s = kind.to_owned();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    OutboundError::Failed {
        reason: s.chars().take(500).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forbidden_addresses() {
        for a in [
            // IPv4
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "250.1.2.3",
            "192.0.0.8",
            "192.88.99.1",
            // IPv6
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:2::1",
            "2001:0:4136:e378::1",
            "100::1",
            // IPv4 inside IPv6
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(forbidden(ip(a)).is_some(), "{a} must be forbidden");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(forbidden(ip(a)), None, "{a} is public");
        }
    }

    #[test]
    fn url_checks() {
        let refused = |u: &str| matches!(check_url(u, false), Err(OutboundError::Refused { .. }));
        // The bypasses of the textual check, and the URL parser's other spellings of 127.0.0.1.
        for u in [
            "http://[::ffff:127.0.0.1]:8080/x",
            "http://[::ffff:7f00:1]:8080/x",
            "http://localhost.:8080/x",
            "http://LOCALHOST/x",
            "http://api.localhost/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://0177.0.0.1/x",
            "http://127.1/x",
            "http://127.0.0.1./x",
            "http://[0:0:0:0:0:ffff:7f00:0001]/x",
            "http://[::]/x",
            "http://0/x",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(refused(u), "{u} must be refused");
        }
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
        assert!(check_url("http://localhost:9/", true).is_ok());
        // Allowing private targets never allows another scheme.
        assert!(check_url("file:///etc/passwd", true).is_err());
        let Err(OutboundError::Refused { reason }) = check_url("http://[::ffff:7f00:1]/", false)
        else {
            panic!("refused")
        };
        assert_eq!(
            reason,
            "::ffff:127.0.0.1 is a loopback address (allow with --outbound-allow-private)"
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_resolution() {
        // `localhost` resolved by the system resolver (no external DNS): the check_url shortcut
        // is bypassed by calling the resolver directly.
        use reqwest::dns::Resolve;
        let r = CheckedResolver {
            allow_private: false,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match r.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        let refused = err.downcast_ref::<OutboundError>();
        // e.g. "localhost resolves to 127.0.0.1, a loopback address (allow with …)".
        assert!(
            matches!(refused, Some(OutboundError::Refused { reason }) if reason.contains("loopback") && reason.contains(ALLOW_FLAG)),
            "{err}"
        );
        let r = CheckedResolver {
            allow_private: true,
        };
        assert!(r.resolve("localhost".parse().unwrap()).await.is_ok());
    }

    /// A server on 127.0.0.1 that answers every request with `status`, `location` and `body`,
    /// and counts the requests.
    async fn serve(
        status: u16,
        location: Option<String>,
        body: Vec<u8>,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let (h, location, body) = (h.clone(), location.clone(), body.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let mut res = axum::response::Response::new(axum::body::Body::from(body));
                *res.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                if let Some(l) = location {
                    res.headers_mut()
                        .insert("location", axum::http::HeaderValue::from_str(&l).unwrap());
                }
                res
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (port, hits)
    }

    fn client(allow_private: bool) -> Outbound {
        Outbound::new(
            Duration::from_secs(2),
            Duration::from_secs(5),
            allow_private,
            "test",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn answers_are_bounded_and_redirects_not_followed() {
        use std::sync::atomic::Ordering;
        // 1 MiB answer: at most MAX_BODY_BYTES of it is read.
        let (big, _) = serve(400, None, vec![b'x'; 1 << 20]).await;
        let a = client(true)
            .post(&format!("http://127.0.0.1:{big}/"), &[], b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(a.status, 400);
        assert_eq!(a.body.len(), MAX_BODY_BYTES);
        // A redirect is an answer; its target is never asked.
        let (target, target_hits) = serve(200, None, b"ok".to_vec()).await;
        let (redirect, _) = serve(
            307,
            Some(format!("http://127.0.0.1:{target}/internal")),
            Vec::new(),
        )
        .await;
        let a = client(true)
            .post(&format!("http://127.0.0.1:{redirect}/"), &[], Vec::new())
            .await
            .unwrap();
        assert_eq!(a.status, 307);
        assert_eq!(target_hits.load(Ordering::SeqCst), 0);
        // Without the flag, the same loopback target is refused before any connection.
        let (port, hits) = serve(200, None, Vec::new()).await;
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://localhost.:{port}/"),
        ] {
            let e = client(false).post(&url, &[], Vec::new()).await.unwrap_err();
            assert!(
                matches!(&e, OutboundError::Refused { reason } if reason.contains(ALLOW_FLAG)),
                "{url}: {e:?}"
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        // A closed port is a failure, not a refusal.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = client(true)
            .post(&format!("http://127.0.0.1:{closed}/"), &[], Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::Failed { .. }), "{e:?}");
    }
}
