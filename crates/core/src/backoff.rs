//! The pod re-creation back-off of the Job controller (`backoff_utils.go`, spec §4.2).

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// Upstream's defaults: 10 s doubling to a 10 min cap. joblet lets users scale both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    pub base_ms: i64,
    pub max_ms: i64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base_ms: 10_000,
            max_ms: 600_000,
        }
    }
}

impl BackoffConfig {
    /// `min(base × 2^(n−1), max)` for n ≥ 1 failures, 0 for none.
    pub fn delay_ms(&self, failures: u32) -> i64 {
        if failures == 0 {
            return 0;
        }
        let doublings = (failures - 1).min(40);
        self.base_ms
            .saturating_mul(1i64 << doublings)
            .min(self.max_ms)
    }
}

/// Consecutive failures since the last success, and when the latest of them happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffRecord {
    pub failures_after_last_success: u32,
    pub last_failure: Option<Time>,
}

impl BackoffRecord {
    /// Folds in the pods that finished since the last sync (their finish times).
    pub fn update(self, successes: &[Time], failures: &[Time]) -> Self {
        if successes.is_empty() && failures.is_empty() {
            return self;
        }
        match successes.iter().max() {
            None => BackoffRecord {
                failures_after_last_success: self.failures_after_last_success
                    + failures.len() as u32,
                last_failure: failures.iter().max().copied().or(self.last_failure),
            },
            Some(&latest_success) => {
                let after: Vec<Time> = failures
                    .iter()
                    .copied()
                    .filter(|t| *t > latest_success)
                    .collect();
                BackoffRecord {
                    failures_after_last_success: after.len() as u32,
                    last_failure: after.iter().max().copied(),
                }
            }
        }
    }

    /// How long pod creation must still wait at `now`.
    pub fn remaining_ms(&self, config: &BackoffConfig, now: Time) -> i64 {
        let Some(last) = self.last_failure else {
            return 0;
        };
        let delay = config.delay_ms(self.failures_after_last_success);
        (delay - now.millis_since(last)).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc030_remaining_delay_arithmetic() {
        let config = BackoffConfig {
            base_ms: 5_000,
            max_ms: 700_000,
        };
        let at = |n, elapsed_s: i64| {
            let record = BackoffRecord {
                failures_after_last_success: n,
                last_failure: Some(Time::from_secs(100)),
            };
            record.remaining_ms(&config, Time::from_secs(100 + elapsed_s)) / 1000
        };
        assert_eq!(BackoffRecord::default().remaining_ms(&config, Time(0)), 0);
        assert_eq!([at(1, 0), at(1, 1), at(1, 5), at(1, 6)], [5, 4, 0, 0]);
        assert_eq!([at(3, 0), at(8, 0), at(9, 0)], [20, 640, 700]);
        let defaults = BackoffConfig::default();
        let delays: Vec<i64> = (1..=8).map(|n| defaults.delay_ms(n) / 1000).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600]);
    }

    #[test]
    fn tc031_record_update_rules() {
        let t = Time(1_000_000);
        let ms = |d: i64| t.plus_millis(d);
        let empty = BackoffRecord::default();
        let record = |n, last: Option<Time>| BackoffRecord {
            failures_after_last_success: n,
            last_failure: last,
        };
        assert_eq!(empty.update(&[], &[t]), record(1, Some(t)));
        assert_eq!(empty.update(&[], &[t, ms(-1)]), record(2, Some(t)));
        assert_eq!(empty.update(&[t], &[ms(-2), ms(-1)]), record(0, None));
        assert_eq!(
            empty.update(&[ms(-2)], &[t, ms(-4), ms(-3), ms(-1)]),
            record(2, Some(t))
        );
        assert_eq!(record(2, None).update(&[], &[t]), record(3, Some(t)));
        assert_eq!(empty.update(&[t], &[t]), record(0, None));
        assert_eq!(record(2, Some(t)).update(&[], &[]), record(2, Some(t)));
        assert_eq!(record(2, Some(t)).update(&[t], &[]), record(0, None));
    }
}
