//! Wall-clock time in the one unit replication carries it in (Unix microseconds: the
//! heartbeat's `now_micros`, an event's `proposed_at_micros`), and the lag derived from it.

pub use regatta_proto::now_micros;

/// How far a replica is behind its upstream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Entries committed upstream and not yet applied here.
    pub entries: u64,
    /// Age of the newest applied write while behind; 0 when caught up or when no write
    /// has been applied since start.
    pub seconds: f64,
}

/// The lag of a replica that applied `applied` while its upstream committed `commit`; the
/// newest applied write was proposed at `last_event_micros` (0: none yet), it is `now_micros`.
pub fn lag(commit: u64, applied: u64, last_event_micros: u64, now_micros: u64) -> Lag {
    let seconds = if commit <= applied || last_event_micros == 0 {
        0.0
    } else {
        now_micros.saturating_sub(last_event_micros) as f64 / 1e6
    };
    Lag {
        entries: commit.saturating_sub(applied),
        seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_entries_and_the_age_of_the_newest_write_only_while_behind() {
        assert_eq!(
            lag(10, 7, 1_000_000, 3_500_000),
            Lag {
                entries: 3,
                seconds: 2.5
            }
        );
        assert_eq!(lag(10, 10, 1_000_000, 3_500_000).seconds, 0.0, "caught up");
        assert_eq!(
            lag(5, 10, 0, 3_500_000).entries,
            0,
            "ahead of what was heard"
        );
        assert_eq!(lag(10, 7, 0, 3_500_000).seconds, 0.0, "nothing applied yet");
        assert_eq!(lag(10, 7, 5_000_000, 3_500_000).seconds, 0.0, "clock skew");
    }
}
