//! Security events seen from the router, once a request's answer is known, into the audit trail:
//!
//! - `auth.failed`: a signature, key or session token refused (SignatureDoesNotMatch,
//!   InvalidAccessKeyId, InvalidClientTokenId, ExpiredToken, InvalidToken...), with the key id
//!   when it has the shape of one; at most [`FAILURES_PER_WINDOW`] per client address per
//!   [`FAILURE_WINDOW`], the rest counted into one event when that address next fails, so a
//!   flood of bad signatures cannot flood the trail;
//! - `config.changed`: a bucket created or deleted, or its policy, public access block, CORS
//!   rules or tags changed;
//! - `root.used`: the root user's credentials at work, once per client address per
//!   [`ROOT_USE_EVERY`] (the first operation named), so that "any use of root keys" can be
//!   alarmed on without a row per request.
//!
//! What the layers behind record themselves (policy denials, IAM changes and STS credentials,
//! share and presigned-URL lifecycle) is not repeated here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_meta::{AuditEvent, MetaStore};
use time::OffsetDateTime;

/// How often one client address's use of root credentials is recorded.
pub const ROOT_USE_EVERY: Duration = Duration::from_secs(600);
/// Addresses remembered (for root use, for failures) at most; beyond, the memory starts over.
const MEMORY: usize = 4096;
/// Authentication failures recorded one by one per client address and window.
pub const FAILURES_PER_WINDOW: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10);

/// One address's failures in its current window.
struct Failures {
    since: Instant,
    recorded: u32,
    /// Failures not recorded one by one.
    counted: u64,
}

/// Error codes that say the credentials themselves were refused.
const AUTH_FAILURES: [&str; 8] = [
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
];

/// S3 operations that change a bucket's existence or settings.
const CONFIG_CHANGES: [&str; 10] = [
    "CreateBucket",
    "DeleteBucket",
    "PutBucketPolicy",
    "DeleteBucketPolicy",
    "PutPublicAccessBlock",
    "DeletePublicAccessBlock",
    "PutBucketCors",
    "DeleteBucketCors",
    "PutBucketTagging",
    "DeleteBucketTagging",
];

/// One request as the router saw it answered.
pub struct Answered<'a> {
    pub client: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub error_code: Option<&'a str>,
    pub operation: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub principal: Option<&'a str>,
    /// Only when shaped like a key id.
    pub access_key_id: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub struct SecurityEvents {
    meta: Arc<dyn MetaStore>,
    root_arn: String,
    root_seen: Mutex<HashMap<IpAddr, Instant>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl SecurityEvents {
    pub fn new(meta: Arc<dyn MetaStore>, root_arn: String) -> SecurityEvents {
        SecurityEvents { meta, root_arn, root_seen: Mutex::new(HashMap::new()), failures: Mutex::new(HashMap::new()) }
    }

    /// Records what `answered` says, if it is a security event (in a task of its own: the
    /// response is already gone).
    pub fn observe(&self, answered: &Answered<'_>) {
        for (event, reason) in self.events(answered) {
            self.record(answered, event, reason);
        }
    }

    fn record(&self, answered: &Answered<'_>, event: &'static str, reason: String) {
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: event.into(),
            share_id: None,
            principal: answered.principal.map(str::to_owned),
            source_ip: Some(answered.client.to_string()),
            user_agent: answered.user_agent.map(str::to_owned),
            reason: Some(reason),
        };
        let meta = self.meta.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = meta.record_audit(&event).await {
                    tracing::error!(error = %e, "cannot record a security event");
                }
            });
        }
    }

    /// The security events a request makes: an authentication failure, or else a
    /// configuration change and root's use (both, for root changing a bucket's settings).
    fn events(&self, a: &Answered<'_>) -> Vec<(&'static str, String)> {
        let operation = a.operation.unwrap_or("-");
        if let Some(code) = a.error_code.filter(|code| AUTH_FAILURES.contains(code)) {
            let key = a.access_key_id.map(|k| format!(" (access key {k})")).unwrap_or_default();
            let reason = format!("{} {}: {code}{key}", a.method, a.path);
            return self
                .failure_recorded(a.client)
                .map(|counted| {
                    let more = if counted > 0 {
                        format!("; {counted} more failures from this address were counted, not recorded one by one")
                    } else {
                        String::new()
                    };
                    ("auth.failed", reason + &more)
                })
                .into_iter()
                .collect();
        }
        let mut events = Vec::new();
        if (200..300).contains(&a.status) && CONFIG_CHANGES.contains(&operation) {
            events.push(("config.changed", format!("{operation} {}", a.bucket.unwrap_or("-"))));
        }
        if a.principal == Some(self.root_arn.as_str()) && self.root_first_seen(a.client) {
            events.push(("root.used", format!("{operation} ({} {})", a.method, a.status)));
        }
        events
    }

    /// Whether a failure from `client` is recorded, with the failures counted unrecorded before
    /// it; `None` when it is only counted.
    fn failure_recorded(&self, client: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MEMORY && !failures.contains_key(&client) {
            failures.clear();
        }
        let entry = failures.entry(client).or_insert(Failures { since: now, recorded: 0, counted: 0 });
        if now.duration_since(entry.since) >= FAILURE_WINDOW {
            let counted = entry.counted;
            *entry = Failures { since: now, recorded: 1, counted: 0 };
            return Some(counted);
        }
        if entry.recorded < FAILURES_PER_WINDOW {
            entry.recorded += 1;
            return Some(0);
        }
        entry.counted += 1;
        None
    }

    /// Whether root's use from `client` was not recorded within [`ROOT_USE_EVERY`].
    fn root_first_seen(&self, client: IpAddr) -> bool {
        let now = Instant::now();
        let mut seen = self.root_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(&client).is_some_and(|at| now.duration_since(*at) < ROOT_USE_EVERY) {
            return false;
        }
        if seen.len() >= MEMORY {
            seen.clear();
        }
        seen.insert(client, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, error_code: Option<&'static str>, operation: &'static str) -> Answered<'static> {
        Answered {
            client: "192.0.2.9".parse().unwrap(),
            method: "PUT",
            path: "/b",
            status,
            error_code,
            operation: Some(operation),
            bucket: Some("b"),
            principal: Some("arn:aws:iam::000000000000:user/u"),
            access_key_id: Some("AKIAEXAMPLEEXAMPLE"),
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn what_counts_as_a_security_event() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(latchkey_meta::SqliteStore::open(&dir.path().join("meta.db")).await.unwrap());
        let events = SecurityEvents::new(meta, "arn:aws:iam::000000000000:root".into());
        let failed = events.events(&answered(403, Some("SignatureDoesNotMatch"), "PutBucketPolicy"));
        assert_eq!(failed, [("auth.failed", "PUT /b: SignatureDoesNotMatch (access key AKIAEXAMPLEEXAMPLE)".into())]);
        assert_eq!(events.events(&answered(204, None, "PutBucketPolicy"))[0].0, "config.changed");
        assert!(events.events(&answered(403, Some("AccessDenied"), "PutBucketPolicy")).is_empty(), "a denial");
        assert!(events.events(&answered(200, None, "PutObject")).is_empty());
        let root = Answered { principal: Some("arn:aws:iam::000000000000:root"), ..answered(200, None, "GetObject") };
        assert_eq!(events.events(&root), [("root.used", "GetObject (PUT 200)".into())]);
        assert!(events.events(&root).is_empty(), "once per address per interval");
        // Review finding: root changing a bucket's settings is both.
        let root_change = Answered { client: "192.0.2.10".parse().unwrap(), ..answered(204, None, "PutBucketPolicy") };
        let root_change = Answered { principal: Some("arn:aws:iam::000000000000:root"), ..root_change };
        let kinds: Vec<_> = events.events(&root_change).into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, ["config.changed", "root.used"]);

        // Review finding: a flood of failures from one address records at most a few.
        let flood = Answered {
            client: "192.0.2.66".parse().unwrap(),
            ..answered(403, Some("SignatureDoesNotMatch"), "GetObject")
        };
        let recorded = (0..500).filter(|_| !events.events(&flood).is_empty()).count();
        assert_eq!(recorded, FAILURES_PER_WINDOW as usize);
        assert_eq!(events.failures.lock().unwrap()[&flood.client].counted, 500 - u64::from(FAILURES_PER_WINDOW));
    }
}
