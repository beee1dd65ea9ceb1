//! Sets of completion indexes and their compressed string form (`1,3-5,7`), as used by
//! `status.completedIndexes`, `status.failedIndexes` and `successPolicy` rules.

use std::fmt;

/// A set of non-negative indexes kept as sorted, disjoint, non-adjacent closed intervals,
/// so that 100,000 completed indexes in a row cost one interval.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexSet {
    intervals: Vec<(i32, i32)>,
}

impl IndexSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Number of indexes in the set.
    pub fn len(&self) -> usize {
        self.intervals
            .iter()
            .map(|&(a, b)| (b - a + 1) as usize)
            .sum()
    }

    pub fn contains(&self, index: i32) -> bool {
        let pos = self.intervals.partition_point(|&(_, end)| end < index);
        self.intervals
            .get(pos)
            .is_some_and(|&(start, _)| start <= index)
    }

    /// Adds one index; returns whether it was new.
    pub fn insert(&mut self, index: i32) -> bool {
        self.insert_range(index, index)
    }

    fn insert_range(&mut self, start: i32, end: i32) -> bool {
        // First interval that ends at or after start - 1 (could merge with us).
        let first = self
            .intervals
            .partition_point(|&(_, e)| e < start.saturating_sub(1));
        let mut last = first;
        let (mut new_start, mut new_end) = (start, end);
        while last < self.intervals.len() && self.intervals[last].0 <= end.saturating_add(1) {
            new_start = new_start.min(self.intervals[last].0);
            new_end = new_end.max(self.intervals[last].1);
            last += 1;
        }
        let grew = last == first
            || !(last - first == 1
                && self.intervals[first].0 <= start
                && self.intervals[first].1 >= end);
        self.intervals
            .splice(first..last, std::iter::once((new_start, new_end)));
        grew
    }

    /// Iterates the indexes in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.intervals.iter().flat_map(|&(a, b)| a..=b)
    }

    /// Keeps only indexes below `limit` (an elastic scale-down drops the others).
    pub fn truncate(&mut self, limit: i32) {
        self.intervals.retain(|&(start, _)| start < limit);
        if let Some(last) = self.intervals.last_mut() {
            last.1 = last.1.min(limit - 1);
        }
    }

    /// The controller's lenient reading of a stored index string: items that are not
    /// integers are skipped, reading stops at the first item starting at or beyond
    /// `completions`, and ends are clipped to `completions - 1`.
    pub fn parse_lenient(text: &str, completions: i32) -> Self {
        let mut set = IndexSet::new();
        for item in text.split(',') {
            let mut parts = item.splitn(2, '-');
            let Some(Ok(start)) = parts.next().map(str::parse::<i32>) else {
                continue;
            };
            let end = match parts.next() {
                Some(end) => match end.parse::<i32>() {
                    Ok(end) => end,
                    Err(_) => continue,
                },
                None => start,
            };
            if start >= completions {
                break;
            }
            if start < 0 || end < start {
                continue;
            }
            set.insert_range(start, end.min(completions - 1));
        }
        set
    }

    /// The API server's strict reading (successPolicy.succeededIndexes); the error text is
    /// upstream's.
    pub fn parse_strict(text: &str, completions: i32) -> Result<Self, String> {
        let mut set = IndexSet::new();
        if text.is_empty() {
            return Ok(set);
        }
        let mut previous: Option<i64> = None;
        for item in text.split(',') {
            let parts: Vec<&str> = item.split('-').collect();
            if parts.len() > 2 {
                return Err(format!(
                    "the fragment {item:?} violates the requirement that an index interval can have at most two parts separated by '-'"
                ));
            }
            let mut bounds = [0i64; 2];
            for (slot, part) in parts.iter().enumerate() {
                let value: i64 = part
                    .parse()
                    .map_err(|_| format!("cannot convert string to integer for index: {part:?}"))?;
                if value >= completions as i64 {
                    return Err(format!("too large index: {part:?}"));
                }
                if let Some(prev) = previous {
                    if value <= prev {
                        return Err(format!(
                            "non-increasing order, previous: {prev}, current: {value}"
                        ));
                    }
                }
                previous = Some(value);
                bounds[slot] = value;
            }
            let end = if parts.len() == 2 {
                bounds[1]
            } else {
                bounds[0]
            };
            set.insert_range(bounds[0] as i32, end as i32);
        }
        Ok(set)
    }

    /// The `count` lowest indexes in `0..completions` that are in none of `excluded`.
    pub fn first_missing(completions: i32, count: usize, excluded: &[&IndexSet]) -> Vec<i32> {
        let mut out = Vec::with_capacity(count);
        let mut candidate = 0;
        while candidate < completions && out.len() < count {
            match excluded
                .iter()
                .filter_map(|set| set.interval_containing(candidate))
                .max()
            {
                Some(end) => candidate = end + 1,
                None => {
                    out.push(candidate);
                    candidate += 1;
                }
            }
        }
        out
    }

    fn interval_containing(&self, index: i32) -> Option<i32> {
        let pos = self.intervals.partition_point(|&(_, end)| end < index);
        self.intervals
            .get(pos)
            .filter(|&&(start, _)| start <= index)
            .map(|&(_, end)| end)
    }
}

impl FromIterator<i32> for IndexSet {
    fn from_iter<T: IntoIterator<Item = i32>>(iter: T) -> Self {
        let mut set = IndexSet::new();
        for index in iter {
            set.insert(index);
        }
        set
    }
}

/// Renders upstream's compressed form: runs of three or more become `a-b`, a run of two
/// stays `a,b`.
impl fmt::Display for IndexSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(start, end)) in self.intervals.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match end - start {
                0 => write!(f, "{start}")?,
                1 => write!(f, "{start},{end}")?,
                _ => write!(f, "{start}-{end}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[i32]) -> IndexSet {
        items.iter().copied().collect()
    }

    #[test]
    fn tc161_rendering() {
        assert_eq!(set(&[1, 3, 4, 5, 7]).to_string(), "1,3-5,7");
        assert_eq!(set(&[0, 1]).to_string(), "0,1");
        assert_eq!(set(&[0, 1, 2]).to_string(), "0-2");
        assert_eq!(set(&[2, 4, 5, 7, 8, 9]).to_string(), "2,4,5,7-9");
        assert_eq!(set(&[]).to_string(), "");
        assert_eq!(set(&[0, 2, 4, 6, 8]).to_string(), "0,2,4,6,8");
    }

    #[test]
    fn tc162_lenient_parsing() {
        assert_eq!(IndexSet::parse_lenient("0,2-4", 3), set(&[0, 2]));
        assert_eq!(IndexSet::parse_lenient("1-2,5", 3), set(&[1, 2]));
        assert_eq!(IndexSet::parse_lenient("x,1", 3), set(&[1]));
        assert_eq!(IndexSet::parse_lenient("0-1", 3).to_string(), "0,1");
        assert_eq!(IndexSet::parse_lenient("", 3), set(&[]));
    }

    #[test]
    fn tc157_strict_parsing_errors() {
        let err = |s| IndexSet::parse_strict(s, 5).unwrap_err();
        assert_eq!(err("3-1"), "non-increasing order, previous: 3, current: 1");
        assert_eq!(err("0,0"), "non-increasing order, previous: 0, current: 0");
        assert_eq!(err("7"), "too large index: \"7\"");
        assert_eq!(
            err("a"),
            "cannot convert string to integer for index: \"a\""
        );
        assert_eq!(
            err("1-2-3"),
            "the fragment \"1-2-3\" violates the requirement that an index interval can have at most two parts separated by '-'"
        );
        assert_eq!(IndexSet::parse_strict("0,2-3", 5).unwrap(), set(&[0, 2, 3]));
    }

    #[test]
    fn insert_merges_and_reports_novelty() {
        let mut s = IndexSet::new();
        assert!(s.insert(5));
        assert!(s.insert(3));
        assert!(s.insert(4));
        assert!(!s.insert(4));
        assert_eq!(s.intervals, vec![(3, 5)]);
        assert!(s.insert(7));
        assert_eq!(s.len(), 4);
        assert!(s.contains(7) && !s.contains(6));
        s.truncate(5);
        assert_eq!(s.to_string(), "3,4");
    }

    #[test]
    fn tc049_first_missing_skips_excluded() {
        let done = set(&[2, 4, 5, 7, 8, 9]);
        let running = set(&[0, 3]);
        assert_eq!(
            IndexSet::first_missing(20, 6, &[&done, &running]),
            vec![1, 6, 10, 11, 12, 13]
        );
        assert_eq!(IndexSet::first_missing(3, 10, &[]), vec![0, 1, 2]);
    }
}
