//! Redemptions of tokens that match no link. Anyone can send them, so each costs no durable
//! write: they are counted in memory and written to the audit trail as one
//! `share.unknown_tokens` event per interval, with the count and the busiest source addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use latchkey_meta::AuditEvent;
use time::OffsetDateTime;

/// Source addresses counted one by one per interval, at most; the rest only add to the total,
/// so a spray from many addresses cannot grow memory without bound.
const MAX_SOURCES: usize = 10_000;
/// Source addresses named in the aggregate event.
const TOP_SOURCES: usize = 5;

#[derive(Default)]
pub(crate) struct UnknownTokens {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: u64,
    by_source: HashMap<IpAddr, u64>,
}

impl UnknownTokens {
    pub(crate) fn count(&self, source: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total += 1;
        if counts.by_source.len() < MAX_SOURCES || counts.by_source.contains_key(&source) {
            *counts.by_source.entry(source).or_default() += 1;
        }
    }

    /// The aggregate event for what was counted since the last call, if anything was.
    pub(crate) fn take(&self) -> Option<AuditEvent> {
        let Counts { total, by_source } = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        if total == 0 {
            return None;
        }
        let mut sources: Vec<(IpAddr, u64)> = by_source.into_iter().collect();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        sources.truncate(TOP_SOURCES);
        let top: Vec<String> = sources.iter().map(|(ip, n)| format!("{ip}:{n}")).collect();
        Some(AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: "share.unknown_tokens".to_owned(),
            share_id: None,
            principal: None,
            source_ip: sources.first().map(|(ip, _)| ip.to_string()),
            user_agent: None,
            reason: Some(format!("count={total} top={}", top.join(","))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aggregate_by_source_and_reset() {
        let unknown = UnknownTokens::default();
        assert!(unknown.take().is_none());
        for ip in ["198.51.100.7", "203.0.113.9", "198.51.100.7"] {
            unknown.count(ip.parse().unwrap());
        }
        let event = unknown.take().unwrap();
        assert_eq!(event.event, "share.unknown_tokens");
        assert_eq!(event.source_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(event.reason.as_deref(), Some("count=3 top=198.51.100.7:2,203.0.113.9:1"));
        assert!(unknown.take().is_none(), "counting starts again after each event");
    }
}
