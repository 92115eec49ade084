//! Who may connect: network allow- and deny-lists (global and per listener) judged on the
//! client's address, and caps on open connections, in all and per address. A connection from a
//! trusted proxy is judged by the clients it forwards, request by request (`Dispatch`), since
//! the proxy is not the client; it is not capped per address either, since its connections
//! carry many clients'.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use crate::forwarded::TrustedProxies;

/// An allow-list and a deny-list of networks. A deny entry always wins; an empty allow-list
/// admits every address not denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkList {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl NetworkList {
    pub fn admits(&self, ip: &IpAddr) -> bool {
        !self.deny.iter().any(|net| net.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|net| net.contains(ip)))
    }
}

/// How many connections may be open at once, in all and from one address (an IPv6 client is
/// capped per /64, which one host commonly holds whole). Loopback is capped by neither, so that
/// local health checks and a local proxy always get in; the trusted proxies only in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub max: usize,
    pub max_per_ip: usize,
}

/// Why a connection or a request was not admitted; the reason is counted and logged, never
/// told to the client (its connection is closed, or it gets a bare 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address is outside the allow-lists or inside a deny-list.
    Network,
    /// The server holds its most connections.
    Connections,
    /// The address holds its most connections.
    ConnectionsPerIp,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Network => "network",
            Refusal::Connections => "connections",
            Refusal::ConnectionsPerIp => "connections_per_ip",
        }
    }
}

/// The global lists, the caps, and the connections open now.
pub struct Admission {
    networks: NetworkList,
    caps: ConnectionCaps,
    trusted_proxies: TrustedProxies,
    open: Arc<Mutex<Open>>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// An admitted connection's place; giving it back (drop) frees it.
pub struct Ticket {
    ip: Option<IpAddr>,
    /// Whether it counts (loopback's do not).
    counted: bool,
    open: Arc<Mutex<Open>>,
}

/// What a client's connections are counted under: its IPv4 address, or its IPv6 /64.
fn per_ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
    }
}

impl Admission {
    pub fn new(networks: NetworkList, caps: ConnectionCaps, trusted_proxies: TrustedProxies) -> Admission {
        Admission { networks, caps, trusted_proxies, open: Arc::default() }
    }

    /// Admits a connection from `peer` (canonical) to a listener with `listener`'s lists.
    pub fn connect(&self, peer: IpAddr, listener: &NetworkList) -> Result<Ticket, Refusal> {
        let proxy = self.trusted_proxies.trusts(&peer);
        if !proxy && !self.admits(&peer, listener) {
            return Err(Refusal::Network);
        }
        if peer.is_loopback() {
            return Ok(Ticket { ip: None, counted: false, open: self.open.clone() });
        }
        let capped = (!proxy).then(|| per_ip_key(peer));
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.total >= self.caps.max {
            return Err(Refusal::Connections);
        }
        if let Some(ip) = capped {
            let from_ip = open.per_ip.entry(ip).or_default();
            if *from_ip >= self.caps.max_per_ip {
                return Err(Refusal::ConnectionsPerIp);
            }
            *from_ip += 1;
        }
        open.total += 1;
        metrics::gauge!("latchkey_open_connections").increment(1.0);
        Ok(Ticket { ip: capped, counted: true, open: self.open.clone() })
    }

    /// Whether a request from `client` may be served on a listener with `listener`'s lists.
    /// Only clients named by a trusted proxy need this: others were judged when they connected.
    pub fn admits(&self, client: &IpAddr, listener: &NetworkList) -> bool {
        self.networks.admits(client) && listener.admits(client)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.total -= 1;
        metrics::gauge!("latchkey_open_connections").decrement(1.0);
        if let Some(ip) = self.ip
            && let std::collections::hash_map::Entry::Occupied(mut entry) = open.per_ip.entry(ip)
        {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn deny_wins_and_an_empty_allow_list_admits_the_rest() {
        let list = NetworkList { allow: nets(&["10.0.0.0/8"]), deny: nets(&["10.1.0.0/16"]) };
        assert!(list.admits(&ip("10.2.3.4")));
        assert!(!list.admits(&ip("10.1.3.4")));
        assert!(!list.admits(&ip("192.0.2.1")));
        let deny_only = NetworkList { allow: vec![], deny: nets(&["192.0.2.0/24"]) };
        assert!(deny_only.admits(&ip("198.51.100.1")) && !deny_only.admits(&ip("192.0.2.9")));
    }

    #[test]
    fn connections_are_capped_in_all_and_per_address_and_freed_on_drop() {
        let proxies = TrustedProxies { networks: nets(&["10.9.0.0/16"]), ..Default::default() };
        let global = NetworkList { allow: vec![], deny: nets(&["203.0.113.0/24"]) };
        let admission = Admission::new(global, ConnectionCaps { max: 4, max_per_ip: 2 }, proxies);
        let open = NetworkList::default();
        assert_eq!(admission.connect(ip("203.0.113.5"), &open).err(), Some(Refusal::Network));
        let first = admission.connect(ip("192.0.2.1"), &open).unwrap();
        let _second = admission.connect(ip("192.0.2.1"), &open).unwrap();
        assert_eq!(admission.connect(ip("192.0.2.1"), &open).err(), Some(Refusal::ConnectionsPerIp));
        drop(first);
        let _again = admission.connect(ip("192.0.2.1"), &open).unwrap();
        // Proxies are not capped per address (their clients are judged per request), only in
        // all; loopback not at all. An IPv6 client is capped per /64.
        let _proxy = admission.connect(ip("10.9.0.1"), &open).unwrap();
        let _v6 = admission.connect(ip("2001:db8:1:2::1"), &open).unwrap();
        assert_eq!(admission.connect(ip("2001:db8:1:2::2"), &open).err(), Some(Refusal::Connections));
        assert_eq!(admission.open.lock().unwrap().total, 4);
        let local: Vec<_> = (0..10).map(|_| admission.connect(ip("127.0.0.1"), &open).unwrap()).collect();
        assert_eq!(admission.open.lock().unwrap().total, 4, "loopback is not counted");
        drop(local);
        assert_eq!(admission.open.lock().unwrap().total, 4);
    }

    #[test]
    fn an_ipv6_client_is_capped_per_64() {
        let admission = Admission::new(
            NetworkList::default(),
            ConnectionCaps { max: 100, max_per_ip: 1 },
            TrustedProxies::default(),
        );
        let open = NetworkList::default();
        let _held = admission.connect(ip("2001:db8:1:2::1"), &open).unwrap();
        assert_eq!(admission.connect(ip("2001:db8:1:2:ffff::9"), &open).err(), Some(Refusal::ConnectionsPerIp));
        assert!(admission.connect(ip("2001:db8:1:3::1"), &open).is_ok(), "another /64");
    }
}
