//! Latchkey identities: principals, keys, sessions, MFA and the IAM/STS query APIs.
//!
//! [`Identity`] (`service.rs`) answers who signed a request and whether they may do what they
//! ask, from an in-memory [`directory`] rebuilt whenever the store announces a change;
//! [`api`] serves the IAM ([`iam`]) and STS ([`sts`]) query APIs. Underneath: [`seal`] keeps
//! secrets encrypted under the server master key, [`mfa`] runs virtual TOTP devices, [`sigv4`]
//! authenticates query requests and [`query`] reads their parameters and writes their XML.

pub mod api;
mod client;
pub mod directory;
mod iam;
pub mod mfa;
pub mod model;
pub mod note;
pub mod paging;
pub mod query;
pub mod seal;
mod service;
pub mod sigv4;
mod sts;

pub use api::QueryApi;
pub use client::ClientConnection;
pub use model::Account;
pub use note::RequestNote;
pub use seal::MasterKey;
pub use service::{Caller, Identity, Refusal, RootCredentials, Session, SessionBody, SessionKind, token_hash};
