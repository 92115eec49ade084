//! Virtual MFA devices: RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30-second steps), as AWS's virtual
//! MFA devices and every authenticator app use them.
//!
//! Each code is accepted at most once per device: callers keep the last step that was accepted
//! and pass it back, and a code is only accepted for a later step.

use subtle::{Choice, ConstantTimeEq};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

/// 160 bits, as AWS's virtual MFA devices and RFC 4226 recommend.
pub const SEED_BYTES: usize = 20;
/// Seconds per TOTP step.
pub const STEP_SECONDS: u64 = 30;
const DIGITS: usize = 6;
/// How many steps back EnableMFADevice/ResyncMFADevice look for the first of two codes: a
/// device whose clock drifted up to five minutes can still be enabled or resynchronised.
const RESYNC_STEPS: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    #[error("an authentication code is 6 digits")]
    MalformedCode,
    #[error("the authentication code does not match")]
    Mismatch,
    /// The code is right but its step was already used (or an earlier one was used since).
    #[error("the authentication code was already used")]
    Replayed,
    /// The QR code could not be made; the details would hold the seed, so they are dropped.
    #[error("cannot make the QR code: the account and issuer must be non-empty and free of ':'")]
    QrCode,
}

/// A fresh device seed from the thread-local CSPRNG.
pub fn generate_seed() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(rand::random::<[u8; SEED_BYTES]>().to_vec())
}

/// The seed as AWS returns it in `Base32StringSeed` (RFC 4648 base32, no padding).
pub fn base32_seed(seed: &[u8]) -> String {
    Secret::from(seed).to_base32()
}

/// A PNG of `otpauth://totp/ISSUER:ACCOUNT?secret=..&issuer=..` (AWS's `QRCodePNG`; the caller
/// base64-encodes it).
pub fn qr_code_png(seed: &[u8], account: &str, issuer: &str) -> Result<Vec<u8>, MfaError> {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECONDS)
        .with_secret(seed)
        .with_account_name(account)
        .with_issuer(Some(issuer))
        .build()
        .map_err(|_| MfaError::QrCode)?;
    totp.to_qr_png().map_err(|_| MfaError::QrCode)
}

/// The code for the step that holds `unix_time`.
pub fn code_at(seed: &[u8], unix_time: u64) -> String {
    device(seed).generate(unix_time).to_string()
}

/// Accepts a code for the step of `now_unix` or one step either side, but only for a step later
/// than `last_used_step`. Returns the step it matched, to be stored as the new last used step.
pub fn verify(seed: &[u8], code: &str, now_unix: u64, last_used_step: Option<u64>) -> Result<u64, MfaError> {
    let code = well_formed(code)?;
    let device = device(seed);
    let now = now_unix / STEP_SECONDS;
    let mut fresh = None;
    let mut used = false;
    // Every candidate is computed and compared, so timing says nothing about which step matched.
    for step in now.saturating_sub(1)..=now.saturating_add(1) {
        let matches: bool = code_for_step(&device, step).as_bytes().ct_eq(code).into();
        let later = last_used_step.is_none_or(|last| step > last);
        match (matches, later) {
            (true, true) if fresh.is_none() => fresh = Some(step),
            (true, false) => used = true,
            _ => {}
        }
    }
    match fresh {
        Some(step) => Ok(step),
        None if used => Err(MfaError::Replayed),
        None => Err(MfaError::Mismatch),
    }
}

/// EnableMFADevice / ResyncMFADevice: `code1` and `code2` are the codes of two consecutive steps
/// t and t+1, with t at most ten steps (five minutes) before now and t+1 at most one step after
/// now. Returns t+1, the last used step from then on.
pub fn verify_consecutive(seed: &[u8], code1: &str, code2: &str, now_unix: u64) -> Result<u64, MfaError> {
    let (code1, code2) = (well_formed(code1)?, well_formed(code2)?);
    let device = device(seed);
    let now = now_unix / STEP_SECONDS;
    let first = now.saturating_sub(RESYNC_STEPS);
    let mut latest = None;
    let mut next = code_for_step(&device, first);
    for step in first..=now {
        let this = next;
        next = code_for_step(&device, step + 1);
        let pair: Choice = this.as_bytes().ct_eq(code1) & next.as_bytes().ct_eq(code2);
        if bool::from(pair) {
            latest = Some(step + 1);
        }
    }
    latest.ok_or(MfaError::Mismatch)
}

fn device(seed: &[u8]) -> Totp {
    // Not `build()`: it refuses seeds under 128 bits, and codes for any stored seed must still
    // be computed (the RFC 6238 test seed is 160 bits; AWS seeds are too).
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECONDS)
        .with_secret(seed)
        .build_noncompliant()
}

fn code_for_step(device: &Totp, step: u64) -> Zeroizing<String> {
    Zeroizing::new(device.generate(step.saturating_mul(STEP_SECONDS)).to_string())
}

fn well_formed(code: &str) -> Result<&[u8], MfaError> {
    let bytes = code.as_bytes();
    if bytes.len() == DIGITS && bytes.iter().all(u8::is_ascii_digit) { Ok(bytes) } else { Err(MfaError::MalformedCode) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B gives 8-digit codes; a 6-digit code is the same value mod 10^6.
        for (time, eight_digits) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SEED, time), eight_digits[2..], "t={time}");
        }
    }

    #[test]
    fn one_step_either_side_is_accepted_two_are_not() {
        let now = 1111111109;
        let step = now / STEP_SECONDS;
        for offset in [-1i64, 0, 1] {
            let at = (now as i64 + offset * STEP_SECONDS as i64) as u64;
            assert_eq!(verify(RFC_SEED, &code_at(RFC_SEED, at), now, None), Ok(at / STEP_SECONDS), "offset {offset}");
        }
        for offset in [-2i64, 2] {
            let at = (now as i64 + offset * STEP_SECONDS as i64) as u64;
            assert_eq!(verify(RFC_SEED, &code_at(RFC_SEED, at), now, None), Err(MfaError::Mismatch), "offset {offset}");
        }
        assert_eq!(verify(RFC_SEED, &code_at(RFC_SEED, now), now, Some(step - 1)), Ok(step));
    }

    #[test]
    fn a_code_is_accepted_once() {
        let now = 1234567890;
        let code = code_at(RFC_SEED, now);
        let step = verify(RFC_SEED, &code, now, None).unwrap();
        assert_eq!(verify(RFC_SEED, &code, now, Some(step)), Err(MfaError::Replayed));
        // Still refused a step later, when it is the previous step's code.
        assert_eq!(verify(RFC_SEED, &code, now + STEP_SECONDS, Some(step)), Err(MfaError::Replayed));
        // The next step's code is accepted.
        let next = code_at(RFC_SEED, now + STEP_SECONDS);
        assert_eq!(verify(RFC_SEED, &next, now + STEP_SECONDS, Some(step)), Ok(step + 1));
    }

    #[test]
    fn a_code_earlier_than_the_last_used_step_is_refused() {
        let now = 2000000000;
        let step = now / STEP_SECONDS;
        let previous = code_at(RFC_SEED, now - STEP_SECONDS);
        // The next step was already used (a code from a fast device), so the previous one is stale.
        assert_eq!(verify(RFC_SEED, &previous, now, Some(step + 1)), Err(MfaError::Replayed));
        assert_eq!(verify(RFC_SEED, &previous, now, Some(step - 2)), Ok(step - 1));
    }

    #[test]
    fn anything_but_six_ascii_digits_is_refused() {
        let now = 59;
        let good = code_at(RFC_SEED, now);
        for bad in ["", "28708", "2870820", "+87082", " 87082", "28708a", "２８７０８２", "287082\n"] {
            assert_eq!(verify(RFC_SEED, bad, now, None), Err(MfaError::MalformedCode), "{bad:?}");
            assert_eq!(verify_consecutive(RFC_SEED, bad, &good, now), Err(MfaError::MalformedCode), "{bad:?}");
            assert_eq!(verify_consecutive(RFC_SEED, &good, bad, now), Err(MfaError::MalformedCode), "{bad:?}");
        }
        assert_eq!(verify(RFC_SEED, &good, now, None), Ok(1));
    }

    #[test]
    fn steps_near_the_epoch_do_not_underflow() {
        assert_eq!(verify(RFC_SEED, &code_at(RFC_SEED, 0), 0, None), Ok(0));
        assert_eq!(verify(RFC_SEED, &code_at(RFC_SEED, 30), 0, None), Ok(1));
        assert_eq!(verify_consecutive(RFC_SEED, &code_at(RFC_SEED, 0), &code_at(RFC_SEED, 30), 0), Ok(1));
    }

    #[test]
    fn two_consecutive_codes_enable_a_device() {
        let seed = generate_seed();
        let now = 1_800_000_000;
        let step = now / STEP_SECONDS;
        let (now_code, next_code) = (code_at(&seed, now), code_at(&seed, now + STEP_SECONDS));
        assert_eq!(verify_consecutive(&seed, &now_code, &next_code, now), Ok(step + 1));

        // A device whose clock is a few minutes behind.
        let behind = now - 4 * 60;
        let (a, b) = (code_at(&seed, behind), code_at(&seed, behind + STEP_SECONDS));
        assert_eq!(verify_consecutive(&seed, &a, &b, now), Ok(behind / STEP_SECONDS + 1));

        // Reversed, non-consecutive, too old, or in the future: refused.
        assert_eq!(verify_consecutive(&seed, &next_code, &now_code, now), Err(MfaError::Mismatch));
        let later = code_at(&seed, now + 2 * STEP_SECONDS);
        assert_eq!(verify_consecutive(&seed, &now_code, &later, now), Err(MfaError::Mismatch));
        let old = now - 20 * 60;
        let (a, b) = (code_at(&seed, old), code_at(&seed, old + STEP_SECONDS));
        assert_eq!(verify_consecutive(&seed, &a, &b, now), Err(MfaError::Mismatch));
        let (a, b) = (code_at(&seed, now + STEP_SECONDS), code_at(&seed, now + 2 * STEP_SECONDS));
        assert_eq!(verify_consecutive(&seed, &a, &b, now), Err(MfaError::Mismatch));
    }

    #[test]
    fn seeds_are_random_and_base32_as_aws_returns_them() {
        let (a, b) = (generate_seed(), generate_seed());
        assert_eq!(a.len(), SEED_BYTES);
        assert_ne!(a, b);
        // RFC 4648 test vector, and the RFC 6238 seed as authenticator apps know it.
        assert_eq!(base32_seed(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_seed(RFC_SEED), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32_seed(&a).len(), 32);
    }

    #[test]
    fn qr_code_is_a_png() {
        let png = qr_code_png(RFC_SEED, "alice@000000000000", "Latchkey").unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{:?}", &png[..8.min(png.len())]);
        assert!(png.len() > 100);
    }

    #[test]
    fn qr_code_refuses_colons_and_short_seeds_without_leaking_the_seed() {
        for (seed, account, issuer) in [
            (RFC_SEED, "al:ice", "Latchkey"),
            (RFC_SEED, "alice", "Latch:key"),
            (RFC_SEED, "", "Latchkey"),
            (&b"short"[..], "alice", "Latchkey"),
        ] {
            let error = qr_code_png(seed, account, issuer).unwrap_err();
            assert_eq!(error, MfaError::QrCode);
            assert!(!format!("{error} {error:?}").contains(&base32_seed(seed)));
        }
    }
}
