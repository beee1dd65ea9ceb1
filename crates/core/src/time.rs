//! Time as the controller sees it: an input, in milliseconds since the Unix epoch.

use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as WireTime;
use joblet_api::k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time(pub i64);

impl Time {
    pub const fn from_secs(secs: i64) -> Self {
        Time(secs * 1000)
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Time(self.0.saturating_add(ms))
    }

    pub fn millis_since(self, earlier: Time) -> i64 {
        self.0 - earlier.0
    }

    pub fn to_wire(self) -> WireTime {
        WireTime(Timestamp::from_millisecond(self.0).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    pub fn from_wire(time: &WireTime) -> Self {
        Time(time.0.as_millisecond())
    }
}
