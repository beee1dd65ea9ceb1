//! One thread reaps every child with `waitpid(-1)` and hands each exit status to whoever
//! waits for that pid. One blocking wait per exit costs far less than waking every waiter
//! on each SIGCHLD, which is what makes thousands of short pods a second affordable.
//!
//! The reaper owns all children of the process: nothing else in it may wait for children.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How a process ended, as the kubelet reports it: signal deaths are 128 + N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
}

#[derive(Default)]
struct Table {
    /// Spawns under way whose child is not registered yet.
    spawning: usize,
    /// Live children and who waits for each. With `spawning`, this is what keeps the
    /// reaper awake: a failed spawn's child may be reaped by the C library itself, so a
    /// plain count of spawned children would drift.
    waiters: HashMap<i32, oneshot::Sender<Exit>>,
    /// Exits reaped before their waiter was registered.
    early: HashMap<i32, Exit>,
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

    /// Spawns `command` and returns the child with a receiver for its exit.
    pub fn spawn(&self, command: &mut Command) -> io::Result<(Child, oneshot::Receiver<Exit>)> {
        let (lock, wake) = &*self.shared;
        lock.lock().expect("reaper table").spawning += 1;
        wake.notify_one();
        let spawned = command.spawn();
        let mut table = lock.lock().expect("reaper table");
        table.spawning -= 1;
        let child = spawned?;
        let (tx, rx) = oneshot::channel();
        match table.early.remove(&(child.id() as i32)) {
            Some(exit) => {
                let _ = tx.send(exit);
            }
            None => {
                table.waiters.insert(child.id() as i32, tx);
            }
        }
        Ok((child, rx))
    }
}

fn reap_forever(shared: &(Mutex<Table>, Condvar)) {
    let (lock, wake) = shared;
    loop {
        {
            let mut table = lock.lock().expect("reaper table");
            while table.spawning == 0 && table.waiters.is_empty() {
                table.early.clear();
                table = wake.wait(table).expect("reaper table");
            }
        }
        let (pid, exit) = match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Exit { code, signal: None }),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (
                pid,
                Exit {
                    code: 128 + signal as i32,
                    signal: Some(signal as i32),
                },
            ),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => {
                // ECHILD: no child exists. Either a spawn has not forked yet, or the
                // waited-for children were reaped elsewhere: their waiters see a lost exit.
                let mut table = lock.lock().expect("reaper table");
                if table.spawning == 0 {
                    table.waiters.clear();
                }
                drop(table);
                std::thread::yield_now();
                continue;
            }
        };
        let mut table = lock.lock().expect("reaper table");
        match table.waiters.remove(&pid.as_raw()) {
            Some(tx) => {
                let _ = tx.send(exit);
            }
            None => {
                table.early.insert(pid.as_raw(), exit);
            }
        }
    }
}
