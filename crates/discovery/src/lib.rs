//! Sensitive-data discovery in stored objects: the scan queue's workers ([`Discovery`]) claim
//! object versions that uploads queued (`latchkey-meta`'s `FindingsStore`), scan their bytes with
//! the `latchkey-scan` engine on low-priority threads, judge each report against the remediation
//! rules ([`remediation`]: tag, quarantine, notify) and record the version's status and finding
//! in one transaction. Reads honour the status through `latchkey-object`'s `ScanGate`. On-demand
//! scan jobs ([`jobs`]) queue a bucket's existing versions for the same workers. Every scan
//! uses the server's identifiers plus the custom ones created through the API ([`identifiers`]).

pub mod identifiers;
pub mod jobs;
pub mod remediation;
mod worker;

pub use remediation::{Action, DiscoveryConfig, RemediationRule};
pub use worker::{Discovery, finding_json};
