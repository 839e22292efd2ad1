//! [`Budget`]: what evaluating one request may cost, charged while the work is done, never
//! after it.
//!
//! Two things are counted, both deterministic functions of the request and the state:
//! the bytes of the answer (pairs and previous pairs, as a range response counts them) and
//! the records stepped through by compares and range ops. A write is evaluated at apply on
//! every replica with [`Budget::for_apply`], whose limits are constants
//! ([`crate::limits`]), so every replica, edge and replay reaches the same verdict on the
//! same entry. A read adds what is not deterministic and need not be: its caller's deadline
//! and whether the caller is still there ([`Budget::for_read`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::limits::{MAX_TXN_RESPONSE_BYTES, MAX_TXN_SCANNED_RECORDS};
use crate::{Error, Result};

/// The deadline and the cancellation flag a read is checked against every
/// [`STEPS_PER_CHECK`] records.
#[derive(Debug, Clone, Copy)]
struct Stop<'c> {
    deadline: Instant,
    cancelled: &'c AtomicBool,
}

/// Records stepped through between two looks at the clock and the cancellation flag.
const STEPS_PER_CHECK: u32 = 4096;

/// What one request may still cost. See the module docs.
#[derive(Debug)]
pub struct Budget<'c> {
    response_left: usize,
    scan_left: u64,
    stop: Option<Stop<'c>>,
    until_check: u32,
    /// Why a metered scan stopped early; reported by [`Budget::check`].
    exceeded: Option<Error>,
}

impl Budget<'static> {
    /// The budget of a write evaluated at apply: the limits of [`crate::limits`] only.
    pub fn for_apply() -> Self {
        Self {
            response_left: MAX_TXN_RESPONSE_BYTES,
            scan_left: MAX_TXN_SCANNED_RECORDS,
            stop: None,
            until_check: STEPS_PER_CHECK,
            exceeded: None,
        }
    }
}

impl<'c> Budget<'c> {
    /// The budget of a read: the same limits as a write, and the work stops once
    /// `deadline` passes or `cancelled` is set (the caller went away).
    pub fn for_read(deadline: Instant, cancelled: &'c AtomicBool) -> Self {
        Self {
            stop: Some(Stop {
                deadline,
                cancelled,
            }),
            ..Budget::for_apply()
        }
    }

    /// Bytes the answer may still grow by.
    pub(crate) fn response_left(&self) -> usize {
        self.response_left
    }

    /// Charges `bytes` of answer; fails when they do not fit.
    pub(crate) fn respond(&mut self, bytes: usize) -> Result<()> {
        match self.response_left.checked_sub(bytes) {
            Some(left) => {
                self.response_left = left;
                Ok(())
            }
            None => Err(response_limit()),
        }
    }

    /// `records`, stopping early when the scan budget is spent or the read must stop; the
    /// caller then learns why from [`Budget::check`].
    pub(crate) fn metered<'b, I>(&'b mut self, records: I) -> impl Iterator<Item = I::Item> + 'b
    where
        I: Iterator + 'b,
    {
        records.take_while(move |_| self.step())
    }

    /// Fails with the reason a metered scan stopped early, if it did.
    pub(crate) fn check(&mut self) -> Result<()> {
        match self.exceeded.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn step(&mut self) -> bool {
        if self.exceeded.is_some() {
            return false;
        }
        if self.scan_left == 0 {
            self.exceeded = Some(Error::LimitExceeded {
                what: "the records this transaction steps through",
                limit: MAX_TXN_SCANNED_RECORDS,
                unit: "records",
                advice: "narrow its ranges, or count and read with Range",
            });
            return false;
        }
        self.scan_left -= 1;
        self.until_check -= 1;
        if self.until_check == 0 {
            self.until_check = STEPS_PER_CHECK;
            if let Some(reason) = self.stop.and_then(|s| s.reason()) {
                self.exceeded = Some(Error::Cancelled { reason });
                return false;
            }
        }
        true
    }
}

impl Stop<'_> {
    fn reason(&self) -> Option<&'static str> {
        if self.cancelled.load(Ordering::Relaxed) {
            Some("the client went away")
        } else if Instant::now() >= self.deadline {
            Some("the request's deadline passed")
        } else {
            None
        }
    }
}

/// The error of an answer over [`MAX_TXN_RESPONSE_BYTES`].
pub(crate) fn response_limit() -> Error {
    Error::LimitExceeded {
        what: "the response",
        limit: MAX_TXN_RESPONSE_BYTES as u64,
        unit: "bytes",
        advice: "narrow its ranges or ask for fewer previous pairs; Range and IterateRange page \
                 through any range",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_response_is_charged_until_it_does_not_fit() {
        let mut b = Budget::for_apply();
        b.respond(MAX_TXN_RESPONSE_BYTES - 10).expect("fits");
        assert_eq!(b.response_left(), 10);
        let e = b.respond(11).expect_err("over");
        assert!(matches!(e, Error::LimitExceeded { unit: "bytes", .. }));
        assert!(e.to_string().contains(&MAX_TXN_RESPONSE_BYTES.to_string()));
        b.respond(10).expect("the rest still fits");
    }

    #[test]
    fn a_scan_stops_at_the_record_limit_and_says_why() {
        let mut b = Budget::for_apply();
        let n = b.metered(0..MAX_TXN_SCANNED_RECORDS + 5).count() as u64;
        assert_eq!(n, MAX_TXN_SCANNED_RECORDS);
        let e = b.check().expect_err("over");
        assert!(matches!(
            e,
            Error::LimitExceeded {
                unit: "records",
                ..
            }
        ));
        // A scan within the limit says nothing.
        let mut b = Budget::for_apply();
        assert_eq!(b.metered(0..100).count(), 100);
        b.check().expect("within");
    }

    #[test]
    fn a_read_stops_when_its_caller_goes_away_or_its_deadline_passes() {
        let cancelled = AtomicBool::new(false);
        let far = Instant::now() + Duration::from_secs(3600);
        let mut b = Budget::for_read(far, &cancelled);
        assert_eq!(b.metered(0..10_000).count(), 10_000);
        b.check().expect("nothing stops it");
        cancelled.store(true, Ordering::Relaxed);
        let n = b.metered(0..1_000_000).count();
        assert!(n <= STEPS_PER_CHECK as usize, "stopped after {n} records");
        assert!(matches!(b.check(), Err(Error::Cancelled { .. })));

        let calm = AtomicBool::new(false);
        let past = Instant::now();
        let mut b = Budget::for_read(past, &calm);
        assert!(b.metered(0..1_000_000).count() < STEPS_PER_CHECK as usize + 1);
        let e = b.check().expect_err("deadline passed");
        assert!(e.to_string().contains("deadline"));
    }
}
