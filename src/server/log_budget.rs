//! A rate limit for log lines about bad input: a flood of garbage on the
//! queue, or of session requests that fail at once, is dropped without
//! flooding the log too.

use std::time::{Duration, Instant};

use log::warn;

/// Lines of one kind logged per interval at most.
pub const LOGS_PER_SECOND: u32 = 20;

/// How long one budget lasts.
const INTERVAL: Duration = Duration::from_secs(1);

/// Counts log lines of one kind per interval; past the budget, lines are
/// counted, not printed, and one summary line ("… and N more like it")
/// follows once the interval is over.
#[derive(Debug)]
pub(crate) struct LogBudget {
    /// What the lines are about, for the summary line.
    like: &'static str,
    second: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogBudget {
    /// A budget for lines about `like` ("bad queue messages").
    pub fn new(like: &'static str) -> LogBudget {
        LogBudget { like, second: Instant::now(), logged: 0, suppressed: 0 }
    }

    /// Whether one more line may be logged now.
    pub fn admit(&mut self) -> bool {
        self.flush();
        if self.logged < LOGS_PER_SECOND {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Once the interval is over: logs the summary of the lines left out
    /// (if any) and starts a new interval. Called on every admit, and by
    /// the owner's loop so that the summary comes when the flood stops.
    pub fn flush(&mut self) {
        if self.second.elapsed() < INTERVAL {
            return;
        }
        if self.suppressed > 0 {
            warn!(
                "… and {} more like it ({}) in {:.1} s",
                self.suppressed,
                self.like,
                self.second.elapsed().as_secs_f64()
            );
        }
        *self = LogBudget::new(self.like);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budget_admits_a_few_lines_per_second() {
        let mut budget = LogBudget::new("tests");
        let admitted = (0..1000).filter(|_| budget.admit()).count();
        assert_eq!(admitted, LOGS_PER_SECOND as usize);
        assert_eq!(budget.suppressed, 1000 - u64::from(LOGS_PER_SECOND));
        budget.second -= INTERVAL;
        assert!(budget.admit());
        assert_eq!(budget.suppressed, 0);
    }

    #[test]
    fn a_flush_after_the_interval_starts_a_new_budget() {
        let mut budget = LogBudget::new("tests");
        while budget.admit() {}
        budget.flush();
        assert_eq!(budget.suppressed, 1, "not yet: the interval is not over");
        budget.second -= INTERVAL;
        budget.flush();
        assert_eq!((budget.logged, budget.suppressed), (0, 0));
    }
}
