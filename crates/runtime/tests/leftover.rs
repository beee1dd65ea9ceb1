//! Its own test binary: the runtime's reaper (`waitpid(-1)`), run by the crate's unit tests,
//! would reap this test's child before it could.

use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_runtime::kill_leftover;
use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now() -> Timestamp {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Timestamp::from_second(seconds).unwrap()
}

#[test]
fn kills_the_group_it_started_and_nothing_else() {
    let mut child = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let id = format!("joblet://{}", child.id());
    let now = now();
    // Started an hour "later": another process that took the pid; left alone.
    let later = Timestamp::from_second(now.as_second() + 3600).unwrap();
    assert!(!kill_leftover(&id, later));
    assert!(child.try_wait().unwrap().is_none());
    assert!(kill_leftover(&id, now));
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    assert!(!kill_leftover("docker://abc", now));
}

#[test]
fn kills_what_lives_on_in_the_group_of_a_leader_that_ended() {
    let started = now();
    let mut leader = Command::new("sh")
        .args(["-c", "sleep 30 & echo $!"])
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(leader.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let left: i32 = line.trim().parse().unwrap();
    assert!(leader.wait().unwrap().success());
    let id = format!("joblet://{}", leader.id());
    // A group whose members started before the container did is not the container's.
    let after = Timestamp::from_second(started.as_second() + 3600).unwrap();
    assert!(!kill_leftover(&id, after));
    assert!(running(left));
    assert!(kill_leftover(&id, started));
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(left) {
        assert!(Instant::now() < deadline, "the leftover {left} still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Alive and not a zombie (the leftover's new parent may be slow to reap it).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}
