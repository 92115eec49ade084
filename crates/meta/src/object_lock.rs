//! Object Lock as S3 defines it, pure: a version's retention and legal hold, a bucket's default
//! retention, and the rules that decide whether a version may be deleted or its retention
//! changed. The stores apply these rules inside the transaction that changes a version, under
//! the key's lock; the database refuses, by trigger, to let a version under legal hold or an
//! unexpired COMPLIANCE retention leave the store, whatever code path asks.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// A retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` who ask for it (`x-amz-bypass-governance-retention`)
    /// may delete the version or shorten and remove its retention.
    #[serde(rename = "GOVERNANCE")]
    Governance,
    /// Nobody, root included, may delete the version, shorten its retention or change its mode
    /// before the date.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Governance, Self::Compliance].into_iter().find(|m| m.as_str() == s)
    }
}

/// A version's retention: protected in `mode` until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until: OffsetDateTime,
}

impl Retention {
    fn active(&self, now: OffsetDateTime) -> bool {
        self.until > now
    }
}

/// A version's Object Lock state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectLock {
    pub retention: Option<Retention>,
    /// `None` when no legal hold was ever set (S3 then answers GetObjectLegalHold with
    /// `NoSuchObjectLockConfiguration`).
    pub legal_hold: Option<bool>,
}

/// Why Object Lock refuses a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LockRefusal {
    #[error("the version is under a legal hold")]
    LegalHold,
    #[error("the version is under COMPLIANCE retention")]
    Compliance,
    #[error("the version is under GOVERNANCE retention and the request may not bypass it")]
    Governance,
    /// A new retention date must lie in the future.
    #[error("the retain-until date is not in the future")]
    PastDate,
    /// The database's own guard refused (a legal hold or COMPLIANCE retention): a code path
    /// tried what the service should have refused first.
    #[error("the store refused to drop a version under a legal hold or COMPLIANCE retention")]
    Store,
}

impl ObjectLock {
    /// Why deleting this version at `now` is refused, if it is. `bypass_governance`: the caller
    /// asked to bypass GOVERNANCE retention and holds the permission to.
    pub fn protects(&self, now: OffsetDateTime, bypass_governance: bool) -> Option<LockRefusal> {
        if self.legal_hold == Some(true) {
            return Some(LockRefusal::LegalHold);
        }
        match self.retention.filter(|r| r.active(now))?.mode {
            LockMode::Compliance => Some(LockRefusal::Compliance),
            LockMode::Governance if bypass_governance => None,
            LockMode::Governance => Some(LockRefusal::Governance),
        }
    }

    /// This lock with its retention replaced by `new` (`None` removes it), if S3's rules allow:
    /// an active COMPLIANCE retention may only be extended; an active GOVERNANCE one may be
    /// extended, and anything else (shortened, removed, made COMPLIANCE) only with the bypass.
    pub fn with_retention(
        &self,
        new: Option<Retention>,
        now: OffsetDateTime,
        bypass_governance: bool,
    ) -> Result<ObjectLock, LockRefusal> {
        if new.is_some_and(|r| !r.active(now)) {
            return Err(LockRefusal::PastDate);
        }
        if let Some(current) = self.retention.filter(|r| r.active(now)) {
            let extends = new.is_some_and(|r| r.mode == current.mode && r.until >= current.until);
            match current.mode {
                LockMode::Compliance if !extends => return Err(LockRefusal::Compliance),
                LockMode::Governance if !extends && !bypass_governance => return Err(LockRefusal::Governance),
                _ => {}
            }
        }
        Ok(ObjectLock { retention: new, ..*self })
    }
}

/// A change to a version's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockChange {
    /// PutObjectRetention: `None` removes it.
    Retention { retention: Option<Retention>, bypass_governance: bool },
    /// PutObjectLegalHold: on or off, by anyone allowed to call it.
    LegalHold(bool),
}

impl ObjectLock {
    /// This lock after `change` at `now`, if S3's rules allow it.
    pub fn changed(&self, change: LockChange, now: OffsetDateTime) -> Result<ObjectLock, LockRefusal> {
        match change {
            LockChange::Retention { retention, bypass_governance } => {
                self.with_retention(retention, now, bypass_governance)
            }
            LockChange::LegalHold(on) => Ok(ObjectLock { legal_hold: Some(on), ..*self }),
        }
    }
}

/// A bucket's default retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionPeriod {
    Days(u32),
    Years(u32),
}

/// The retention a bucket gives new versions that ask for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub period: RetentionPeriod,
}

/// The longest default retention S3 accepts: 100 years (36500 days).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl DefaultRetention {
    /// The retention of a version written at `now`. A year is 365 days, as S3 counts it.
    pub fn from(&self, now: OffsetDateTime) -> Retention {
        let days = match self.period {
            RetentionPeriod::Days(d) => i64::from(d),
            RetentionPeriod::Years(y) => i64::from(y) * 365,
        };
        Retention { mode: self.mode, until: now + Duration::days(days) }
    }
}

/// A bucket's Object Lock configuration. A bucket has one once Object Lock is enabled (at
/// creation, or later on a versioned bucket), and never loses it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockConfiguration {
    pub default_retention: Option<DefaultRetention>,
}

impl LockConfiguration {
    /// The lock of a version written at `now` that asked for `requested`: its own retention, or
    /// else the bucket's default.
    pub fn lock_for(&self, requested: ObjectLock, now: OffsetDateTime) -> ObjectLock {
        ObjectLock {
            retention: requested.retention.or_else(|| self.default_retention.map(|d| d.from(now))),
            legal_hold: requested.legal_hold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    fn retained(mode: LockMode, until: i64) -> ObjectLock {
        ObjectLock { retention: Some(Retention { mode, until: at(until) }), legal_hold: None }
    }

    #[test]
    fn deletion_is_refused_while_a_hold_or_an_active_retention_protects() {
        let now = at(100);
        assert_eq!(ObjectLock::default().protects(now, false), None);
        let held = ObjectLock { legal_hold: Some(true), ..Default::default() };
        assert_eq!(held.protects(now, true), Some(LockRefusal::LegalHold));
        let released = ObjectLock { legal_hold: Some(false), ..Default::default() };
        assert_eq!(released.protects(now, false), None);
        assert_eq!(retained(LockMode::Compliance, 200).protects(now, true), Some(LockRefusal::Compliance));
        assert_eq!(retained(LockMode::Governance, 200).protects(now, false), Some(LockRefusal::Governance));
        assert_eq!(retained(LockMode::Governance, 200).protects(now, true), None);
        // Expired retention protects nothing; the date itself is the first unprotected instant.
        assert_eq!(retained(LockMode::Compliance, 100).protects(now, false), None);
        assert_eq!(retained(LockMode::Compliance, 50).protects(now, false), None);
    }

    #[test]
    fn compliance_retention_can_only_be_extended_even_with_the_bypass() {
        let now = at(100);
        let lock = retained(LockMode::Compliance, 200);
        let longer = Retention { mode: LockMode::Compliance, until: at(300) };
        assert_eq!(lock.with_retention(Some(longer), now, false).unwrap().retention, Some(longer));
        let same = Retention { mode: LockMode::Compliance, until: at(200) };
        assert!(lock.with_retention(Some(same), now, false).is_ok());
        for refused in [
            Some(Retention { mode: LockMode::Compliance, until: at(150) }),
            Some(Retention { mode: LockMode::Governance, until: at(300) }),
            None,
        ] {
            assert_eq!(lock.with_retention(refused, now, true), Err(LockRefusal::Compliance), "{refused:?}");
        }
    }

    #[test]
    fn governance_retention_is_shortened_removed_or_hardened_only_with_the_bypass() {
        let now = at(100);
        let lock = retained(LockMode::Governance, 200);
        let longer = Retention { mode: LockMode::Governance, until: at(300) };
        assert!(lock.with_retention(Some(longer), now, false).is_ok());
        for changed in [
            Some(Retention { mode: LockMode::Governance, until: at(150) }),
            Some(Retention { mode: LockMode::Compliance, until: at(300) }),
            None,
        ] {
            assert_eq!(lock.with_retention(changed, now, false), Err(LockRefusal::Governance), "{changed:?}");
            assert_eq!(lock.with_retention(changed, now, true).unwrap().retention, changed);
        }
    }

    #[test]
    fn an_expired_or_absent_retention_may_be_replaced_by_any_future_one() {
        let now = at(100);
        let future = Retention { mode: LockMode::Governance, until: at(101) };
        for lock in [ObjectLock::default(), retained(LockMode::Compliance, 100)] {
            assert_eq!(lock.with_retention(Some(future), now, false).unwrap().retention, Some(future));
            let past = Retention { mode: LockMode::Compliance, until: at(100) };
            assert_eq!(lock.with_retention(Some(past), now, false), Err(LockRefusal::PastDate));
        }
        let held = ObjectLock { legal_hold: Some(true), ..Default::default() };
        assert_eq!(held.with_retention(Some(future), now, false).unwrap().legal_hold, Some(true));
    }

    #[test]
    fn the_default_applies_only_to_versions_that_ask_for_no_retention() {
        let now = at(0);
        let config = LockConfiguration {
            default_retention: Some(DefaultRetention { mode: LockMode::Compliance, period: RetentionPeriod::Years(2) }),
        };
        let given = config.lock_for(ObjectLock::default(), now).retention.unwrap();
        assert_eq!((given.mode, given.until), (LockMode::Compliance, at(2 * 365 * 86_400)));
        let own = Retention { mode: LockMode::Governance, until: at(5) };
        let asked = ObjectLock { retention: Some(own), legal_hold: Some(true) };
        assert_eq!(config.lock_for(asked, now), asked);
        assert_eq!(LockConfiguration::default().lock_for(ObjectLock::default(), now), ObjectLock::default());
        let days = DefaultRetention { mode: LockMode::Governance, period: RetentionPeriod::Days(3) };
        assert_eq!(days.from(now).until, at(3 * 86_400));
    }
}
