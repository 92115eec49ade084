//! Failed MFA codes per device. A six-digit code has a million values and three are valid at any
//! moment (the step either side), so without a limit a caller could find one at request speed.
//! After [`MAX_FAILURES`] failures within [`WINDOW`] a device accepts no code (not even the
//! right one) until the window ends. The store counts them (`record_mfa_failure`), so the limit
//! holds across every replica.

use std::time::Duration;

use latchkey_meta::MfaDevice;
use time::OffsetDateTime;

pub const MAX_FAILURES: i64 = 5;
pub const WINDOW: Duration = Duration::from_secs(300);

/// Whether `device` takes no code at `now`.
pub fn locked(device: &MfaDevice, now: OffsetDateTime) -> bool {
    device.failures >= MAX_FAILURES && now - device.failures_since < WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_locked_after_the_failures_allowed_until_the_window_ends() {
        let start = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let mut device = MfaDevice::new("arn:aws:iam::000000000000:mfa/a".into(), Vec::new(), start);
        device.failures_since = start;
        device.failures = MAX_FAILURES - 1;
        assert!(!locked(&device, start));
        device.failures = MAX_FAILURES;
        assert!(locked(&device, start));
        assert!(locked(&device, start + WINDOW - Duration::from_secs(1)));
        assert!(!locked(&device, start + WINDOW));
    }
}
