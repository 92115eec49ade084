//! MFA Delete: a versioned bucket's setting under which changing its versioning state (MFA
//! Delete included) and deleting a version for good need `x-amz-mfa: SERIAL CODE`, a code from
//! an MFA device enabled for the calling IAM user (or that user's own session).
//!
//! A code is taken once (its time step is spent, on every replica) and guesses are limited, as
//! for STS (`Identity::check_mfa`). AWS lets only the root user do these; the root user has no
//! MFA device here, so Latchkey lets any principal the policies allow do them with its own device.

use http::Extensions;
use latchkey_identity::{Caller, Identity};
use latchkey_meta::Bucket;
use s3s::{S3Result, s3_error};
use time::OffsetDateTime;

use crate::S3Front;

/// Refuses the request unless `mfa` (the `x-amz-mfa` header) holds a right code from a device of
/// the caller (left in `extensions` by the Authorizer).
pub(crate) async fn require(front: &S3Front, extensions: &Extensions, mfa: Option<&str>) -> S3Result<()> {
    let Some(mfa) = mfa else {
        return Err(s3_error!(AccessDenied, "Mfa Authentication must be used for this request"));
    };
    let Some((serial, code)) = mfa.trim().rsplit_once(' ') else {
        return Err(s3_error!(InvalidArgument, "x-amz-mfa must be the device's serial number, a space and its code."));
    };
    let user = extensions.get::<Caller>().and_then(Identity::mfa_user);
    let now = OffsetDateTime::now_utc();
    match front.identity.check_mfa(user, serial.trim(), code.trim(), now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(s3_error!(AccessDenied, "The MFA code is not valid for a device of the caller.")),
        Err(e) => {
            tracing::error!(error = %e, "cannot check an MFA code");
            Err(s3_error!(InternalError, "We encountered an internal error. Please try again."))
        }
    }
}

/// [`require`] when `bucket` has MFA Delete on.
pub(crate) async fn require_if_on(
    front: &S3Front,
    bucket: &Bucket,
    extensions: &Extensions,
    mfa: Option<&str>,
) -> S3Result<()> {
    match bucket.mfa_delete {
        true => require(front, extensions, mfa).await,
        false => Ok(()),
    }
}
