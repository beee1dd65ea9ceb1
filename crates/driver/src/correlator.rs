//! The event recorder's correlator, which every component of a cluster sends its events
//! through (client-go `tools/record/events_cache.go`, default options): similar events about
//! an object are combined, identical ones counted on one Event, and each object gets a burst
//! of 25 events from a component, then one per 5 minutes. A Job of 10,000 pods so keeps a
//! few dozen events, as on a cluster, not 10,000 `SuccessfulCreate`s.

use std::collections::HashSet;
use std::hash::BuildHasher;

use hashlink::{DefaultHashBuilder, LruCache};
use joblet_api::k8s_openapi::api::core::v1::ObjectReference;
use joblet_core::{Event, Time};

/// Each cache's bound (`maxLruCacheEntries`).
const CACHE_ENTRIES: usize = 4096;
/// Similar events (same object and reason, other messages) before they are combined
/// (`defaultAggregateMaxEvents`).
const SIMILAR_BEFORE_COMBINING: usize = 10;
/// How long similar events are remembered (`defaultAggregateIntervalInSeconds`).
const SIMILAR_WINDOW_MS: i64 = 600_000;
/// Events a component may record about an object at once (`defaultSpamBurst`)...
const SPAM_BURST: f64 = 25.0;
/// ...and then per second (`defaultSpamQPS`: one per 5 minutes).
const SPAM_PER_SECOND: f64 = 1.0 / 300.0;

/// An event a component is about to record, and the resourceVersion a new Event would be
/// written at (which names it).
pub struct Candidate<'a> {
    pub component: &'a str,
    pub involved: &'a ObjectReference,
    pub event: &'a Event,
    pub rv: i64,
}

/// What to store: a new Event or one seen before (created at `first_rv` and
/// `first_timestamp`, which name it), counted again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub first_rv: i64,
    pub first_timestamp: Time,
    pub message: String,
    pub count: i32,
}

#[derive(Clone, Copy)]
struct Seen {
    first_rv: i64,
    first_timestamp: Time,
    count: i32,
}

struct Similar {
    messages: HashSet<u64>,
    last: Time,
}

/// A token bucket, full at first (`NewTokenBucketPassiveRateLimiter`).
struct Bucket {
    tokens: f64,
    at: Time,
}

/// Upstream keys its caches by strings joined from the event's fields; these are keyed by
/// hashes of the same fields (hashbrown's fast hasher, seeded at random): a few bytes an
/// entry where 10,000 pods' events fill every cache.
pub struct EventCorrelator {
    hasher: DefaultHashBuilder,
    similar: LruCache<u64, Similar>,
    seen: LruCache<u64, Seen>,
    spam: LruCache<u64, Bucket>,
}

impl Default for EventCorrelator {
    fn default() -> Self {
        EventCorrelator {
            hasher: DefaultHashBuilder::default(),
            similar: LruCache::new(CACHE_ENTRIES),
            seen: LruCache::new(CACHE_ENTRIES),
            spam: LruCache::new(CACHE_ENTRIES),
        }
    }
}

impl EventCorrelator {
    /// `EventCorrelate`: combine, count, then filter. None when the event is dropped as
    /// spam; it is counted all the same, as upstream counts it before the filter.
    pub fn correlate(&mut self, candidate: Candidate, now: Time) -> Option<Recorded> {
        let object = self.object_key(&candidate);
        let (key, message) = self.combine(object, &candidate, now);
        let accepted = self.accepts(object, now);
        let seen = match self.seen.get(&key) {
            Some(seen) => Seen {
                count: seen.count + 1,
                ..*seen
            },
            None => Seen {
                first_rv: candidate.rv,
                first_timestamp: now,
                count: 1,
            },
        };
        self.seen.insert(key, seen);
        accepted.then_some(Recorded {
            first_rv: seen.first_rv,
            first_timestamp: seen.first_timestamp,
            message,
            count: seen.count,
        })
    }

    /// `EventAggregate`: the key the event is counted under and its message. The tenth
    /// similar event within 10 minutes and those after it are one combined Event.
    fn combine(&mut self, object: u64, candidate: &Candidate, now: Time) -> (u64, String) {
        let event = candidate.event;
        let similar_key = self
            .hasher
            .hash_one((object, event.type_.as_str(), &event.reason));
        let mut similar = match self.similar.remove(&similar_key) {
            Some(similar) if now.millis_since(similar.last) <= SIMILAR_WINDOW_MS => similar,
            _ => Similar {
                messages: HashSet::new(),
                last: now,
            },
        };
        similar
            .messages
            .insert(self.hasher.hash_one(&event.message));
        similar.last = now;
        let combined = similar.messages.len() >= SIMILAR_BEFORE_COMBINING;
        if combined {
            // Never more than the bound: one message forgotten, any.
            let any = similar.messages.iter().next().copied();
            any.map(|m| similar.messages.remove(&m));
        }
        self.similar.insert(similar_key, similar);
        if combined {
            let message = format!("(combined from similar events): {}", event.message);
            return (similar_key, message);
        }
        let field = candidate.involved.field_path.as_deref();
        let key = self.hasher.hash_one((similar_key, field, &event.message));
        (key, event.message.clone())
    }

    /// `EventSourceObjectSpamFilter`: whether the component may record another event about
    /// the object now.
    fn accepts(&mut self, object: u64, now: Time) -> bool {
        let mut bucket = self.spam.remove(&object).unwrap_or(Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        let seconds = now.millis_since(bucket.at).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + seconds * SPAM_PER_SECOND).min(SPAM_BURST);
        bucket.at = now;
        let accepted = bucket.tokens >= 1.0;
        if accepted {
            bucket.tokens -= 1.0;
        }
        self.spam.insert(object, bucket);
        accepted
    }

    /// The component and the object an event is about (`getSpamKey`).
    fn object_key(&self, candidate: &Candidate) -> u64 {
        let involved = candidate.involved;
        self.hasher.hash_one((
            candidate.component,
            &involved.kind,
            &involved.namespace,
            &involved.name,
            &involved.uid,
            &involved.api_version,
        ))
    }
}

#[cfg(test)]
mod tests {
    use joblet_core::EventType;

    use super::*;

    const START: Time = Time(1_800_000_000_000);

    fn job() -> ObjectReference {
        ObjectReference {
            kind: Some("Job".into()),
            namespace: Some("default".into()),
            name: Some("big".into()),
            uid: Some("u1".into()),
            api_version: Some("batch/v1".into()),
            ..Default::default()
        }
    }

    /// Records `reason: message` about the Job at `at`; what is stored, if anything.
    fn record(
        correlator: &mut EventCorrelator,
        reason: &str,
        message: &str,
        at: Time,
    ) -> Option<Recorded> {
        let event = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        };
        let involved = job();
        let candidate = Candidate {
            component: "job-controller",
            involved: &involved,
            event: &event,
            rv: at.0,
        };
        correlator.correlate(candidate, at)
    }

    #[test]
    fn the_tenth_similar_event_and_those_after_it_are_one_combined_event() {
        let mut c = EventCorrelator::default();
        let recorded: Vec<Recorded> = (0..20)
            .map(|i| {
                record(
                    &mut c,
                    "SuccessfulCreate",
                    &format!("Created pod: big-{i}"),
                    START.plus_millis(i),
                )
            })
            .map(Option::unwrap)
            .collect();
        for (i, r) in recorded[..9].iter().enumerate() {
            assert_eq!(
                (r.message.as_str(), r.count),
                (format!("Created pod: big-{i}").as_str(), 1)
            );
        }
        let combined = &recorded[9..];
        assert!(combined.iter().all(|r| r.first_rv == combined[0].first_rv));
        let counts: Vec<i32> = combined.iter().map(|r| r.count).collect();
        assert_eq!(counts, (1..=11).collect::<Vec<_>>());
        assert_eq!(
            combined[10].message,
            "(combined from similar events): Created pod: big-19"
        );
        assert_eq!(combined[10].first_timestamp, START.plus_millis(9));
    }

    #[test]
    fn an_identical_event_counts_again_on_the_first() {
        let mut c = EventCorrelator::default();
        let first = record(&mut c, "BackOff", "Back-off restarting", START).unwrap();
        let again = record(
            &mut c,
            "BackOff",
            "Back-off restarting",
            START.plus_millis(5),
        )
        .unwrap();
        assert_eq!(
            (again.first_rv, again.count, again.first_timestamp),
            (first.first_rv, 2, START)
        );
    }

    #[test]
    fn an_object_gets_25_events_at_once_then_one_per_five_minutes() {
        let mut c = EventCorrelator::default();
        let kept = (0..40)
            .filter(|i| record(&mut c, &format!("Reason{i}"), "m", START).is_some())
            .count();
        assert_eq!(kept, 25);
        assert!(record(&mut c, "Late", "m", START.plus_millis(299_000)).is_none());
        // Two and a half tokens by 750 s.
        let later = START.plus_millis(750_000);
        assert!(record(&mut c, "Later", "m", later).is_some());
        assert!(record(&mut c, "AtOnce", "m", later).is_some());
        assert!(record(&mut c, "Again", "m", later).is_none());
    }

    #[test]
    fn a_dropped_event_still_counts_for_the_next_one_kept() {
        let mut c = EventCorrelator::default();
        for i in 0..25 {
            record(&mut c, &format!("Filler{i}"), "m", START);
        }
        assert!(record(&mut c, "BackOff", "again", START).is_none());
        let kept = record(&mut c, "BackOff", "again", START.plus_millis(300_000)).unwrap();
        assert_eq!(kept.count, 2);
    }

    #[test]
    fn similar_events_are_forgotten_after_ten_quiet_minutes() {
        let mut c = EventCorrelator::default();
        for i in 0..9 {
            record(
                &mut c,
                "SuccessfulCreate",
                &format!("Created pod: big-{i}"),
                START,
            );
        }
        let later = START.plus_millis(SIMILAR_WINDOW_MS + 1);
        let alone = record(&mut c, "SuccessfulCreate", "Created pod: big-9", later).unwrap();
        assert_eq!(alone.message, "Created pod: big-9");
    }
}
