//! The tamper-evident audit trail, CloudTrail's digest files as the model.
//!
//! Events are recorded by the metadata store unchained; [`Linker`] links them into the store's
//! hash chain soon after (see `latchkey_meta::AuditStore`) and, at each digest interval,
//! signs the chain's head with the server's Ed25519 key ([`SigningKey`], kept in the data dir;
//! its public half is served at `/-/audit/public-key`). [`verify`] recomputes the chain and
//! checks every digest, naming the first broken link: the server's own check and
//! `latchkey audit verify`, which can read a store directly.
//!
//! Alarms watch the same chain and the process's metrics: [`alarm`] holds the rules and their
//! counts, [`metric`] reads the metrics' rendering, [`Watcher`] feeds them each linked event and
//! each second's figures and delivers what fires to signed [`webhook`]s.

pub mod alarm;
mod digest;
mod key;
mod linker;
pub mod metric;
mod verify;
mod watcher;
pub mod webhook;

pub use digest::{digest_message, sign_digest};
pub use key::{PublicKey, SigningKey};
pub use linker::Linker;
pub use verify::{Broken, Verified, verify};
pub use watcher::Watcher;
