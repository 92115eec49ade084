//! What the layers behind the guard learn about a request (its operation, the bucket and key it
//! names, the principal it was authenticated as), left for the server's access log and metrics.
//! The server puts one in every request's extensions; whoever parses or authenticates the
//! request fills it in. It never holds a credential: an ARN is not one.

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct RequestNote(Mutex<Noted>);

/// What was noted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Noted {
    /// S3, IAM or STS operation name (`GetObject`, `CreateUser`, `GetSessionToken`).
    pub operation: Option<Cow<'static, str>>,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// The ARN of the authenticated principal.
    pub principal: Option<String>,
    /// The access key id a POST form (PostObject) was signed with: its credentials are in its
    /// body, where the router does not look.
    pub form_signer: Option<String>,
}

impl RequestNote {
    fn with(&self, f: impl FnOnce(&mut Noted)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn operation(&self, operation: impl Into<Cow<'static, str>>) {
        let operation = operation.into();
        self.with(|n| n.operation = Some(operation));
    }

    pub fn target(&self, bucket: Option<&str>, key: Option<&str>) {
        self.with(|n| {
            n.bucket = bucket.map(str::to_owned);
            n.key = key.map(str::to_owned);
        });
    }

    pub fn principal(&self, arn: &str) {
        self.with(|n| n.principal = Some(arn.to_owned()));
    }

    pub fn form_signer(&self, access_key_id: &str) {
        self.with(|n| n.form_signer = Some(access_key_id.to_owned()));
    }

    /// What was noted, leaving the note empty.
    pub fn take(&self) -> Noted {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
