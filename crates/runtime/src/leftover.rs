//! What a previous joblet left running: when it was killed, its pods' process groups
//! lived on, unwatched. Their container ids (`joblet://<pid>`, the group leader) and start
//! times identify them, so a new joblet can end them before it replaces the pods.

use joblet_api::k8s_openapi::jiff::Timestamp;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How far a process's start may be from the container's recorded `startedAt`.
const START_SLACK_SECONDS: i64 = 2;

/// Kills the process group of a container started at `started_at`, if its leader still
/// runs and is that process (not a later one with the same pid). True if one was killed.
pub fn kill_leftover(container_id: &str, started_at: Timestamp) -> bool {
    let Some(pid) = container_id
        .strip_prefix("joblet://")
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return false;
    };
    let Some(started) = process_start(pid) else {
        return false;
    };
    if (started - started_at.as_second()).abs() > START_SLACK_SECONDS {
        return false;
    }
    killpg(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
}

/// When a process started, in Unix seconds: boot time plus its start in clock ticks.
fn process_start(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is field 3, start time 22.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: i64 = fields.get(19)?.parse().ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)?;
    Some(boot + ticks / per_second)
}
