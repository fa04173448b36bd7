//! What one plugin version has done since it was loaded: calls, failed
//! calls, refused network accesses and the last failure. Counted by [`Run`]
//! as calls finish; read by the operators' Plugins page. In memory only: a
//! restart or a new version starts from zero.
//!
//! [`Run`]: crate::Run

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters of one plugin version.
#[derive(Debug, Default)]
pub struct Health {
    calls: AtomicU64,
    errors: AtomicU64,
    crashes: AtomicU64,
    denials: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// Calls into the plugin (`verify`, `open`, `sync`, `fetch`, `send`, `info`).
    pub calls: u64,
    /// Calls that failed: provider errors, traps, timeouts, limits.
    pub errors: u64,
    /// Of those, the plugin's own faults: traps, timeouts, limits (not the
    /// provider's typed errors, which a server outage also causes).
    pub crashes: u64,
    /// Network accesses the sandbox refused.
    pub denials: u64,
    /// The last failure, as the caller saw it.
    pub last_error: Option<String>,
}

impl Health {
    /// One finished call, whether it failed (and how, and whether by the
    /// plugin's own fault), and the accesses refused during it.
    pub(crate) fn record(&self, error: Option<String>, crashed: bool, denials: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.denials.fetch_add(denials, Ordering::Relaxed);
        if crashed {
            self.crashes.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(why) = error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(why);
            }
        }
    }

    /// The counters now.
    pub fn report(&self) -> HealthReport {
        HealthReport {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            crashes: self.crashes.load(Ordering::Relaxed),
            denials: self.denials.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }
}
