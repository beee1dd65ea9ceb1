//! Its own test binary: the runtime's reaper (`waitpid(-1)`), run by the crate's unit tests,
//! would reap this test's child before it could.

use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_runtime::kill_leftover;
use std::os::unix::process::{CommandExt, ExitStatusExt};

#[test]
fn kills_the_group_it_started_and_nothing_else() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let id = format!("joblet://{}", child.id());
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let now = Timestamp::from_second(seconds).unwrap();
    // Started an hour "later": another process that took the pid; left alone.
    let later = Timestamp::from_second(now.as_second() + 3600).unwrap();
    assert!(!kill_leftover(&id, later));
    assert!(child.try_wait().unwrap().is_none());
    assert!(kill_leftover(&id, now));
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    assert!(!kill_leftover("docker://abc", now));
}
