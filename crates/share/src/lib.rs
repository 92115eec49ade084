//! Share links: the presigned-URL generation API and the access-object API of the AWS
//! one-time-nonce design, without its holes.
//!
//! A link carries a 256-bit token; only its keyed hash is stored ([`token`]). Redemption consumes
//! a use in one atomic statement that also checks expiry, revocation and that the object is the
//! version the link was made for, durably, before the first byte is sent ([`service`]). Every
//! refusal looks the same to the caller; the audit trail records the true reason. The HTTP
//! surface is in [`http`].

pub mod gate;
pub mod http;
mod landing;
pub mod presign;
pub mod service;
pub mod token;

pub use gate::ShareGate;
pub use http::PublicBase;
pub use presign::UrlSigner;
pub use service::{SharePolicy, ShareService};
pub use token::ShareKey;
