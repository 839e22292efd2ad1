//! Retention of the object store: which snapshots and archived segments to delete so that
//! the newest `keep` snapshots stay restorable (each with the segments after it). Pure; the
//! core's archiver carries the plan out.

use regatta_materializer::Revision;

/// What retention deletes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionPlan {
    pub snapshots: Vec<Revision>,
    /// Indices into the segment listing.
    pub segments: Vec<usize>,
}

/// Plans retention. `snapshots` ascending; `segments` the first index of each archived
/// segment, ascending, non-overlapping (a segment's last index is below the next one's
/// first; the newest is never deleted). Pure.
pub fn retention_plan(keep: usize, snapshots: &[Revision], segments: &[u64]) -> RetentionPlan {
    if keep == 0 || snapshots.len() <= keep {
        return RetentionPlan::default();
    }
    let cut = snapshots.len() - keep;
    let oldest_kept = snapshots[cut].0;
    let segments = segments
        .windows(2)
        .enumerate()
        .take_while(|(_, w)| w[1].saturating_sub(1) <= oldest_kept)
        .map(|(i, _)| i)
        .collect();
    RetentionPlan {
        snapshots: snapshots[..cut].to_vec(),
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_newest_snapshots_and_the_segments_they_need() {
        let revs = |r: &[u64]| r.iter().map(|&x| Revision(x)).collect::<Vec<_>>();
        let segments = [0, 100, 200, 300, 400];
        // Window not full, or keep everything: nothing goes.
        assert_eq!(
            retention_plan(3, &revs(&[150, 250, 350]), &segments),
            RetentionPlan::default()
        );
        assert_eq!(
            retention_plan(0, &revs(&[50, 150, 250, 350]), &segments),
            RetentionPlan::default()
        );
        // Keep two of four: the oldest kept is 250; segments [0,99] and [100,199] go, the one
        // holding 200..=299 (needed to replay from 250) stays.
        assert_eq!(
            retention_plan(2, &revs(&[50, 150, 250, 350]), &segments),
            RetentionPlan {
                snapshots: revs(&[50, 150]),
                segments: vec![0, 1]
            }
        );
        // A snapshot exactly at a segment's last index frees that segment too.
        assert_eq!(
            retention_plan(1, &revs(&[50, 299]), &segments).segments,
            vec![0, 1, 2]
        );
        // The newest segment is never deleted.
        assert_eq!(
            retention_plan(1, &revs(&[50, 10_000]), &segments).segments,
            vec![0, 1, 2, 3]
        );
    }
}
