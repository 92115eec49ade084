//! Failed MFA codes per device. A six-digit code has a million values and three are valid at any
//! moment (the step either side), so without a limit a caller could find one at request speed.
//! After [`MAX_FAILURES`] failures within [`WINDOW_SECS`] a device accepts no code (not even the
//! right one) until the window ends. Counted per replica, in memory: N replicas allow N times
//! as many tries, still far too few to guess a code.

use std::collections::HashMap;
use std::sync::Mutex;

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW_SECS: i64 = 300;
/// Devices tracked at most; beyond, windows that have ended are dropped first.
const TRACKED: usize = 64 * 1024;

#[derive(Default)]
pub struct FailedAttempts {
    /// Device serial -> (start of its window, failures in it).
    devices: Mutex<HashMap<String, (i64, u32)>>,
}

impl FailedAttempts {
    /// Whether the device takes no code at `now` (Unix seconds).
    pub fn locked(&self, serial: &str, now: i64) -> bool {
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices.get(serial).is_some_and(|&(start, failures)| now - start < WINDOW_SECS && failures >= MAX_FAILURES)
    }

    /// Counts a failed code.
    pub fn failed(&self, serial: &str, now: i64) {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        if devices.len() >= TRACKED {
            devices.retain(|_, &mut (start, _)| now - start < WINDOW_SECS);
        }
        let entry = devices.entry(serial.to_owned()).or_insert((now, 0));
        if now - entry.0 >= WINDOW_SECS {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_locks_after_the_failures_allowed_and_unlocks_when_the_window_ends() {
        let attempts = FailedAttempts::default();
        for i in 0..MAX_FAILURES {
            assert!(!attempts.locked("mfa/a", 1000 + i64::from(i)));
            attempts.failed("mfa/a", 1000 + i64::from(i));
        }
        assert!(attempts.locked("mfa/a", 1010));
        assert!(!attempts.locked("mfa/b", 1010), "another device is not affected");
        assert!(attempts.locked("mfa/a", 1000 + WINDOW_SECS - 1));
        assert!(!attempts.locked("mfa/a", 1000 + WINDOW_SECS));
        attempts.failed("mfa/a", 1000 + WINDOW_SECS);
        assert!(!attempts.locked("mfa/a", 1000 + WINDOW_SECS + 1), "a new window starts from zero");
    }
}
