//! MFA Delete: a versioned bucket's setting under which changing its versioning state (MFA
//! Delete included) and deleting a version for good need `x-amz-mfa: SERIAL CODE`, a code from
//! the MFA device MFA Delete was turned on with, held by the caller (its IAM user, or that user's
//! own session), over HTTPS (or from loopback).
//!
//! A code is taken once (its time step is spent, on every replica) and guesses are limited, as
//! for STS (`Identity::check_mfa_device`). AWS binds MFA Delete to the root user's device; the
//! root user has no MFA device here, so it is bound to the device whose code turned it on (its
//! serial and creation time): stolen keys that can enrol a new device, or delete that one and
//! create it again under its name, still cannot pass. Lifecycle, which has no code, deletes no version of
//! such a bucket (`VersionStore::delete_version`).

use http::Extensions;
use latchkey_identity::{Caller, ClientConnection, Identity};
use latchkey_meta::{Bucket, MfaDeleteDevice};
use s3s::{S3Result, s3_error};
use time::OffsetDateTime;

use crate::S3Front;

/// Checks `mfa` (the `x-amz-mfa` header): a right code from a device of the caller (left in
/// `extensions` by the Authorizer), which must be `bound` when MFA Delete is on: the same serial
/// and the same device (created at the same time: one deleted and created again under that
/// serial is another). Returns the device.
pub(crate) async fn require(
    front: &S3Front,
    extensions: &Extensions,
    mfa: Option<&str>,
    bound: Option<&MfaDeleteDevice>,
) -> S3Result<MfaDeleteDevice> {
    let Some(mfa) = mfa else {
        return Err(s3_error!(AccessDenied, "Mfa Authentication must be used for this request"));
    };
    // A code is a secret for the few seconds it lasts; AWS takes it over HTTPS only.
    let client = extensions.get::<ClientConnection>();
    if !client.is_some_and(|c| c.secure || c.ip.is_loopback()) {
        return Err(s3_error!(InvalidRequest, "x-amz-mfa is accepted over HTTPS only."));
    }
    let Some((serial, code)) = mfa.trim().rsplit_once(' ') else {
        return Err(s3_error!(InvalidArgument, "x-amz-mfa must be the device's serial number, a space and its code."));
    };
    let serial = serial.trim();
    let refused = || s3_error!(AccessDenied, "The MFA code is not valid for the device MFA Delete needs.");
    // A code of another device is not even tried (it would spend an attempt of that device).
    if bound.is_some_and(|bound| bound.serial != serial) {
        return Err(refused());
    }
    let user = extensions.get::<Caller>().and_then(Identity::mfa_user);
    let now = OffsetDateTime::now_utc();
    let checked = front.identity.check_mfa_device(user, serial, code.trim(), now).await.map_err(|e| {
        tracing::error!(error = %e, "cannot check an MFA code");
        s3_error!(InternalError, "We encountered an internal error. Please try again.")
    })?;
    let device = checked.map(|d| MfaDeleteDevice::new(d.serial, d.created)).ok_or_else(refused)?;
    match bound.is_none_or(|bound| *bound == device) {
        true => Ok(device),
        false => Err(refused()),
    }
}

/// [`require`] when `bucket` has MFA Delete on.
pub(crate) async fn require_if_on(
    front: &S3Front,
    bucket: &Bucket,
    extensions: &Extensions,
    mfa: Option<&str>,
) -> S3Result<()> {
    match &bucket.mfa_delete {
        Some(device) => require(front, extensions, mfa, Some(device)).await.map(drop),
        None => Ok(()),
    }
}
