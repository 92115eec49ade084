//! The background task that runs the alarm rules: it reads each newly linked event of the chain
//! and the process's metrics (every second), feeds them to [`Alarms`], claims each firing in the store (one replica wins
//! it), posts the winner's notification to every webhook, and records `alarm.fired` in the
//! audit trail (which no rule counts).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use latchkey_meta::{AuditEvent, AuditQuery, AuditStore, MetaResult, MetaStore};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::alarm::{Alarms, Cause, Firing, GroupBy};
use crate::metric::Figures;
use crate::webhook::{Poster, Target};

/// Events read per store call.
const PAGE: u32 = 1000;
/// At start, how many past events teach `new_network` rules the networks already seen.
const HISTORY: i64 = 100_000;
/// Firings are remembered (so that no replica claims one again) this long.
const FIRINGS_KEPT: time::Duration = time::Duration::days(2);

/// The process's metrics in the Prometheus text format, for metric rules.
pub type RenderMetrics = Box<dyn Fn() -> String + Send + Sync>;

pub struct Watcher {
    trail: Arc<dyn AuditStore>,
    metrics: RenderMetrics,
    meta: Arc<dyn MetaStore>,
    alarms: Alarms,
    targets: Arc<Vec<Target>>,
    poster: Poster,
    /// Firings whose claim could not be written yet, tried again before anything new.
    unclaimed: Vec<Firing>,
}

impl Watcher {
    pub fn new(
        trail: Arc<dyn AuditStore>,
        meta: Arc<dyn MetaStore>,
        alarms: Alarms,
        targets: Vec<Target>,
        poster: Poster,
        metrics: RenderMetrics,
    ) -> Watcher {
        Watcher { trail, metrics, meta, alarms, targets: Arc::new(targets), poster, unclaimed: Vec::new() }
    }

    /// Watches until `shutdown` resolves (at once when there is no rule).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        if self.alarms.is_empty() {
            return;
        }
        tokio::pin!(shutdown);
        let mut cursor = loop {
            match self.catch_up().await {
                Ok(cursor) => break cursor,
                Err(e) => tracing::error!(error = %e, "alarms cannot read the audit trail; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = &mut shutdown => return,
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut purged = OffsetDateTime::now_utc();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => return,
            }
            if self.alarms.reads_metrics() {
                let figures = Figures::parse(&(self.metrics)());
                let fired = self.alarms.observe_metrics(&figures, OffsetDateTime::now_utc());
                self.unclaimed.extend(fired);
            }
            if let Err(e) = self.watch(&mut cursor).await {
                tracing::error!(error = %e, "alarms cannot read the audit trail or claim a firing");
            }
            let now = OffsetDateTime::now_utc();
            self.alarms.forget(now);
            if now - purged > time::Duration::hours(1) {
                purged = now;
                if let Err(e) = self.trail.purge_alarm_firings(now - FIRINGS_KEPT).await {
                    tracing::warn!(error = %e, "cannot forget old alarm firings");
                }
            }
        }
    }

    /// Learns the recent past without firing (for `new_network` rules); the position to watch
    /// from.
    async fn catch_up(&mut self) -> MetaResult<i64> {
        let Some((head, _)) = self.trail.audit_head().await? else { return Ok(0) };
        let mut after = if self.alarms.needs_history() { (head - HISTORY).max(0) } else { head };
        while after < head {
            let page = self.trail.chained_audit(&AuditQuery::page(after, PAGE)).await?;
            let Some(last) = page.last() else { break };
            after = last.pos;
            page.iter().for_each(|event| self.alarms.learn(event));
        }
        Ok(head)
    }

    /// Feeds the events linked after `cursor`, moving it past each one fed, then claims what
    /// fired. A claim that cannot be written waits in `unclaimed` (its events are not fed again,
    /// which would count them twice).
    async fn watch(&mut self, cursor: &mut i64) -> MetaResult<()> {
        loop {
            let page = self.trail.chained_audit(&AuditQuery::page(*cursor, PAGE)).await?;
            for event in &page {
                let fired = self.alarms.observe(event);
                self.unclaimed.extend(fired);
                *cursor = event.pos;
            }
            self.claim().await?;
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Claims each waiting firing in order; the one that wins is delivered.
    async fn claim(&mut self) -> MetaResult<()> {
        while let Some(firing) = self.unclaimed.first() {
            if self.trail.claim_alarm(&firing.rule, &firing.group, firing.window_start).await? {
                let firing = firing.clone();
                tokio::spawn(notify(firing, self.targets.clone(), self.poster.clone(), self.meta.clone()));
            }
            self.unclaimed.remove(0);
        }
        Ok(())
    }
}

/// The notification's JSON body: the event that made it fire, or the metric's figure.
fn body(firing: &Firing) -> serde_json::Value {
    let rfc3339 = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut body = json!({
        "id": firing.id(),
        "alarm": firing.rule,
        "summary": firing.describe(),
        "fired_at": rfc3339(OffsetDateTime::now_utc()),
        "window_start": rfc3339(firing.window_start),
        "window_secs": firing.window_secs,
        "count": firing.count,
        "threshold": firing.threshold,
        "group_by": firing.group_by.map(|g| match g { GroupBy::SourceIp => "source_ip", GroupBy::Principal => "principal" }),
        "group": firing.group,
    });
    let (field, cause) = match &firing.cause {
        Cause::Event(sample) => (
            "event",
            json!({
                "pos": sample.pos,
                "time": rfc3339(sample.event.at),
                "event": sample.event.event,
                "principal": sample.event.principal,
                "source_ip": sample.event.source_ip,
                "reason": sample.event.reason,
            }),
        ),
        Cause::Metric { metric, value, gauge } => ("metric", json!({ "name": metric, "value": value, "gauge": gauge })),
    };
    body[field] = cause;
    body
}

/// Posts a firing to every webhook, then records it (with how each delivery went).
async fn notify(firing: Firing, targets: Arc<Vec<Target>>, poster: Poster, meta: Arc<dyn MetaStore>) {
    let body = Bytes::from(body(&firing).to_string());
    let id = firing.id();
    let deliveries = targets.iter().map(|target| {
        let (poster, body, id) = (poster.clone(), body.clone(), id.clone());
        async move {
            let (taken, outcome) = poster.deliver(target, &id, body).await;
            if !taken {
                tracing::warn!(webhook = %target.url, alarm = %id, outcome, "an alarm notification was not delivered");
            }
            // The URL's path and query can be a credential (Slack, Discord): only its host.
            format!(
                "{}://{} {outcome}",
                target.url.scheme_str().unwrap_or("http"),
                target.url.authority().map_or("-", |a| a.as_str())
            )
        }
    });
    let outcomes = futures::future::join_all(deliveries).await;
    // Not the sample's principal or address: a query for those shows what they did.
    let event = AuditEvent {
        at: OffsetDateTime::now_utc(),
        event: "alarm.fired".into(),
        share_id: None,
        principal: None,
        source_ip: None,
        user_agent: None,
        reason: Some(if outcomes.is_empty() {
            firing.describe()
        } else {
            format!("{}; webhooks: {}", firing.describe(), outcomes.join(", "))
        }),
    };
    if let Err(e) = meta.record_audit(&event).await {
        tracing::error!(error = %e, "cannot record a fired alarm");
    }
}
