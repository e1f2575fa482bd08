//! A rate limit for log lines about bad input: a flood of garbage on the
//! queue is dropped without flooding the log too.

use std::time::{Duration, Instant};

use log::warn;

/// Lines about bad messages logged per second at most.
pub const LOGS_PER_SECOND: u32 = 20;

/// Counts log lines per second; past the budget, lines are counted, not
/// printed, and the count is logged with the first line of a later second.
#[derive(Debug)]
pub(crate) struct LogBudget {
    second: Instant,
    logged: u32,
    suppressed: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget { second: Instant::now(), logged: 0, suppressed: 0 }
    }
}

impl LogBudget {
    /// Whether one more line may be logged now.
    pub fn admit(&mut self) -> bool {
        if self.second.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                warn!("dropped {} more bad queue messages without logging them", self.suppressed);
            }
            *self = LogBudget::default();
        }
        if self.logged < LOGS_PER_SECOND {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budget_admits_a_few_lines_per_second() {
        let mut budget = LogBudget::default();
        let admitted = (0..1000).filter(|_| budget.admit()).count();
        assert_eq!(admitted, LOGS_PER_SECOND as usize);
        assert_eq!(budget.suppressed, 1000 - u64::from(LOGS_PER_SECOND));
        budget.second -= Duration::from_secs(1);
        assert!(budget.admit());
        assert_eq!(budget.suppressed, 0);
    }
}
