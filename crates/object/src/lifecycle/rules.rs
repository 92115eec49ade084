//! Lifecycle rules as S3 defines them, pure: what a bucket's configuration says, and which
//! actions are due on one key's history at a given time. No I/O.

use latchkey_meta::{ObjectVersion, Tag};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, Time};

/// A bucket's lifecycle configuration (stored as JSON in its settings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfiguration {
    pub rules: Vec<LifecycleRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    pub filter: RuleFilter,
    /// When current versions expire.
    pub expiration: Option<Expiration>,
    /// Remove a delete marker that is all that is left of its key.
    pub expired_object_delete_marker: bool,
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    /// Abort multipart uploads this many days after they were started.
    pub abort_incomplete_upload_days: Option<u32>,
}

impl LifecycleRule {
    /// An id for a rule given without one, as S3 makes one up.
    pub fn generated_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// Which versions a rule applies to: all of its conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFilter {
    pub prefix: String,
    pub tags: Vec<Tag>,
    /// Sizes strictly above / below, in bytes.
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// Days after the version was written, counted to the next midnight UTC.
    Days(u32),
    /// From this moment (midnight UTC).
    Date(#[serde(with = "time::serde::rfc3339")] OffsetDateTime),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Days after the version stopped being current, counted to the next midnight UTC.
    pub days: u32,
    /// The newest noncurrent versions kept whatever their age.
    pub newer_noncurrent_versions: Option<u32>,
}

/// What lifecycle does to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Expire the current version: deleted in a bucket never versioned, else covered by a delete
    /// marker.
    ExpireCurrent,
    /// Delete one version or delete marker (its internal id) for good.
    DeleteVersion(String),
}

/// `written` plus `days`, rounded up to the next midnight UTC, as S3 counts lifecycle days;
/// `None` (never) past the last representable date.
pub fn due_after(written: OffsetDateTime, days: u32) -> Option<OffsetDateTime> {
    let later = written.to_offset(time::UtcOffset::UTC).checked_add(Duration::days(i64::from(days)))?;
    let midnight = later.replace_time(Time::MIDNIGHT);
    if midnight == later { Some(midnight) } else { midnight.checked_add(Duration::days(1)) }
}

/// Whether something written at `written` is `days` old at `now` (lifecycle's count).
fn aged(written: OffsetDateTime, days: u32, now: OffsetDateTime) -> bool {
    due_after(written, days).is_some_and(|due| due <= now)
}

impl RuleFilter {
    fn matches(&self, version: &ObjectVersion) -> bool {
        let record = &version.record;
        if !record.key.starts_with(&self.prefix) {
            return false;
        }
        let tags = record.tag_set();
        if !self.tags.iter().all(|wanted| tags.contains(wanted)) {
            return false;
        }
        self.size_greater_than.is_none_or(|n| record.size > n) && self.size_less_than.is_none_or(|n| record.size < n)
    }

    /// Whether the filter can judge a delete marker (which has no tags and no size).
    fn judges_markers(&self) -> bool {
        self.tags.is_empty() && self.size_greater_than.is_none() && self.size_less_than.is_none()
    }
}

impl LifecycleConfiguration {
    /// The actions due at `now` on one key's whole history (newest first, as
    /// `VersionStore::list_versions` reads it): noncurrent versions first, then the current one.
    pub fn due(&self, history: &[ObjectVersion], now: OffsetDateTime) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(latest) = history.first() else { return actions };
        for rule in self.rules.iter().filter(|r| r.enabled) {
            if let Some(noncurrent) = rule.noncurrent_expiration {
                let keep = noncurrent.newer_noncurrent_versions.unwrap_or(0) as usize;
                // Each noncurrent entry stopped being current when the entry above it was made.
                // Noncurrent delete markers go too, without counting among the versions kept.
                let mut newer_versions = 0;
                for pair in history.windows(2).filter(|pair| !pair[1].current) {
                    let (above, entry) = (&pair[0], &pair[1]);
                    let due = aged(above.record.last_modified, noncurrent.days, now);
                    if entry.delete_marker {
                        if due && rule.filter.judges_markers() && entry.record.key.starts_with(&rule.filter.prefix) {
                            actions.push(Action::DeleteVersion(entry.record.version_id.clone()));
                        }
                        continue;
                    }
                    if newer_versions >= keep && due && rule.filter.matches(entry) {
                        actions.push(Action::DeleteVersion(entry.record.version_id.clone()));
                    }
                    newer_versions += 1;
                }
            }
            if rule.expired_object_delete_marker
                && history.len() == 1
                && latest.delete_marker
                && rule.filter.judges_markers()
                && latest.record.key.starts_with(&rule.filter.prefix)
            {
                actions.push(Action::DeleteVersion(latest.record.version_id.clone()));
            }
            if let Some(expiration) = rule.expiration
                && latest.current
                && rule.filter.matches(latest)
            {
                let due = match expiration {
                    Expiration::Days(days) => aged(latest.record.last_modified, days, now),
                    Expiration::Date(date) => date <= now,
                };
                if due {
                    actions.push(Action::ExpireCurrent);
                }
            }
        }
        actions.sort_by_key(|a| matches!(a, Action::ExpireCurrent));
        actions.dedup();
        actions
    }

    /// Whether an upload started at `initiated` to `key` is due to be aborted at `now`.
    pub fn abort_due(&self, key: &str, initiated: OffsetDateTime, now: OffsetDateTime) -> bool {
        self.rules.iter().filter(|r| r.enabled).any(|rule| {
            rule.abort_incomplete_upload_days
                .is_some_and(|days| key.starts_with(&rule.filter.prefix) && aged(initiated, days, now))
        })
    }
}

#[cfg(test)]
mod tests {
    use latchkey_meta::ObjectRecord;

    use super::*;

    fn day(n: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(n)
    }

    fn entry(key: &str, id: &str, written: OffsetDateTime, current: bool, marker: bool) -> ObjectVersion {
        let base = ObjectRecord::delete_marker("b", key, id.into(), true, written);
        let record = if marker { base } else { ObjectRecord { blob_id: id.into(), size: 10, ..base } };
        ObjectVersion { record, delete_marker: marker, latest: false, seq: 0, current }
    }

    fn rule(filter: RuleFilter) -> LifecycleRule {
        LifecycleRule {
            id: "r".into(),
            enabled: true,
            filter,
            expiration: None,
            expired_object_delete_marker: false,
            noncurrent_expiration: None,
            abort_incomplete_upload_days: None,
        }
    }

    fn config(rule: LifecycleRule) -> LifecycleConfiguration {
        LifecycleConfiguration { rules: vec![rule] }
    }

    #[test]
    fn days_count_to_the_next_midnight_utc() {
        let noon = day(10) + Duration::hours(12);
        assert_eq!(due_after(noon, 1), Some(day(12)));
        assert_eq!(due_after(day(10), 1), Some(day(11)));
        assert_eq!(due_after(day(10), u32::MAX), None, "past the last date: never");
    }

    #[test]
    fn current_versions_expire_by_days_or_date_when_the_filter_matches() {
        let history = [entry("logs/a", "v1", day(0), true, false)];
        let by_days = config(LifecycleRule {
            expiration: Some(Expiration::Days(3)),
            ..rule(RuleFilter { prefix: "logs/".into(), ..Default::default() })
        });
        assert_eq!(by_days.due(&history, day(2)), []);
        assert_eq!(by_days.due(&history, day(3)), [Action::ExpireCurrent]);
        let other_prefix = config(LifecycleRule {
            expiration: Some(Expiration::Days(3)),
            ..rule(RuleFilter { prefix: "tmp/".into(), ..Default::default() })
        });
        assert_eq!(other_prefix.due(&history, day(30)), []);
        let by_date = config(LifecycleRule { expiration: Some(Expiration::Date(day(5))), ..rule(Default::default()) });
        assert_eq!(by_date.due(&history, day(4)), []);
        assert_eq!(by_date.due(&history, day(5)), [Action::ExpireCurrent]);
        let small_only = config(LifecycleRule {
            expiration: Some(Expiration::Days(1)),
            ..rule(RuleFilter { size_less_than: Some(10), ..Default::default() })
        });
        assert_eq!(small_only.due(&history, day(30)), [], "10 bytes is not below 10");
        let tagged = config(LifecycleRule {
            expiration: Some(Expiration::Days(1)),
            ..rule(RuleFilter { tags: vec![Tag { key: "t".into(), value: "1".into() }], ..Default::default() })
        });
        assert_eq!(tagged.due(&history, day(30)), []);
        let mut disabled = by_days.clone();
        disabled.rules[0].enabled = false;
        assert_eq!(disabled.due(&history, day(30)), []);
    }

    #[test]
    fn noncurrent_versions_expire_counted_from_when_they_were_replaced_keeping_the_newest() {
        // Newest first: v3 (current, written day 20), v2 (day 5), marker m (day 10), v1 (day 1).
        let history = [
            entry("k", "v3", day(20), true, false),
            entry("k", "v2", day(5), false, false),
            entry("k", "m", day(10), false, true),
            entry("k", "v1", day(1), false, false),
        ];
        let rule = |keep| {
            config(LifecycleRule {
                noncurrent_expiration: Some(NoncurrentExpiration { days: 5, newer_noncurrent_versions: keep }),
                ..rule(Default::default())
            })
        };
        // m stopped being current when v2 was written (day 5), v1 when m was (day 10), v2 when
        // v3 was (day 20); with 5 days, they are due on days 10, 15 and 25.
        assert_eq!(rule(None).due(&history, day(14)), [Action::DeleteVersion("m".into())]);
        assert_eq!(
            rule(None).due(&history, day(15)),
            [Action::DeleteVersion("m".into()), Action::DeleteVersion("v1".into())]
        );
        assert_eq!(
            rule(None).due(&history, day(25)),
            [Action::DeleteVersion("v2".into()), Action::DeleteVersion("m".into()), Action::DeleteVersion("v1".into())]
        );
        let kept_one = [Action::DeleteVersion("m".into()), Action::DeleteVersion("v1".into())];
        assert_eq!(rule(Some(1)).due(&history, day(25)), kept_one, "markers do not count among those kept");
        assert_eq!(rule(Some(2)).due(&history, day(99)), [Action::DeleteVersion("m".into())]);
    }

    #[test]
    fn a_delete_marker_alone_is_removed_and_never_expired_as_a_version() {
        let alone = [entry("k", "m", day(0), false, true)];
        let cleanup = config(LifecycleRule { expired_object_delete_marker: true, ..rule(Default::default()) });
        assert_eq!(cleanup.due(&alone, day(0)), [Action::DeleteVersion("m".into())]);
        let with_version = [entry("k", "m", day(0), false, true), entry("k", "v1", day(0), false, false)];
        assert_eq!(cleanup.due(&with_version, day(9)), []);
        let expire = config(LifecycleRule { expiration: Some(Expiration::Days(1)), ..rule(Default::default()) });
        assert_eq!(expire.due(&alone, day(9)), [], "a key whose latest entry is a marker has nothing current");
    }

    #[test]
    fn uploads_are_aborted_after_their_days_under_the_prefix() {
        let aborts = config(LifecycleRule {
            abort_incomplete_upload_days: Some(2),
            ..rule(RuleFilter { prefix: "up/".into(), ..Default::default() })
        });
        assert!(!aborts.abort_due("up/x", day(0), day(1)));
        assert!(aborts.abort_due("up/x", day(0), day(2)));
        assert!(!aborts.abort_due("other", day(0), day(9)));
    }
}
