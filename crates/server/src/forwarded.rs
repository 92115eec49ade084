//! The client behind trusted proxies. Forwarding headers are believed only when the connection
//! comes from a configured proxy (`trusted_proxies`); from anyone else they are ignored, so a
//! client cannot choose its own `aws:SourceIp` or look as if it came over TLS.
//!
//! Only the header the proxies are configured to write is read (`forwarded_header`:
//! `X-Forwarded-For`, or RFC 7239 `Forwarded`): proxies pass the other one through from the
//! client unchanged. Each proxy appends the address it received the request from, so the list
//! reads client first, nearest proxy last. Walking it from the right, every hop that is itself a
//! trusted proxy is passed over; the first that is not is the client (what the last trusted proxy
//! saw). A value that cannot be read (not ASCII, not an address, `unknown`) makes the request
//! malformed: falling back to the proxy's own address would give a client the proxy's network.
//! The protocol (`X-Forwarded-Proto`, `proto=`) counts only where the operator says the proxies
//! set it (`trust_forwarded_proto`), and for `X-Forwarded-Proto` only paired hop for hop.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Which proxies are believed, and what they write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    pub networks: Vec<IpNet>,
    pub header: ForwardedHeader,
    /// Whether the proxies set the protocol the client used (so that it can be believed).
    pub proto: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=...;proto=...`.
    Forwarded,
}

/// What the proxies say about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    pub ip: IpAddr,
    /// The client's request reached the first trusted proxy over TLS; `None` when none said.
    pub https: Option<bool>,
}

/// A forwarding header from a trusted proxy that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl TrustedProxies {
    /// Whether `ip` (canonical) is one of the proxies.
    pub fn trusts(&self, ip: &IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(ip))
    }
}

/// The client of a request that arrived from `peer`.
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Result<Forwarded, Malformed> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.trusts(ip);
    if !is_trusted(&peer) {
        return Ok(Forwarded { ip: peer, https: None });
    }
    let hops = match trusted.header {
        ForwardedHeader::XForwardedFor => x_forwarded(headers, trusted.proto)?,
        ForwardedHeader::Forwarded => forwarded_elements(headers, trusted.proto)?,
    };
    let mut chosen = Forwarded { ip: peer, https: None };
    for hop in hops.iter().rev() {
        if !is_trusted(&chosen.ip) {
            break;
        }
        chosen = Forwarded { ip: hop.ip, https: hop.proto.as_deref().map(|p| p.eq_ignore_ascii_case("https")) };
    }
    Ok(chosen)
}

/// One hop: the address a proxy received the request from, and over what protocol if known.
struct Hop {
    ip: IpAddr,
    proto: Option<String>,
}

/// The comma-separated values of every occurrence of `name`, in order.
fn values(headers: &HeaderMap, name: &str) -> Result<Vec<String>, Malformed> {
    let mut list = Vec::new();
    for value in headers.get_all(name) {
        let value = value.to_str().map_err(|_| Malformed)?;
        list.extend(value.split(',').map(|v| v.trim().to_owned()));
    }
    Ok(list)
}

/// `X-Forwarded-For: client, proxy1, proxy2`, with `X-Forwarded-Proto` paired hop for hop when
/// believed and as long.
fn x_forwarded(headers: &HeaderMap, proto: bool) -> Result<Vec<Hop>, Malformed> {
    let addresses = values(headers, "x-forwarded-for")?;
    let protos = if proto { values(headers, "x-forwarded-proto")? } else { Vec::new() };
    let paired = protos.len() == addresses.len();
    addresses
        .iter()
        .enumerate()
        .map(|(i, address)| {
            let ip = parse_node(address).ok_or(Malformed)?;
            Ok(Hop { ip, proto: paired.then(|| protos[i].clone()) })
        })
        .collect()
}

/// The `for=` (required) and `proto=` of every `Forwarded` element, in order.
fn forwarded_elements(headers: &HeaderMap, proto: bool) -> Result<Vec<Hop>, Malformed> {
    values(headers, http::header::FORWARDED.as_str())?
        .iter()
        .map(|element| {
            let (mut ip, mut hop_proto) = (None, None);
            for pair in element.split(';') {
                let (name, value) = pair.trim().split_once('=').ok_or(Malformed)?;
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "for" => ip = Some(parse_node(value).ok_or(Malformed)?),
                    "proto" if proto => hop_proto = Some(value.to_owned()),
                    _ => {}
                }
            }
            Ok(Hop { ip: ip.ok_or(Malformed)?, proto: hop_proto })
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`,
/// `2001:db8::1`; an IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address.
fn parse_node(node: &str) -> Option<IpAddr> {
    let ip: IpAddr = match node.parse() {
        Ok(ip) => ip,
        Err(_) => match node.strip_prefix('[') {
            Some(rest) => rest.split_once(']')?.0.parse().ok()?,
            None => node.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())?,
        },
    };
    Some(ip.to_canonical())
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

    fn trusting(list: &[&str], header: ForwardedHeader, proto: bool) -> TrustedProxies {
        TrustedProxies { networks: list.iter().map(|n| n.parse().unwrap()).collect(), header, proto }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn at(ip_text: &str, https: Option<bool>) -> Result<Forwarded, Malformed> {
        Ok(Forwarded { ip: ip(ip_text), https })
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https")]);
        assert_eq!(
            client(ip("198.51.100.7"), &spoofed, &trusting(&["10.0.0.0/8"], XFF, true)),
            at("198.51.100.7", None)
        );
        assert_eq!(client(ip("10.0.0.2"), &spoofed, &TrustedProxies::default()), at("10.0.0.2", None));
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted = trusting(&["10.0.0.0/8"], XFF, false);
        // The client put a fake first hop; the trusted proxy appended what it saw.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9"), ("x-forwarded-for", "10.0.0.5")]);
        assert_eq!(client(ip("10.0.0.2"), &chain, &trusted), at("203.0.113.9", None));
        let all_trusted = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(client(ip("10.0.0.2"), &all_trusted, &trusted), at("10.1.1.1", None));
        assert_eq!(client(ip("10.0.0.2"), &headers(&[]), &trusted), at("10.0.0.2", None));
        // An IPv4 peer on a dual-stack socket is still the trusted IPv4 proxy.
        assert_eq!(client(ip("::ffff:10.0.0.2"), &chain, &trusted), at("203.0.113.9", None));
    }

    #[test]
    fn an_unreadable_hop_is_malformed_never_the_proxy() {
        let trusted = trusting(&["10.0.0.0/8"], XFF, false);
        for junk in ["203.0.113.9, unknown", "_hidden", ""] {
            assert_eq!(
                client(ip("10.0.0.2"), &headers(&[("x-forwarded-for", junk)]), &trusted),
                Err(Malformed),
                "{junk}"
            );
        }
        let mut binary = HeaderMap::new();
        binary.insert("x-forwarded-for", http::HeaderValue::from_bytes(b"\x80, 198.51.100.7").unwrap());
        assert_eq!(client(ip("10.0.0.2"), &binary, &trusted), Err(Malformed));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let both = headers(&[("forwarded", "for=203.0.113.9"), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client(ip("10.0.0.2"), &both, &trusting(&["10.0.0.0/8"], XFF, false)), at("198.51.100.7", None));
        let forwarded = trusting(&["10.0.0.0/8"], ForwardedHeader::Forwarded, true);
        assert_eq!(client(ip("10.0.0.2"), &both, &forwarded), at("203.0.113.9", None));
        let chain = headers(&[("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.9;proto=http"#)]);
        assert_eq!(client(ip("10.0.0.2"), &chain, &forwarded), at("2001:db8:cafe::17", Some(true)));
        // A client's own element claiming https counts for nothing: the proxy's says http.
        let claimed = headers(&[("forwarded", "for=198.51.100.1;proto=https, for=203.0.113.7;proto=http")]);
        assert_eq!(client(ip("10.0.0.2"), &claimed, &forwarded), at("203.0.113.7", Some(false)));
        assert_eq!(client(ip("10.0.0.2"), &headers(&[("forwarded", "x")]), &forwarded), Err(Malformed));
        assert_eq!(client(ip("10.0.0.2"), &headers(&[("forwarded", "by=10.0.0.1")]), &forwarded), Err(Malformed));
    }

    #[test]
    fn the_protocol_counts_only_when_the_proxies_set_it_hop_for_hop() {
        let sets_proto = trusting(&["10.0.0.0/8"], XFF, true);
        let one = headers(&[("x-forwarded-for", "192.0.2.1"), ("x-forwarded-proto", "https")]);
        assert_eq!(client(ip("10.0.0.2"), &one, &sets_proto), at("192.0.2.1", Some(true)));
        assert_eq!(client(ip("10.0.0.2"), &one, &trusting(&["10.0.0.0/8"], XFF, false)), at("192.0.2.1", None));
        let unpaired = headers(&[("x-forwarded-for", "1.2.3.4, 192.0.2.1"), ("x-forwarded-proto", "https")]);
        assert_eq!(client(ip("10.0.0.2"), &unpaired, &sets_proto), at("192.0.2.1", None));
    }

    #[test]
    fn addresses_are_read_in_every_form_proxies_write() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("[2001:db8::1]:80"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("::ffff:198.51.100.7"), Some(ip("198.51.100.7")));
        assert_eq!(parse_node("_hidden"), None);
        assert_eq!(parse_node("unknown"), None);
    }
}
