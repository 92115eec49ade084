//! The surfaces a listener serves, and which one a request belongs to: the S3 API (with IAM, STS
//! and the signed share API), the share links people open, metrics and health. A listener serves
//! a set of them, so that, as AWS's guidance puts it, the S3 API can stay inside a network while
//! share links face the internet; a request for a surface its listener does not serve is a 404,
//! whatever its credentials.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// S3, IAM and STS, and the signed APIs (`/-/shares`, `/-/presigned`, `/-/audit`,
    /// `/-/findings`), with the
    /// audit public key: everything that is signed.
    S3,
    /// Share links: landing pages (`/-/s/...`) and API redemption (`/-/access-object`).
    Shares,
    Metrics,
    /// `/-/health` and `/-/ready`.
    Health,
}

impl Surface {
    pub const ALL: [Surface; 4] = [Surface::S3, Surface::Shares, Surface::Metrics, Surface::Health];

    pub fn name(self) -> &'static str {
        match self {
            Surface::S3 => "s3",
            Surface::Shares => "shares",
            Surface::Metrics => "metrics",
            Surface::Health => "health",
        }
    }

    /// The surface named `name` (as in the config file).
    pub fn parse(name: &str) -> Option<Surface> {
        Surface::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The surface of a request for `path`. Paths are matched as written: any other spelling
    /// of a `/-/` path (`//-/s/`, `/%2D/s/`) is not a share route and so belongs to S3, which
    /// refuses it as it refuses any unsigned request.
    pub fn of(path: &str) -> Surface {
        match path {
            "/-/health" | "/-/ready" => Surface::Health,
            "/-/metrics" => Surface::Metrics,
            "/-/access-object" => Surface::Shares,
            _ if path.starts_with("/-/s/") => Surface::Shares,
            _ => Surface::S3,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of surfaces.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Surfaces(u8);

impl Surfaces {
    pub const ALL: Surfaces = Surfaces(0b1111);

    pub fn contains(self, surface: Surface) -> bool {
        self.0 & surface.bit() != 0
    }

    /// The set named by `names`; the error names the unknown one and the known ones.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Surfaces, String> {
        let mut set = 0;
        for name in names {
            let name = name.as_ref();
            let surface = Surface::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Surface::ALL.iter().map(|s| s.name()).collect();
                format!("unknown surface {name:?}: expected some of {}", known.join(", "))
            })?;
            set |= surface.bit();
        }
        if set == 0 {
            return Err("a listener must serve at least one surface".to_owned());
        }
        Ok(Surfaces(set))
    }
}

impl fmt::Debug for Surfaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Surface::ALL.iter().filter(|s| self.contains(**s)).map(|s| s.name()).collect();
        write!(f, "{}", names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_belong_to_their_surface() {
        assert_eq!(Surface::of("/-/health"), Surface::Health);
        assert_eq!(Surface::of("/-/ready"), Surface::Health);
        assert_eq!(Surface::of("/-/metrics"), Surface::Metrics);
        assert_eq!(Surface::of("/-/s/abc"), Surface::Shares);
        assert_eq!(Surface::of("/-/access-object"), Surface::Shares);
        for s3 in ["/", "/bucket/key", "/-/shares", "/-/shares/shr_1", "//-/s/abc", "/%2D/s/abc", "/-/other"] {
            assert_eq!(Surface::of(s3), Surface::S3, "{s3}");
        }
    }

    #[test]
    fn sets_are_named_in_the_config() {
        let set = Surfaces::parse(&["shares", "health"]).unwrap();
        assert!(set.contains(Surface::Shares) && set.contains(Surface::Health) && !set.contains(Surface::S3));
        assert_eq!(format!("{set:?}"), "shares,health");
        assert!(Surfaces::parse(&["s4"]).unwrap_err().contains("expected some of s3, shares, metrics, health"));
        assert!(Surfaces::parse::<&str>(&[]).is_err());
        assert_eq!(Surfaces::parse(&["s3", "shares", "metrics", "health"]).unwrap(), Surfaces::ALL);
    }
}
