//! What a previous joblet left running: when it was killed, its pods' process groups
//! lived on, unwatched. Their container ids (`joblet://<pid>`, the group leader) and start
//! times identify them, so a new joblet can end them before it replaces the pods.

use joblet_api::k8s_openapi::jiff::Timestamp;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How far a process's start may be from the container's recorded `startedAt`.
const START_SLACK_SECONDS: i64 = 2;

/// Kills the process group of a container started at `started_at`, if it is still that
/// container's (not a later process's with the same pid). True if one was killed.
pub fn kill_leftover(container_id: &str, started_at: Timestamp) -> bool {
    let Some(pid) = container_id
        .strip_prefix("joblet://")
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return false;
    };
    let Some(clock) = BootClock::read() else {
        return false;
    };
    let started_at = started_at.as_second();
    let ours = match process_stat(pid) {
        Some(leader) => {
            (clock.seconds(leader.start_ticks) - started_at).abs() <= START_SLACK_SECONDS
        }
        // The leader ended and what it started may live on in its group. The kernel does
        // not hand out a pid while a group of that id lives, so the group is the
        // container's; its members must also have started after the container did.
        None => {
            let members = group_members(pid);
            !members.is_empty()
                && members
                    .iter()
                    .all(|m| clock.seconds(m.start_ticks) >= started_at - START_SLACK_SECONDS)
        }
    };
    ours && killpg(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
}

/// What `/proc/<pid>/stat` says of a process that matters here.
struct ProcessStat {
    group: i32,
    /// When it started, in clock ticks since boot.
    start_ticks: i64,
}

fn process_stat(pid: i32) -> Option<ProcessStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is field 3, the process
    // group 5, the start time 22.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(ProcessStat {
        group: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Turns a process's start in clock ticks since boot into Unix seconds.
struct BootClock {
    boot: i64,
    ticks_per_second: i64,
}

impl BootClock {
    fn read() -> Option<BootClock> {
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
        let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|t| *t > 0)?;
        Some(BootClock {
            boot,
            ticks_per_second,
        })
    }

    fn seconds(&self, ticks: i64) -> i64 {
        self.boot + ticks / self.ticks_per_second
    }
}

/// The processes of process group `group`.
fn group_members(group: i32) -> Vec<ProcessStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(process_stat)
        .filter(|p| p.group == group)
        .collect()
}
