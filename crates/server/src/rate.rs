//! Rate limits (GCRA, governor) per client address, per access key and per share link, checked
//! before anything else of a request is done, so that a refused request costs a hash lookup.
//! A refused or failed authentication (any 401 or 403) costs its address `failed_auth_cost`
//! requests more, so brute force runs out long before honest use would.
//!
//! Per-key limits (off by default) apply to keys this replica knows (root's, IAM users',
//! sessions it has seen); made-up ids cost nothing to invent, so they are limited with their
//! sender's address only and cannot grow the tables. They count requests that *name* the key,
//! before the signature is checked: key ids are not secret, so anyone can spend a key's allowance
//! with forged requests. That is why failures never cost the key, and why the limit is off
//! unless configured (counting after authentication is the better place: not built yet). Addresses in `exempt` (loopback by default) are never limited.
//! Counts are per replica and in memory; stale entries are dropped every minute.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

/// One limit: requests per second, and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// The limits as configured; `None` is no limit of that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSettings {
    pub per_ip: Option<Rate>,
    pub per_key: Option<Rate>,
    pub per_link: Option<Rate>,
    pub failed_auth_cost: NonZeroU32,
    pub exempt: Vec<IpNet>,
}

/// What is being asked, as far as limits care.
pub struct Asker<'a> {
    pub ip: IpAddr,
    /// A known access key signing the request.
    pub key: Option<&'a str>,
    /// A share token the request presents.
    pub link: Option<&'a str>,
}

pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    /// Keyed by a hash of the token: tokens are not kept, even in memory.
    per_link: Option<DefaultKeyedRateLimiter<u64>>,
    failed_auth_cost: NonZeroU32,
    exempt: Vec<IpNet>,
    hasher: RandomState,
    clock: DefaultClock,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<K>> {
    rate.map(|rate| RateLimiter::keyed(Quota::per_second(rate.per_second).allow_burst(rate.burst)))
}

impl RateLimits {
    pub fn new(settings: &RateSettings) -> RateLimits {
        RateLimits {
            per_ip: limiter(settings.per_ip),
            per_key: limiter(settings.per_key),
            per_link: limiter(settings.per_link),
            failed_auth_cost: settings.failed_auth_cost,
            exempt: settings.exempt.clone(),
            hasher: RandomState::new(),
            clock: DefaultClock::default(),
        }
    }

    /// Whether requests from `ip` are never limited.
    pub fn exempts(&self, ip: &IpAddr) -> bool {
        self.exempt.iter().any(|net| net.contains(ip))
    }

    /// Counts one request: `Err` with how long to wait when a limit is exceeded (and then
    /// nothing else of the request is done).
    pub fn check(&self, asker: &Asker<'_>) -> Result<(), Duration> {
        if self.exempts(&asker.ip) {
            return Ok(());
        }
        let now = self.clock.now();
        let mut wait = Duration::ZERO;
        let mut note = |outcome: Result<(), governor::NotUntil<_>>| {
            if let Err(not_until) = outcome {
                wait = wait.max(not_until.wait_time_from(now));
            }
        };
        if let Some(limiter) = &self.per_ip {
            note(limiter.check_key(&asker.ip));
        }
        if let (Some(limiter), Some(key)) = (&self.per_key, asker.key) {
            note(limiter.check_key(&key.to_owned()));
        }
        if let (Some(limiter), Some(link)) = (&self.per_link, asker.link) {
            note(limiter.check_key(&self.hasher.hash_one(link)));
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Counts a form upload (PostObject) against the access key that signed it: the key is in
    /// the body, read after [`RateLimits::check`] charged the sender's address.
    pub fn check_key(&self, ip: &IpAddr, key: &str) -> Result<(), Duration> {
        let Some(limiter) = self.per_key.as_ref().filter(|_| !self.exempts(ip)) else { return Ok(()) };
        limiter.check_key(&key.to_owned()).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Counts a refused or failed authentication against the sender's address: up to
    /// `failed_auth_cost` requests more, as many as are left (a cost beyond the burst empties
    /// it). Not against the key or the link it named: a stranger forging requests for a key id
    /// (which is not secret) or refused a link would otherwise lock their rightful users out.
    pub fn failed(&self, asker: &Asker<'_>) {
        let sender = Asker { ip: asker.ip, key: None, link: None };
        for _ in 0..self.failed_auth_cost.get() {
            if self.check(&sender).is_err() {
                break;
            }
        }
    }

    /// Drops the entries of keys that would start afresh anyway.
    pub fn sweep(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_key {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_link {
            limiter.retain_recent();
        }
    }

    /// Sweeps every minute until `stopped` resolves.
    pub async fn maintain(self: std::sync::Arc<Self>, stopped: impl std::future::Future<Output = ()>) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        let mut stopped = std::pin::pin!(stopped);
        loop {
            tokio::select! {
                _ = every.tick() => self.sweep(),
                () = &mut stopped => return,
            }
        }
    }
}

/// The access key id a request is signed with, as written (SigV4 header or query, SigV2
/// header or query); checked against the known keys by the caller.
pub fn access_key_of(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(authorization) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(rest) = authorization.strip_prefix("AWS4-HMAC-SHA256") {
            let credential = rest.split("Credential=").nth(1)?;
            return credential.split('/').next().map(str::to_owned);
        }
        if let Some(rest) = authorization.strip_prefix("AWS ") {
            return rest.split(':').next().map(str::to_owned);
        }
    }
    let query = query?;
    latchkey_s3::query::params(query).find_map(|(name, value)| match name.as_ref() {
        "X-Amz-Credential" => value.decode().split('/').next().map(str::to_owned),
        "AWSAccessKeyId" => Some(value.decode().into_owned()),
        _ => None,
    })
}

/// The share token a request presents: in a landing page path, or to `/-/access-object` as
/// `nonce` or `X-Latchkey-Nonce`.
pub fn share_token_of<'a>(path: &'a str, headers: &'a http::HeaderMap, query: Option<&'a str>) -> Option<String> {
    if let Some(token) = path.strip_prefix("/-/s/") {
        return Some(token.to_owned());
    }
    if path != "/-/access-object" {
        return None;
    }
    if let Some(nonce) = headers.get("x-latchkey-nonce").and_then(|v| v.to_str().ok()) {
        return Some(nonce.to_owned());
    }
    form_urlencoded::parse(query?.as_bytes()).find_map(|(name, value)| (name == "nonce").then(|| value.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: u32, burst: u32) -> Option<Rate> {
        Some(Rate { per_second: NonZeroU32::new(per_second).unwrap(), burst: NonZeroU32::new(burst).unwrap() })
    }

    fn limits(exempt: &[&str]) -> RateLimits {
        RateLimits::new(&RateSettings {
            per_ip: rate(1, 3),
            per_key: rate(1, 5),
            per_link: rate(1, 2),
            failed_auth_cost: NonZeroU32::new(2).unwrap(),
            exempt: exempt.iter().map(|n| n.parse().unwrap()).collect(),
        })
    }

    fn from(ip: &str) -> Asker<'static> {
        Asker { ip: ip.parse().unwrap(), key: None, link: None }
    }

    #[test]
    fn an_address_over_its_burst_waits_and_another_does_not() {
        let limits = limits(&[]);
        for _ in 0..3 {
            limits.check(&from("192.0.2.1")).unwrap();
        }
        let wait = limits.check(&from("192.0.2.1")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        limits.check(&from("192.0.2.2")).unwrap();
    }

    #[test]
    fn failed_authentications_cost_more() {
        let limits = limits(&[]);
        limits.failed(&from("192.0.2.1"));
        limits.check(&from("192.0.2.1")).unwrap();
        assert!(limits.check(&from("192.0.2.1")).is_err(), "2 + 1 of a burst of 3: the next waits");
    }

    #[test]
    fn keys_and_links_have_limits_of_their_own_across_addresses() {
        let limits = limits(&[]);
        let link = |ip: &'static str| Asker { ip: ip.parse().unwrap(), key: None, link: Some("tok") };
        limits.check(&link("192.0.2.1")).unwrap();
        limits.check(&link("192.0.2.2")).unwrap();
        assert!(limits.check(&link("192.0.2.3")).is_err(), "the link's burst of 2 is spent from any address");
        let key = |ip: &'static str| Asker { ip: ip.parse().unwrap(), key: Some("AKIA1"), link: None };
        for i in 0..5 {
            limits.check(&key(["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14"][i])).unwrap();
        }
        assert!(limits.check(&key("192.0.2.15")).is_err());
    }

    #[test]
    fn a_forms_key_is_charged_alone_and_shares_its_rate_with_headers() {
        let limits = limits(&["10.0.0.0/8"]);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        // Five of the key's burst from forms, whichever address; the sender's address is untouched.
        for last in 10..15 {
            limits.check_key(&ip(&format!("192.0.2.{last}")), "AKIA1").unwrap();
        }
        assert!(limits.check_key(&ip("192.0.2.20"), "AKIA1").is_err(), "the key's burst of 5 is spent");
        let signed = Asker { ip: ip("192.0.2.21"), key: Some("AKIA1"), link: None };
        assert!(limits.check(&signed).is_err(), "its presigned URLs and headers wait too");
        limits.check_key(&ip("192.0.2.20"), "AKIA2").unwrap();
        for _ in 0..3 {
            limits.check(&from("192.0.2.10")).unwrap();
        }
        limits.check_key(&ip("10.1.2.3"), "AKIA1").expect("exempt networks are never limited");
    }

    #[test]
    fn a_refusal_does_not_cost_the_key_or_link_it_named() {
        let limits = limits(&[]);
        let refused = Asker { ip: "192.0.2.66".parse().unwrap(), key: Some("AKIA1"), link: Some("tok") };
        for _ in 0..3 {
            limits.failed(&refused);
        }
        let rightful = Asker { ip: "192.0.2.1".parse().unwrap(), key: Some("AKIA1"), link: Some("tok") };
        limits.check(&rightful).unwrap();
        assert!(limits.check(&refused).is_err(), "the refused address pays");
    }

    #[test]
    fn exempt_networks_are_not_limited() {
        let limits = limits(&["127.0.0.0/8"]);
        for _ in 0..100 {
            limits.check(&from("127.0.0.1")).unwrap();
        }
    }

    #[test]
    fn keys_and_tokens_are_read_where_requests_carry_them() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIA1/20261205/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab"
                .parse()
                .unwrap(),
        );
        assert_eq!(access_key_of(&headers, None).as_deref(), Some("AKIA1"));
        let empty = http::HeaderMap::new();
        let query = "X-Amz-Credential=AKIA2%2F20261205%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab";
        assert_eq!(access_key_of(&empty, Some(query)).as_deref(), Some("AKIA2"));
        assert_eq!(access_key_of(&empty, Some("AWSAccessKeyId=AKIA3&Signature=x")).as_deref(), Some("AKIA3"));
        assert_eq!(share_token_of("/-/s/tok1", &empty, None).as_deref(), Some("tok1"));
        assert_eq!(share_token_of("/-/access-object", &empty, Some("nonce=tok2")).as_deref(), Some("tok2"));
        assert_eq!(share_token_of("/bucket/key", &empty, Some("nonce=x")), None);
    }
}
