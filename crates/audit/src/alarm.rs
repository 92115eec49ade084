//! Alarm rules (`[[alarms]]` in TOML) over the audit trail, evaluated as events are linked, or
//! over this replica's metrics, evaluated every second.
//!
//! An event rule counts the events that match it (an event name, `auth.*` or `*`; optionally a reason
//! substring and a principal), per group (`group_by`: `source_ip`, `principal`, or none), in
//! tumbling windows of event time (`window_secs`, aligned to the epoch). It fires once per
//! group and window, when the count passes `threshold` (0: on the first event). A
//! `new_network` rule instead fires when a principal is seen from a network (an IPv4 /24, an
//! IPv6 /48) it was not seen from before. Every replica reads the whole chain and decides alike;
//! the store lets one of them claim each firing ([`AuditStore::claim_alarm`]), and that one
//! delivers it. A metric rule sums the series of one metric that carry its `labels`; it fires
//! once per tumbling window when the sum rose by more than `threshold` within the window (or,
//! for a gauge, stood above it). Metrics are per replica: each judges its own, and the claim
//! still lets one firing per window through.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use latchkey_meta::ChainedEvent;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::metric::Figures;

/// Audit events the alarms themselves write, which no rule counts.
pub const ALARM_EVENTS: &str = "alarm.";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRule {
    pub name: String,
    /// The event name (`share.denied`), a family (`auth.*`) or every event (`*`).
    pub event: Option<String>,
    /// Or a metric series (`latchkey_denied_total`).
    pub metric: Option<String>,
    /// The metric's series counted: those with these label values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Only events whose reason contains this.
    pub reason_contains: Option<String>,
    /// Only events of this principal (ARN).
    pub principal: Option<String>,
    pub group_by: Option<GroupBy>,
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// Fires when more events than this fall in one window.
    #[serde(default)]
    pub threshold: u64,
    /// Fires when a principal is seen from a network it was not seen from before.
    #[serde(default)]
    pub new_network: bool,
}

fn default_window() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    SourceIp,
    Principal,
}

impl AlarmRule {
    /// Why the rule cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let name = &self.name;
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Some(format!("alarm name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"));
        }
        if self.window_secs == 0 || self.window_secs > 86_400 {
            return Some(format!("alarm {name}: window_secs must be between 1 and 86400"));
        }
        match (&self.event, &self.metric) {
            (Some(event), None) => {
                if event.is_empty() || (event.contains('*') && !event.ends_with('*')) {
                    return Some(format!("alarm {name}: event must be a name, a prefix ending in *, or *"));
                }
                if !self.labels.is_empty() {
                    return Some(format!("alarm {name}: labels go with a metric"));
                }
            }
            (None, Some(_)) => {
                let event_only = self.reason_contains.is_some() || self.principal.is_some() || self.group_by.is_some();
                if event_only || self.new_network {
                    return Some(format!(
                        "alarm {name}: a metric rule takes no reason_contains, principal, group_by or new_network"
                    ));
                }
            }
            _ => return Some(format!("alarm {name}: give either an event or a metric")),
        }
        if self.new_network && (self.group_by.is_some() || self.threshold > 0) {
            return Some(format!("alarm {name}: new_network rules take no group_by or threshold"));
        }
        None
    }

    fn matches(&self, event: &ChainedEvent) -> bool {
        let Some(pattern) = &self.event else { return false };
        let e = &event.event;
        let name_matches = match pattern.strip_suffix('*') {
            Some(prefix) => e.event.starts_with(prefix),
            None => e.event == *pattern,
        };
        name_matches
            && !e.event.starts_with(ALARM_EVENTS)
            && self.reason_contains.as_deref().is_none_or(|s| e.reason.as_deref().is_some_and(|r| r.contains(s)))
            && self.principal.as_deref().is_none_or(|p| e.principal.as_deref() == Some(p))
    }

    /// The group an event counts in; `-` for an event without the grouped field (an
    /// authentication failure has no principal).
    fn group(&self, event: &ChainedEvent) -> String {
        let value = match self.group_by {
            None => return String::new(),
            Some(GroupBy::SourceIp) => &event.event.source_ip,
            Some(GroupBy::Principal) => &event.event.principal,
        };
        value.clone().unwrap_or_else(|| "-".to_owned())
    }
}

/// A rule that fired: for one group, in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub rule: String,
    /// The group's value (an address or a principal; empty without grouping).
    pub group: String,
    pub group_by: Option<GroupBy>,
    pub window_start: OffsetDateTime,
    pub window_secs: u64,
    pub count: u64,
    pub threshold: u64,
    pub cause: Cause,
}

/// What made a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The event that passed the threshold.
    Event(ChainedEvent),
    /// The metric's sum: its rise within the window, or a gauge's value.
    Metric { metric: String, value: f64, gauge: bool },
}

impl Firing {
    /// What the firing is, in one line (its audit reason).
    pub fn describe(&self) -> String {
        let group = if self.group.is_empty() { String::new() } else { format!(" from {}", self.group) };
        let (rule, window, threshold) = (&self.rule, self.window_secs, self.threshold);
        match &self.cause {
            Cause::Metric { metric, value, gauge: true } => {
                format!("{rule}: {metric} at {value} (threshold {threshold})")
            }
            Cause::Metric { metric, value, gauge: false } => {
                format!("{rule}: {metric} rose by {value} in {window} s (threshold {threshold})")
            }
            Cause::Event(sample) if window == 0 => format!(
                "{rule}: {} seen from a new network {}",
                self.group,
                sample.event.source_ip.as_deref().unwrap_or("-")
            ),
            Cause::Event(sample) => {
                format!(
                    "{rule}: {} {} events in {window} s (threshold {threshold}){group}",
                    self.count, sample.event.event
                )
            }
        }
    }

    /// The id receivers can deduplicate by: rule, group and window (milliseconds, as claimed).
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.rule, self.group, self.window_start.unix_timestamp_nanos() / 1_000_000)
    }
}

/// The network an address belongs to, for `new_network`.
fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// Counts and networks kept at most; beyond, the oldest windows go first, and the networks
/// start over (so a flood of addresses costs memory once, not without bound).
const MAX_COUNTS: usize = 100_000;
const MAX_NETWORKS: usize = 100_000;

/// The counts of every rule, fed with events in chain order.
pub struct Alarms {
    rules: Vec<AlarmRule>,
    /// (rule index, group, window start) -> count.
    counts: HashMap<(usize, String, i64), u64>,
    /// (rule index, principal, network) seen by each `new_network` rule, from the events it
    /// matches only: events a rule does not watch cannot make a network known to it.
    networks: HashSet<(usize, String, String)>,
    /// Each metric rule's window (by rule index).
    metric_windows: HashMap<usize, MetricWindow>,
}

/// A metric rule's current window: its start, the sum when it started, whether it fired.
#[derive(Debug, Clone, Copy)]
struct MetricWindow {
    start: i64,
    base: f64,
    /// The sum at the last reading (the next window's base) and when it was read.
    last: f64,
    read_at: i64,
    fired: bool,
}

impl Alarms {
    pub fn new(rules: Vec<AlarmRule>) -> Alarms {
        Alarms { rules, counts: HashMap::new(), networks: HashSet::new(), metric_windows: HashMap::new() }
    }

    /// Whether a rule reads metrics.
    pub fn reads_metrics(&self) -> bool {
        self.rules.iter().any(|rule| rule.metric.is_some())
    }

    /// Takes in a reading of the metrics at `now`; the firings it causes. A counter's rise is
    /// measured from the last reading of the window before; the first reading, and one after a
    /// gap longer than the window (the readings stalled), only set the base: a rise of unknown
    /// timing is not put in one window.
    pub fn observe_metrics(&mut self, figures: &Figures, now: OffsetDateTime) -> Vec<Firing> {
        let mut fired = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let Some(metric) = &rule.metric else { continue };
            let labels: Vec<(String, String)> = rule.labels.clone().into_iter().collect();
            let sum = figures.sum(metric, &labels).unwrap_or(0.0);
            let window = rule.window_secs as i64;
            let at = now.unix_timestamp();
            let start = at.div_euclid(window) * window;
            let fresh = MetricWindow { start, base: sum, last: sum, read_at: at, fired: false };
            let state = self.metric_windows.entry(index).or_insert(fresh);
            if at - state.read_at > window {
                *state = fresh;
            } else if state.start != start {
                *state = MetricWindow { start, base: state.last, fired: false, ..*state };
            }
            state.last = sum;
            state.read_at = at;
            let gauge = figures.is_gauge(metric);
            let value = if gauge { sum } else { sum - state.base };
            if !state.fired && value > rule.threshold as f64 {
                state.fired = true;
                fired.push(Firing {
                    rule: rule.name.clone(),
                    group: String::new(),
                    group_by: None,
                    window_start: OffsetDateTime::from_unix_timestamp(start).unwrap_or(now),
                    window_secs: rule.window_secs,
                    count: value as u64,
                    threshold: rule.threshold,
                    cause: Cause::Metric { metric: metric.clone(), value, gauge },
                });
            }
        }
        fired
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a rule needs the past (the networks principals were seen from).
    pub fn needs_history(&self) -> bool {
        self.rules.iter().any(|rule| rule.new_network)
    }

    /// Takes in an event without firing (history read at start, so that networks are known).
    pub fn learn(&mut self, event: &ChainedEvent) {
        self.new_networks(event);
    }

    /// The `new_network` rules (by index) for which `event` shows a principal on a network new
    /// to it, now remembered.
    fn new_networks(&mut self, event: &ChainedEvent) -> Vec<usize> {
        let Some((principal, network)) = principal_network(event) else { return Vec::new() };
        if self.networks.len() >= MAX_NETWORKS {
            self.networks.clear();
        }
        let watching: Vec<usize> =
            (0..self.rules.len()).filter(|i| self.rules[*i].new_network && self.rules[*i].matches(event)).collect();
        watching.into_iter().filter(|i| self.networks.insert((*i, principal.clone(), network.clone()))).collect()
    }

    /// Takes in the next event; the firings it causes.
    pub fn observe(&mut self, event: &ChainedEvent) -> Vec<Firing> {
        let mut fired = Vec::new();
        for index in self.new_networks(event) {
            let rule = &self.rules[index];
            fired.push(Firing {
                rule: rule.name.clone(),
                group: event.event.principal.clone().unwrap_or_default(),
                group_by: Some(GroupBy::Principal),
                window_start: event.event.at,
                window_secs: 0,
                count: 1,
                threshold: 0,
                cause: Cause::Event(event.clone()),
            });
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.new_network || !rule.matches(event) {
                continue;
            }
            let group = rule.group(event);
            let window = rule.window_secs as i64;
            let start = event.event.at.unix_timestamp().div_euclid(window) * window;
            if self.counts.len() >= MAX_COUNTS && !self.counts.contains_key(&(index, group.clone(), start)) {
                let oldest = self.counts.keys().map(|(_, _, start)| *start).min().unwrap_or(start);
                self.counts.retain(|(_, _, s), _| *s > oldest);
            }
            let count = self.counts.entry((index, group.clone(), start)).or_insert(0);
            *count += 1;
            if *count == rule.threshold.saturating_add(1) {
                fired.push(Firing {
                    rule: rule.name.clone(),
                    group,
                    group_by: rule.group_by,
                    window_start: OffsetDateTime::from_unix_timestamp(start).unwrap_or(event.event.at),
                    window_secs: rule.window_secs,
                    count: *count,
                    threshold: rule.threshold,
                    cause: Cause::Event(event.clone()),
                });
            }
        }
        fired
    }

    /// Forgets the counts of windows that ended more than a minute before `now` (events are
    /// linked within a second of being recorded; a late one still counts in its window).
    pub fn forget(&mut self, now: OffsetDateTime) {
        let rules = &self.rules;
        let before = now.unix_timestamp() - 60;
        self.counts.retain(|(index, _, start), _| start + rules[*index].window_secs as i64 >= before);
    }
}

fn principal_network(event: &ChainedEvent) -> Option<(String, String)> {
    let principal = event.event.principal.clone()?;
    let ip: IpAddr = event.event.source_ip.as_deref()?.parse().ok()?;
    Some((principal, network(ip)))
}

#[cfg(test)]
mod tests {
    use latchkey_meta::AuditEvent;

    use super::*;

    fn event(pos: i64, at: i64, name: &str, ip: &str, reason: &str) -> ChainedEvent {
        ChainedEvent {
            pos,
            event: AuditEvent {
                at: OffsetDateTime::from_unix_timestamp(at).unwrap(),
                event: name.into(),
                share_id: None,
                principal: Some("arn:aws:iam::000000000000:user/alice".into()),
                source_ip: Some(ip.into()),
                user_agent: None,
                reason: Some(reason.into()),
            },
            hash: vec![],
        }
    }

    fn rule(toml_text: &str) -> AlarmRule {
        let rule: AlarmRule = toml::from_str(toml_text).unwrap();
        assert_eq!(rule.problem(), None);
        rule
    }

    #[test]
    fn a_rule_fires_once_per_group_and_window_past_its_threshold() {
        let denials = rule("name = \"denials\"\nevent = \"share.denied\"\ngroup_by = \"source_ip\"\nthreshold = 2");
        let mut alarms = Alarms::new(vec![denials]);
        let fired: Vec<_> = (0..5)
            .flat_map(|i| alarms.observe(&event(i, 1_800_000_000 + i, "share.denied", "192.0.2.1", "used")))
            .collect();
        assert_eq!(fired.len(), 1, "once in the window");
        let Cause::Event(sample) = &fired[0].cause else { panic!("an event rule") };
        assert_eq!((fired[0].count, fired[0].group.as_str(), sample.pos), (3, "192.0.2.1", 2));
        assert_eq!(fired[0].describe(), "denials: 3 share.denied events in 60 s (threshold 2) from 192.0.2.1");
        // Another address counts apart; the next window starts over.
        let other: Vec<_> = (0..3)
            .flat_map(|i| alarms.observe(&event(10 + i, 1_800_000_010, "share.denied", "192.0.2.2", "x")))
            .collect();
        assert_eq!(other.len(), 1);
        let next: Vec<_> = (0..3)
            .flat_map(|i| alarms.observe(&event(20 + i, 1_800_000_060 + i, "share.denied", "192.0.2.1", "x")))
            .collect();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].window_start.unix_timestamp(), 1_800_000_060);
        assert!(
            alarms.observe(&event(30, 1_800_000_070, "share.redeemed", "192.0.2.1", "x")).is_empty(),
            "another event"
        );
    }

    #[test]
    fn filters_families_reasons_and_new_networks() {
        let burst =
            rule("name = \"sig\"\nevent = \"auth.*\"\nreason_contains = \"SignatureDoesNotMatch\"\nthreshold = 1");
        let root = rule("name = \"root\"\nevent = \"root.used\"");
        let roaming = rule("name = \"roaming\"\nevent = \"*\"\nnew_network = true");
        let mut alarms = Alarms::new(vec![burst, root, roaming]);
        alarms.learn(&event(0, 1_799_999_000, "policy.denied", "10.1.2.3", "x"));
        assert!(alarms.observe(&event(1, 1_800_000_000, "auth.failed", "10.1.2.4", "InvalidAccessKeyId")).is_empty());
        assert!(
            alarms.observe(&event(2, 1_800_000_001, "auth.failed", "10.1.2.5", "SignatureDoesNotMatch")).is_empty()
        );
        let fired = alarms.observe(&event(3, 1_800_000_002, "auth.failed", "10.1.2.5", "SignatureDoesNotMatch"));
        assert_eq!(fired.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(), ["sig"]);
        assert_eq!(alarms.observe(&event(4, 1_800_000_003, "root.used", "10.1.2.5", "x"))[0].rule, "root");
        let moved = alarms.observe(&event(5, 1_800_000_004, "policy.denied", "203.0.113.9", "x"));
        assert_eq!(moved.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(), ["roaming"]);
        assert!(moved[0].describe().contains("seen from a new network 203.0.113.9"));
        assert!(alarms.observe(&event(6, 1_800_000_005, "policy.denied", "203.0.113.10", "x")).is_empty(), "known now");
        assert!(
            alarms.observe(&event(7, 1_800_000_006, "alarm.fired", "198.51.100.1", "x")).is_empty(),
            "never alarms"
        );
    }

    #[test]
    fn metric_rules_fire_on_a_rise_within_a_window_or_a_gauge_above_the_threshold() {
        let denials = rule(
            "name = \"denials\"\nmetric = \"latchkey_denied_total\"\nlabels = { code = \"AccessDenied\" }\nthreshold = 5",
        );
        let open = rule("name = \"open\"\nmetric = \"latchkey_open_connections\"\nthreshold = 100");
        let mut alarms = Alarms::new(vec![denials, open]);
        assert!(alarms.reads_metrics());
        let reading = |denied: u32, other: u32, open: u32| {
            Figures::parse(&format!(
                "latchkey_denied_total{{code=\"AccessDenied\"}} {denied}\n\
                 latchkey_denied_total{{code=\"SignatureDoesNotMatch\"}} {other}\n\
                 # TYPE latchkey_open_connections gauge\nlatchkey_open_connections {open}\n"
            ))
        };
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap();
        let names = |fired: Vec<Firing>| fired.into_iter().map(|f| f.rule).collect::<Vec<_>>();
        assert!(alarms.observe_metrics(&reading(40, 50, 10), at(0)).is_empty(), "the first reading is the base");
        assert!(alarms.observe_metrics(&reading(45, 50, 10), at(1)).is_empty(), "five is not more than five");
        let fired = alarms.observe_metrics(&reading(46, 50, 10), at(2));
        assert_eq!(fired[0].describe(), "denials: latchkey_denied_total rose by 6 in 60 s (threshold 5)");
        assert!(alarms.observe_metrics(&reading(60, 50, 10), at(3)).is_empty(), "once per window");
        // The next window counts from the last reading of this one.
        assert!(alarms.observe_metrics(&reading(65, 90, 10), at(61)).is_empty());
        assert_eq!(names(alarms.observe_metrics(&reading(66, 90, 101), at(62))), ["denials", "open"]);
        let fired = alarms.observe_metrics(&reading(66, 90, 500), at(121));
        assert_eq!(fired[0].describe(), "open: latchkey_open_connections at 500 (threshold 100)");
        assert_eq!(fired[0].window_start, at(120));
        // Readings that stalled for longer than a window: the rise is not known to be recent.
        assert!(alarms.observe_metrics(&reading(1000, 90, 10), at(400)).is_empty());
        assert_eq!(names(alarms.observe_metrics(&reading(1006, 90, 10), at(401))), ["denials"]);
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let bad: AlarmRule = toml::from_str("name = \"w\"\nevent = \"a*b\"").unwrap();
        assert!(bad.problem().unwrap().contains("alarm w: event"));
        let bad: AlarmRule = toml::from_str("name = \"w\"\nevent = \"x\"\nwindow_secs = 0").unwrap();
        assert!(bad.problem().unwrap().contains("window_secs"));
        assert!(toml::from_str::<AlarmRule>("name = \"w\"\nevent = \"x\"\nthreshhold = 3").is_err(), "unknown fields");
        let bad: AlarmRule = toml::from_str("name = \"w\"\nevent = \"x\"\nnew_network = true\nthreshold = 2").unwrap();
        assert!(bad.problem().unwrap().contains("take no group_by or threshold"));
        let bad: AlarmRule = toml::from_str("name = \"w\"\nevent = \"x\"\nmetric = \"m\"").unwrap();
        assert!(bad.problem().unwrap().contains("either an event or a metric"));
        let bad: AlarmRule = toml::from_str("name = \"w\"\nmetric = \"m\"\ngroup_by = \"principal\"").unwrap();
        assert!(bad.problem().unwrap().contains("a metric rule takes no"));
        let bad: AlarmRule = toml::from_str("name = \"w\"\nevent = \"x\"\nlabels = { a = \"b\" }").unwrap();
        assert!(bad.problem().unwrap().contains("labels go with a metric"));
    }
}
