//! Outlier ejection for AI backends: after N consecutive failures a backend rests for the
//! ejection time; then one request may probe it (half-open). A success closes it again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use sluice_config::ir::Failover;

#[derive(Default)]
pub struct Health {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the backend is ejected (0 = not ejected).
    ejected_until_ms: AtomicU64,
    /// A half-open probe is in flight.
    probing: AtomicBool,
    /// Requests served by the mock, for its `errorEvery`.
    pub mock_count: AtomicU64,
}

/// Whether a candidate may take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// The ejection time passed: this request is the probe.
    Probe,
    No,
}

impl Health {
    pub fn admit(&self, epoch: Instant) -> Admit {
        let until = self.ejected_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Yes;
        }
        let now = epoch.elapsed().as_millis() as u64;
        if now < until {
            return Admit::No;
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admit::Probe,
            Err(_) => Admit::No,
        }
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Release);
        self.ejected_until_ms.store(0, Ordering::Release);
        self.probing.store(false, Ordering::Release);
    }

    /// Records a failure; returns true when it ejected the backend.
    pub fn failure(&self, policy: &Failover, epoch: Instant) -> bool {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let was_probe = self.probing.swap(false, Ordering::AcqRel);
        if n >= policy.consecutive_failures || was_probe {
            let until = epoch.elapsed() + policy.ejection_time;
            self.ejected_until_ms
                .store((until.as_millis() as u64).max(1), Ordering::Release);
            return true;
        }
        false
    }

    /// Whether the backend should be tried only after every other: ejected and still resting, or
    /// its half-open probe already in flight. Claims nothing (ordering is not trying).
    pub fn resting(&self, epoch: Instant) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Acquire);
        until != 0
            && ((epoch.elapsed().as_millis() as u64) < until
                || self.probing.load(Ordering::Acquire))
    }

    pub fn is_ejected(&self, epoch: Instant) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Acquire);
        until != 0 && (epoch.elapsed().as_millis() as u64) < until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ejects_after_consecutive_failures_then_probes_once() {
        let policy = Failover {
            consecutive_failures: 2,
            ejection_time: Duration::ZERO,
            ..Failover::default()
        };
        // An epoch in the past: `ejected_until_ms` is at least 1 (0 means "not ejected"), so with
        // an epoch of now the zero ejection time would not have passed yet within the first ms.
        let epoch = Instant::now() - Duration::from_secs(1);
        let h = Health::default();
        assert!(!h.failure(&policy, epoch));
        assert_eq!(h.admit(epoch), Admit::Yes);
        assert!(h.failure(&policy, epoch));
        // Ejection time zero: the next request probes, a second concurrent one does not.
        assert_eq!(h.admit(epoch), Admit::Probe);
        assert_eq!(h.admit(epoch), Admit::No);
        h.success();
        assert_eq!(h.admit(epoch), Admit::Yes);
    }

    #[test]
    fn a_failed_probe_ejects_again() {
        let policy = Failover {
            consecutive_failures: 1,
            ejection_time: Duration::from_secs(3600),
            ..Failover::default()
        };
        let epoch = Instant::now();
        let h = Health::default();
        assert!(h.failure(&policy, epoch));
        assert_eq!(h.admit(epoch), Admit::No);
        assert!(h.is_ejected(epoch));
    }
}
