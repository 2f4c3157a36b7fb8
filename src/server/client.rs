//! Who is on the other end of a request: the TCP peer, or — only when that peer is a trusted
//! proxy — the client address and scheme the proxy forwarded (`Forwarded`, `X-Forwarded-For`,
//! `X-Forwarded-Proto`). From anyone else those headers are ignored, so forging them never
//! escapes a rate limit.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use ipnet::IpNet;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The client as far as this server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Used for rate limits only; never stored or logged.
    pub ip: IpAddr,
    /// Did the browser reach us (or the trusted proxy in front of us) over HTTPS?
    pub https: bool,
}

/// Works out the client of one request. `tls`: the connection itself is TLS.
pub fn resolve(trusted: &[IpNet], peer: IpAddr, tls: bool, headers: &HeaderMap) -> Client {
    let peer = peer.to_canonical();
    let direct = Client { ip: peer, https: tls };
    if !is_trusted(trusted, peer) {
        return direct;
    }
    let ip = match forwarded_elements(headers) {
        Some(elements) => rightmost_untrusted(trusted, peer, elements.iter().map(|e| e.for_.as_deref())),
        None => rightmost_untrusted(trusted, peer, list(headers, &X_FORWARDED_FOR).map(Some)),
    };
    let proto = match forwarded_elements(headers) {
        Some(elements) => elements.into_iter().rev().find_map(|e| e.proto),
        None => list(headers, &X_FORWARDED_PROTO).last().map(str::to_owned),
    };
    let https = match proto {
        Some(p) => p.eq_ignore_ascii_case("https"),
        None => tls,
    };
    Client { ip, https }
}

/// Makes the forwarding headers say what this server concluded: `X-Forwarded-Proto` is set to
/// the resolved scheme and the address headers are removed, so nothing further in can read a
/// value a stranger wrote.
pub fn normalise_headers(headers: &mut HeaderMap, client: Client) {
    headers.remove(&X_FORWARDED_FOR);
    headers.remove(&FORWARDED);
    let scheme = if client.https { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
}

pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// Walks the hops from the nearest one outwards; the first one that is not a trusted proxy is
/// the client. A hop that is not an address (`unknown`, an obfuscated name) stops the walk at the
/// proxy that reported it, so a garbled header can only make the client look like that proxy.
fn rightmost_untrusted<'a>(
    trusted: &[IpNet],
    peer: IpAddr,
    hops: impl DoubleEndedIterator<Item = Option<&'a str>>,
) -> IpAddr {
    let mut client = peer;
    for hop in hops.rev() {
        let Some(ip) = hop.and_then(parse_node) else {
            return client;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            return ip;
        }
    }
    client
}

/// Comma-separated values of every instance of a header, trimmed, in order.
fn list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl DoubleEndedIterator<Item = &'a str> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    values.into_iter()
}

#[derive(Debug, Default)]
struct Element {
    for_: Option<String>,
    proto: Option<String>,
}

/// The elements of RFC 7239 `Forwarded` headers, or `None` when there are none.
fn forwarded_elements(headers: &HeaderMap) -> Option<Vec<Element>> {
    let elements: Vec<Element> = list(headers, &FORWARDED)
        .map(|element| {
            let mut e = Element::default();
            for pair in element.split(';') {
                let Some((k, v)) = pair.split_once('=') else { continue };
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => e.for_ = Some(v),
                    "proto" => e.proto = Some(v),
                    _ => {}
                }
            }
            e
        })
        .collect();
    (!elements.is_empty()).then_some(elements)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok().map(|ip: IpAddr| ip.to_canonical());
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const PROXY: &str = "10.0.0.5";

    #[test]
    fn untrusted_peers_are_taken_at_their_word_only_for_themselves() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        let c = resolve(&nets(&["10.0.0.0/8"]), "198.51.100.7".parse().unwrap(), false, &h);
        assert_eq!(c, Client { ip: "198.51.100.7".parse().unwrap(), https: false });
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The visitor forged "6.6.6.6"; the proxy appended the address it saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.1.1"), ("x-forwarded-proto", "https")]);
        let c = resolve(&trusted, PROXY.parse().unwrap(), false, &h);
        assert_eq!(c, Client { ip: "203.0.113.9".parse().unwrap(), https: true });
    }

    #[test]
    fn forwarded_wins_and_understands_ports_and_ipv6() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("forwarded", "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https"),
            ("forwarded", "for=10.0.0.9:1234;proto=http"),
        ]);
        let c = resolve(&trusted, PROXY.parse().unwrap(), false, &h);
        assert_eq!(c.ip, "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
        assert!(!c.https, "the nearest proxy's proto counts");
    }

    #[test]
    fn garbage_hops_stop_at_the_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, unknown")]);
        assert_eq!(
            resolve(&trusted, PROXY.parse().unwrap(), true, &h),
            Client { ip: PROXY.parse().unwrap(), https: true }
        );
        let h = headers(&[("x-forwarded-for", "10.0.0.7")]);
        assert_eq!(resolve(&trusted, PROXY.parse().unwrap(), false, &h).ip, "10.0.0.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_cidrs() {
        let trusted = nets(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let c = resolve(&trusted, "::ffff:127.0.0.1".parse().unwrap(), false, &h);
        assert_eq!(c.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }
}
