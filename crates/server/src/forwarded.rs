//! The client behind trusted proxies. `Forwarded` (RFC 7239) and `X-Forwarded-For` /
//! `X-Forwarded-Proto` are believed only when the connection comes from a configured proxy
//! (`trusted_proxies`); from anyone else they are ignored, so a client cannot choose its own
//! `aws:SourceIp` or look as if it came over TLS.
//!
//! Each proxy appends the address it received the request from, so the list reads client first,
//! nearest proxy last. Walking it from the right, every hop that is itself a trusted proxy is
//! passed over; the first that is not is the client (what the last trusted proxy saw). A hop
//! that is not an address (`unknown`, an obfuscated name) ends the walk at the proxy that wrote
//! it.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// What the proxies say about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    pub ip: IpAddr,
    /// The client's request reached the first proxy over TLS (`proto=https`); `None` when no
    /// trusted proxy said.
    pub https: Option<bool>,
}

/// The client of a request that arrived from `peer`, with `trusted` the proxy networks.
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Forwarded {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Forwarded { ip: peer, https: None };
    }
    let hops = forwarded_elements(headers).unwrap_or_else(|| x_forwarded(headers));
    let mut chosen = Forwarded { ip: peer, https: None };
    for hop in hops.iter().rev() {
        match hop.ip {
            Some(ip) if is_trusted(&chosen.ip) => {
                chosen = Forwarded { ip, https: hop.proto.as_deref().map(|p| p.eq_ignore_ascii_case("https")) };
            }
            _ => break,
        }
    }
    chosen
}

/// One hop: the address a proxy received the request from, and over what protocol.
struct Hop {
    ip: Option<IpAddr>,
    proto: Option<String>,
}

/// The `for=` and `proto=` of every `Forwarded` element, in order; `None` without the header.
fn forwarded_elements(headers: &HeaderMap) -> Option<Vec<Hop>> {
    let mut values = headers.get_all(http::header::FORWARDED).iter().peekable();
    values.peek()?;
    let elements = values.filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    let hops = elements
        .map(|element| {
            let mut hop = Hop { ip: None, proto: None };
            for pair in element.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else { continue };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.ip = parse_node(value),
                    "proto" => hop.proto = Some(value.to_owned()),
                    _ => {}
                }
            }
            hop
        })
        .collect();
    Some(hops)
}

/// `X-Forwarded-For: client, proxy1, proxy2` over every occurrence of the header, with
/// `X-Forwarded-Proto` paired hop by hop when it has as many values, else (one value, set by
/// the nearest proxy) for the right-most hop only.
fn x_forwarded(headers: &HeaderMap) -> Vec<Hop> {
    let list = |name: &str| -> Vec<String> {
        let values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
        values.flat_map(|v| v.split(',')).map(|v| v.trim().to_owned()).collect()
    };
    let addresses = list("x-forwarded-for");
    let mut protos = list("x-forwarded-proto");
    if protos.len() != addresses.len() {
        let last = protos.pop();
        protos = vec![String::new(); addresses.len().saturating_sub(1)];
        protos.extend(last.filter(|_| !addresses.is_empty()));
    }
    addresses
        .iter()
        .zip(protos.into_iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(address, proto)| Hop { ip: parse_node(address), proto: proto.filter(|p| !p.is_empty()) })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https")]);
        assert_eq!(
            client(ip("198.51.100.7"), &spoofed, &nets(&["10.0.0.0/8"])),
            Forwarded { ip: ip("198.51.100.7"), https: None }
        );
        assert_eq!(client(ip("10.0.0.2"), &spoofed, &[]).ip, ip("10.0.0.2"), "no proxy is trusted by default");
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client put a fake first hop; the trusted proxy appended what it saw.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9"), ("x-forwarded-for", "10.0.0.5")]);
        assert_eq!(client(ip("10.0.0.2"), &chain, &trusted).ip, ip("203.0.113.9"));
        let all_trusted = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(client(ip("10.0.0.2"), &all_trusted, &trusted).ip, ip("10.1.1.1"));
        let unknown = headers(&[("x-forwarded-for", "203.0.113.9, unknown")]);
        assert_eq!(client(ip("10.0.0.2"), &unknown, &trusted).ip, ip("10.0.0.2"), "garbage ends the walk");
        assert_eq!(client(ip("10.0.0.2"), &headers(&[]), &trusted).ip, ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_wins_and_says_the_protocol_of_the_client_s_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let both = headers(&[
            ("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.9;proto=http"#),
            ("x-forwarded-for", "203.0.113.50"),
        ]);
        assert_eq!(
            client(ip("10.0.0.2"), &both, &trusted),
            Forwarded { ip: ip("2001:db8:cafe::17"), https: Some(true) }
        );
        // A client's own element claiming https counts for nothing: the trusted proxy's says http.
        let claimed = headers(&[("forwarded", "for=198.51.100.1;proto=https, for=203.0.113.7;proto=http")]);
        assert_eq!(client(ip("10.0.0.2"), &claimed, &trusted), Forwarded { ip: ip("203.0.113.7"), https: Some(false) });
        let outside = headers(&[("forwarded", "for=192.0.2.60:8080;proto=http;by=203.0.113.43")]);
        assert_eq!(client(ip("10.0.0.2"), &outside, &trusted), Forwarded { ip: ip("192.0.2.60"), https: Some(false) });
        let proto = headers(&[("x-forwarded-for", "192.0.2.1"), ("x-forwarded-proto", "https")]);
        assert_eq!(client(ip("10.0.0.2"), &proto, &trusted).https, Some(true));
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4, 192.0.2.1"), ("x-forwarded-proto", "http")]);
        assert_eq!(client(ip("10.0.0.2"), &spoof, &trusted), Forwarded { ip: ip("192.0.2.1"), https: Some(false) });
    }

    #[test]
    fn addresses_are_read_in_every_form_proxies_write() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("[2001:db8::1]:80"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("_hidden"), None);
        assert_eq!(parse_node("unknown"), None);
    }
}
