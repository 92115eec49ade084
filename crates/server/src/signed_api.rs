//! Latchkey's signed APIs (`/-/shares`, `/-/presigned`, `/-/audit/events|digests`, `/-/findings`) as the one
//! custom route s3s takes: each request goes to the first API whose paths it names, after s3s
//! has verified its signature and a revoked presigned URL has been refused (as the Authorizer
//! refuses one for S3 operations).

use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use latchkey_identity::{ClientConnection, Identity};
use latchkey_meta::MetaStore;
use latchkey_s3::addressing::VirtualHosted;
use latchkey_s3::json_api;
use latchkey_s3::revoked::Revocations;
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

/// The path prefixes of the signed APIs; every other path under `/-/` is public.
pub const PREFIXES: [&str; 5] =
    ["/-/shares", "/-/presigned", crate::audit_api::EVENTS, crate::audit_api::DIGESTS, crate::findings_api::FINDINGS];

/// Whether `path` is one of the signed APIs'.
pub fn is_signed_api(path: &str) -> bool {
    PREFIXES.iter().any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

pub struct SignedApis {
    pub apis: Vec<Box<dyn S3Route>>,
    pub revocations: Arc<Revocations>,
    pub identity: Arc<Identity>,
    pub meta: Arc<dyn MetaStore>,
}

/// Which of the APIs matched, left in the request's extensions by `is_match`.
#[derive(Clone, Copy)]
struct Matched(usize);

impl SignedApis {
    fn matched(&self, extensions: &http::Extensions) -> S3Result<&dyn S3Route> {
        let Matched(index) = extensions.get::<Matched>().copied().ok_or_else(|| s3_error!(InternalError))?;
        Ok(self.apis[index].as_ref())
    }
}

#[async_trait::async_trait]
impl S3Route for SignedApis {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, extensions: &mut http::Extensions) -> bool {
        // Under a bucket's host, `/-/...` is one of its keys.
        if extensions.get::<VirtualHosted>().is_some() {
            return false;
        }
        match self.apis.iter().position(|api| api.is_match(method, uri, headers, extensions)) {
            Some(index) => {
                extensions.insert(Matched(index));
                true
            }
            None => false,
        }
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        self.matched(&req.extensions)?.check_access(req).await?;
        let principal = json_api::caller(&self.identity, req).await?.principal(self.identity.account()).arn;
        let source_ip = req.extensions.get::<ClientConnection>().map(|c| c.ip);
        self.revocations.refuse_revoked((&req.method, &req.uri), principal, source_ip, self.meta.as_ref()).await
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        self.matched(&req.extensions)?.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_api_paths() {
        let signed = ["/-/shares", "/-/shares/abc", "/-/presigned", "/-/presigned/revocations", "/-/audit/events"];
        for path in signed.into_iter().chain([
            "/-/findings",
            "/-/findings/f-1",
            "/-/findings/queue",
            "/-/findings/identifiers/x",
        ]) {
            assert!(is_signed_api(path), "{path}");
        }
        for path in
            ["/-/sharesx", "/-/presignedx/a", "/-/health", "/-/s/abc", "/shares", "/-/audit/public-key", "/-/findingsx"]
        {
            assert!(!is_signed_api(path), "{path}");
        }
    }
}
