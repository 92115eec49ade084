//! Virtual-hosted-style addressing: with `domain` configured, a Host header
//! `<bucket>.<domain>` names the bucket and the path is the key; every other Host (the domain
//! itself, an IP address, any other name) is path style, which always works.
//!
//! Unlike s3s's `MultiDomain`, a Host outside the configured domains is never taken for a bucket
//! name (a CNAME), so `localhost:9000` stays path style. The router and s3s must read a request
//! the same way: the router spells every request path style ([`Domains::path_style`]) for what it
//! judges before s3s (surfaces, rate limits, CORS, the envelope, logs), and s3s reads the bucket
//! from the Host through the same [`Domains`] (its `S3Host`).

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, Uri, Version, header};
use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};
use s3s::validation::{AwsNameValidation, NameValidation};

/// The domains under which buckets are addressed by name, lower case, without a port.
#[derive(Debug, Clone)]
pub struct Domains(Vec<String>);

/// In a request's extensions: its Host header names a bucket. Latchkey's own `/-/` routes are
/// path style only: under a bucket's host, `/-/shares` is the object key `-/shares`.
#[derive(Debug, Clone, Copy)]
pub struct VirtualHosted;

impl Domains {
    /// Parses a comma-separated list of domains, such as `s3.example.test`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut domains: Vec<String> = Vec::new();
        for domain in list.split(',').map(str::trim) {
            let domain = domain.to_ascii_lowercase();
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
                return Err(format!(
                    "invalid domain {domain:?}: expected a DNS name without a port, such as s3.example.test"
                ));
            }
            if domain.parse::<IpAddr>().is_ok() || domain.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err(format!("invalid domain {domain:?}: an IP address cannot hold buckets as subdomains"));
            }
            if let Some(other) = domains.iter().find(|o| overlaps(o, &domain)) {
                return Err(format!(
                    "domains {other:?} and {domain:?} overlap: a host under both would name two buckets"
                ));
            }
            domains.push(domain);
        }
        Ok(Self(domains))
    }

    /// The bucket a Host header value names, in lower case (host names are case-insensitive), or
    /// `None` for a path-style host. Only a valid bucket name is one (`-.DOMAIN` names none:
    /// under it, `/-/...` would read as Latchkey's own routes).
    pub fn bucket_of(&self, host: &str) -> Option<String> {
        let name = strip_port(host)?;
        if name.parse::<IpAddr>().is_ok() {
            return None;
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.0.iter().find_map(|domain| {
            let bucket = name.strip_suffix(domain.as_str())?.strip_suffix('.')?;
            AwsNameValidation::new().validate_bucket_name(bucket).then(|| bucket.to_owned())
        })
    }

    /// The bucket a request's Host (or, over HTTP/2 only, its `:authority`) names: where s3s
    /// reads it.
    pub fn bucket_of_request(&self, version: Version, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        let host = match headers.get(header::HOST) {
            Some(value) => value.to_str().ok()?,
            None if version >= Version::HTTP_2 => uri.authority()?.as_str(),
            None => return None,
        };
        self.bucket_of(host)
    }
}

/// A request's path as path-style addressing spells it: `/<bucket><path>` under a bucket's host.
pub fn path_style<'a>(bucket: Option<&str>, path: &'a str) -> Cow<'a, str> {
    match bucket {
        Some(bucket) => Cow::Owned(format!("/{bucket}{path}")),
        None => Cow::Borrowed(path),
    }
}

/// The bucket a path-style path names, as written (a bucket name has nothing to decode; an
/// encoded one names no bucket).
pub fn path_bucket(path: &str) -> Option<&str> {
    path.strip_prefix('/')?.split('/').next().filter(|bucket| !bucket.is_empty())
}

/// Whether a host under one domain is also under the other.
fn overlaps(a: &str, b: &str) -> bool {
    let under = |x: &str, y: &str| x == y || x.ends_with(&format!(".{y}"));
    under(a, b) || under(b, a)
}

/// A Host value without its port (`[::1]:9000` is `[::1]`); `None` if the port is not a number.
fn strip_port(host: &str) -> Option<&str> {
    if let Some(bracketed) = host.strip_prefix('[') {
        let (address, rest) = bracketed.split_once(']')?;
        return (rest.is_empty() || rest.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()))
            .then_some(address);
    }
    match host.rsplit_once(':') {
        Some((name, port)) => port.parse::<u16>().is_ok().then_some(name),
        None => Some(host),
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(host).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_named_only_under_a_configured_domain() {
        let domains = Domains::parse("s3.example.test, files.example.org").unwrap();
        assert_eq!(domains.bucket_of("photos.s3.example.test").as_deref(), Some("photos"));
        assert_eq!(domains.bucket_of("Photos.S3.Example.Test:9000").as_deref(), Some("photos"));
        assert_eq!(domains.bucket_of("my.dotted.bucket.files.example.org").as_deref(), Some("my.dotted.bucket"));
        assert_eq!(domains.bucket_of("photos.s3.example.test.").as_deref(), Some("photos"));
        for path_style in [
            "-.s3.example.test",
            "ab.s3.example.test",
            "s3.example.test",
            "s3.example.test:9000",
            ".s3.example.test",
            "photos-s3.example.test",
            "photos.s3.example.test.evil",
            "localhost:9000",
            "127.0.0.1:9000",
            "[::1]:9000",
            "photos.s3.example.test:http",
            "",
        ] {
            assert_eq!(domains.bucket_of(path_style), None, "{path_style}");
        }
    }

    #[test]
    fn domains_that_cannot_hold_buckets_are_refused() {
        for bad in ["", "s3.example.test:9000", "s3..test", "-s3.test", "s3_x.test", "10.0.0.1", "1.2", "a, b.a"] {
            assert!(Domains::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Domains::parse("example.test,s3.example.test").unwrap_err().contains("overlap"));
        assert!(Domains::parse("example.test,myexample.test").is_ok());
    }

    #[test]
    fn paths_are_spelled_path_style() {
        assert_eq!(path_style(Some("photos"), "/a/b.txt"), "/photos/a/b.txt");
        assert_eq!(path_style(Some("photos"), "/"), "/photos/");
        assert_eq!(path_style(None, "/photos/a"), "/photos/a");
        assert_eq!(path_bucket("/photos/a/b.jpg"), Some("photos"));
        assert_eq!(path_bucket("/photos"), Some("photos"));
        assert_eq!(path_bucket("//photos/x"), None);
        assert_eq!(path_bucket("/"), None);
    }
}
