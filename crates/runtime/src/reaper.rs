//! One thread reaps every child and hands each exit status to whoever waits for that pid.
//! One blocking wait per exit costs far less than waking every waiter on each SIGCHLD,
//! which is what makes thousands of short pods a second affordable.
//!
//! The reaper owns all children of the process: nothing else in it may wait for children.
//!
//! A child's process group is signalled only while the child is unreaped: a zombie keeps
//! its pid, and so its group's id, from being handed out again. Once reaped, the number may
//! name a new pod's group, and a late `killpg` would hit it. So the reaper looks at an exit
//! first without collecting it (`WNOWAIT`), kills what the child left in its group, and
//! only then reaps it; and [`Reaper::signal_group`] signals a group only while its leader
//! is unreaped.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How a process ended, as the kubelet reports it: signal deaths are 128 + N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
}

/// What [`Reaper::output`] collected.
pub struct Output {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Default)]
struct Table {
    /// Spawns under way whose child is not registered yet.
    spawning: usize,
    /// Live children, each with its spawn's serial and who waits for it. With `spawning`,
    /// this is what keeps the reaper awake: a failed spawn's child may be reaped by the C
    /// library itself, so a plain count of spawned children would drift.
    waiters: HashMap<i32, (u64, oneshot::Sender<Exit>)>,
    /// Serials tell two children with the same pid apart.
    next_serial: u64,
}

/// The process group a spawned child leads, told apart from a later group with the same
/// number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    pub leader: Pid,
    serial: u64,
}

#[derive(Clone)]
pub struct Reaper {
    shared: Arc<(Mutex<Table>, Condvar)>,
}

impl Reaper {
    /// The process's one reaper: two would steal each other's children.
    pub fn get() -> Self {
        static REAPER: std::sync::OnceLock<Reaper> = std::sync::OnceLock::new();
        REAPER.get_or_init(Reaper::start).clone()
    }

    fn start() -> Self {
        let reaper = Reaper {
            shared: Arc::new((Mutex::new(Table::default()), Condvar::new())),
        };
        let shared = reaper.shared.clone();
        std::thread::Builder::new()
            .name("joblet-reaper".to_string())
            .spawn(move || reap_forever(&shared))
            .expect("spawning the reaper thread");
        reaper
    }

    /// Spawns `command` and returns the child, a receiver for its exit, and the group it
    /// leads (if `command` makes it a group leader).
    pub fn spawn(
        &self,
        command: &mut Command,
    ) -> io::Result<(Child, oneshot::Receiver<Exit>, Group)> {
        let (lock, wake) = &*self.shared;
        lock.lock().expect("reaper table").spawning += 1;
        wake.notify_all();
        let spawned = command.spawn();
        let mut table = lock.lock().expect("reaper table");
        table.spawning -= 1;
        let registered = spawned.map(|child| {
            let (tx, rx) = oneshot::channel();
            let serial = table.next_serial;
            table.next_serial += 1;
            table.waiters.insert(child.id() as i32, (serial, tx));
            let leader = Pid::from_raw(child.id() as i32);
            (child, rx, Group { leader, serial })
        });
        drop(table);
        // The reaper may hold a child's exit until it knows whether the child is ours.
        wake.notify_all();
        registered
    }

    /// Runs `command` to its end in a group of its own, as `Command::output` would (which
    /// no code in this process may call: the reaper takes every child's exit). Blocks the
    /// calling thread until then.
    pub fn output(&self, command: &mut Command) -> io::Result<Output> {
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (mut child, exit, _) = self.spawn(command)?;
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        // Each pipe read to its end on a thread of its own, so neither can fill and stall
        // the child; the exit is waited for off any async runtime's thread.
        std::thread::scope(|scope| {
            let err = scope.spawn(move || {
                let mut text = Vec::new();
                stderr.as_mut().map(|e| e.read_to_end(&mut text));
                text
            });
            let mut out = Vec::new();
            stdout.as_mut().map(|o| o.read_to_end(&mut out));
            let stderr = err.join().unwrap_or_default();
            let exit = scope.spawn(move || exit.blocking_recv()).join();
            let exit = exit.ok().and_then(Result::ok).unwrap_or(Exit {
                code: 128 + Signal::SIGKILL as i32,
                signal: Some(Signal::SIGKILL as i32),
            });
            Ok(Output {
                exit,
                stdout: out,
                stderr,
            })
        })
    }

    /// Sends `signal` to `group` if its leader has not been reaped: then the group is still
    /// the one it leads. False if it was.
    pub fn signal_group(&self, group: Group, signal: Signal) -> bool {
        let (lock, _) = &*self.shared;
        let table = lock.lock().expect("reaper table");
        let unreaped = table
            .waiters
            .get(&group.leader.as_raw())
            .is_some_and(|(serial, _)| *serial == group.serial);
        unreaped && killpg(group.leader, signal).is_ok()
    }
}

impl Table {
    /// No child existed when the reaper last looked, which began when `first_unseen` was the
    /// next serial: the children registered before then were reaped elsewhere, and their
    /// waiters see a lost exit. A child registered since was forked after the look (its
    /// spawn may have been under way, or begun, meanwhile) and is kept.
    fn forget_reaped_elsewhere(&mut self, first_unseen: u64) {
        self.waiters
            .retain(|_, (serial, _)| *serial >= first_unseen);
    }
}

fn reap_forever(shared: &(Mutex<Table>, Condvar)) {
    let (lock, wake) = shared;
    loop {
        let first_unseen = {
            let mut table = lock.lock().expect("reaper table");
            while table.spawning == 0 && table.waiters.is_empty() {
                table = wake.wait(table).expect("reaper table");
            }
            table.next_serial
        };
        // Which child ended, without collecting it yet.
        let pid = match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(status) => match status.pid() {
                Some(pid) => pid,
                None => continue,
            },
            Err(Errno::EINTR) => continue,
            Err(_) => {
                // ECHILD: no child existed. Either a spawn had not forked yet, or the
                // waited-for children were reaped elsewhere.
                let mut table = lock.lock().expect("reaper table");
                table.forget_reaped_elsewhere(first_unseen);
                drop(table);
                std::thread::yield_now();
                continue;
            }
        };
        let mut table = lock.lock().expect("reaper table");
        // A child that ended before its spawn returned is registered in a moment; one
        // whose exec failed is collected by the C library instead, and is not ours to touch.
        while table.spawning > 0 && !table.waiters.contains_key(&pid.as_raw()) {
            table = wake.wait(table).expect("reaper table");
        }
        let waiter = table.waiters.remove(&pid.as_raw());
        if waiter.is_some() {
            // Still a zombie, so its pid names no other group: end what it left behind.
            let _ = killpg(pid, Signal::SIGKILL);
        }
        let exit = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Exit { code, signal: None },
            Ok(WaitStatus::Signaled(_, signal, _)) => Exit {
                code: 128 + signal as i32,
                signal: Some(signal as i32),
            },
            // Collected elsewhere (a failed spawn): its waiter, if any, sees a lost exit.
            Ok(_) | Err(_) => continue,
        };
        if let Some((_, waiter)) = waiter {
            let _ = waiter.send(exit);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    /// Makes the kernel hand out `pid` to the next process (root only).
    fn next_pid_is(pid: i32) {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1))
            .expect("this test sets /proc/sys/kernel/ns_last_pid: run it as root");
    }

    /// The race a pod once lost its exit to (reported 137, killed): the reaper found no
    /// child while a spawn was about to fork, and the spawn forked and registered its child
    /// before the reaper took the table again.
    #[test]
    fn a_child_registered_after_the_reaper_found_none_keeps_its_waiter() {
        let mut table = Table::default();
        let register = |table: &mut Table, pid: i32| {
            let (tx, rx) = oneshot::channel();
            table.waiters.insert(pid, (table.next_serial, tx));
            table.next_serial += 1;
            rx
        };
        let mut reaped_elsewhere = register(&mut table, 10);
        // The reaper looks (no child exists: 10 was reaped by someone else)...
        let first_unseen = table.next_serial;
        // ...a spawn forks and registers its child meanwhile...
        let mut newcomer = register(&mut table, 11);
        // ...and the reaper, back at the table, forgets only what it could not have seen.
        table.forget_reaped_elsewhere(first_unseen);
        assert_eq!(
            reaped_elsewhere.try_recv(),
            Err(oneshot::error::TryRecvError::Closed),
            "a lost exit"
        );
        assert_eq!(
            newcomer.try_recv(),
            Err(oneshot::error::TryRecvError::Empty),
            "still waited for"
        );
        assert_eq!(table.waiters.keys().collect::<Vec<_>>(), [&11]);
    }

    #[test]
    fn a_reaped_childs_group_number_is_never_signalled_even_when_a_new_group_has_it() {
        let reaper = Reaper::get();
        for _ in 0..20 {
            let mut first = Command::new("true");
            first.process_group(0);
            let (_, exit, ended) = reaper.spawn(&mut first).unwrap();
            let reused = ended.leader;
            assert_eq!(exit.blocking_recv().unwrap().code, 0);
            // A new group under the number of the one that ended (if no other process
            // took the number first).
            next_pid_is(reused.as_raw());
            let mut second = Command::new("sleep");
            second.arg("30").process_group(0);
            let (_, newcomer_exit, newcomer) = reaper.spawn(&mut second).unwrap();
            if newcomer.leader != reused {
                assert!(reaper.signal_group(newcomer, Signal::SIGKILL));
                let _ = newcomer_exit.blocking_recv();
                continue;
            }
            // What a late stop of the first container would do.
            assert!(!reaper.signal_group(ended, Signal::SIGKILL));
            assert!(
                nix::sys::signal::kill(newcomer.leader, None).is_ok(),
                "the new group was not touched"
            );
            assert!(reaper.signal_group(newcomer, Signal::SIGKILL));
            assert_eq!(newcomer_exit.blocking_recv().unwrap().code, 137);
            return;
        }
        panic!("the kernel never handed out the same pid again");
    }
}
