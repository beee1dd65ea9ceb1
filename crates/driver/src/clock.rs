//! The one reader of the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_core::Time;

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    pub fn now(&self) -> Time {
        Time(self.now_timestamp().as_millisecond())
    }

    pub fn now_timestamp(&self) -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::new(since.as_secs() as i64, since.subsec_nanos() as i32)
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl joblet_runtime::Clock for SystemClock {
    fn now(&self) -> Timestamp {
        self.now_timestamp()
    }
}
