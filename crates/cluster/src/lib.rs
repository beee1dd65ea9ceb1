//! `joblet run --context`: the same Jobs on a real Kubernetes cluster, which schedules and
//! runs their pods. This crate sends the manifest's objects (`submit.rs`), follows the Jobs,
//! their pods and their events through watches — never by polling — into the notices the
//! local engine gives (`track.rs`), so the display, the summary and the exit status are the
//! local run's, and saves every container run's log as a local run does (`logs.rs`). It uses
//! only what every API server offers.

mod connect;
mod logs;
mod submit;
mod track;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures::stream::{self, BoxStream, StreamExt};
use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::{Event as WireEvent, Pod};
use joblet_api::labels;
use joblet_driver::{Notice, SystemClock};
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::mpsc::UnboundedReceiver;

pub use connect::{load, Cluster, Target};
pub use submit::{delete_jobs, submit, Submitted};

/// How long an ended Job's last event (`Completed`, `BackoffLimitExceeded`) is awaited: the
/// Job controller records it right after the status that ends the Job.
const FINAL_EVENTS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long an interrupted run waits for its last log streams.
const INTERRUPTED_LOGS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Pods per page of a list, as kube's watches list them.
const LIST_PAGE: u32 = 500;

pub struct FollowOptions {
    /// Where container logs are saved (a run directory's `logs`).
    pub logs_dir: PathBuf,
    /// Also print each log line, prefixed `[pod/NAME/CONTAINER]`.
    pub stream_logs: bool,
    /// Log streams open at once; the others wait their turn.
    pub max_log_streams: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every Job ended, is suspended, or runs nothing at parallelism 0.
    Settled,
    /// Stopped by a signal: the Jobs were deleted.
    Interrupted,
}

pub struct Followed {
    pub ending: Ending,
    /// The Jobs as last seen.
    pub jobs: Vec<Job>,
    /// Jobs deleted from the cluster by someone else before they ended.
    pub deleted: Vec<String>,
}

/// What one of the watches brought. Each is moved once, from its stream to the loop: the
/// variants' sizes (a Job, a Pod, an Event) do not matter.
#[allow(clippy::large_enum_variant)]
enum Watched {
    Job(Result<Event<Job>, watcher::Error>),
    Pod(String, Result<Event<Pod>, watcher::Error>),
    Event(Result<Event<WireEvent>, watcher::Error>),
}

/// Follows the submitted Jobs until they settle, telling `observer` what a local run's engine
/// would, and `note` what the user should read (lost logs, a failing watch). A first message
/// on `stop` deletes the Jobs the run created (not those it attached to) and waits for their
/// pods to go; a second stops waiting.
pub async fn follow(
    cluster: &Cluster,
    submitted: Submitted,
    mut observer: Box<dyn FnMut(Notice) + Send>,
    options: FollowOptions,
    stop: UnboundedReceiver<joblet_driver::Shutdown>,
    note: &(dyn Fn(&str) + Sync),
) -> Followed {
    let Submitted { jobs, attached, .. } = submitted;
    let mut tracker = track::Tracker::new(&jobs);
    let mut logs = logs::LogSaver::new(
        cluster.client.clone(),
        options.logs_dir,
        options.stream_logs,
        options.max_log_streams,
    );
    let namespaces = namespaces_of(&jobs, &cluster.namespace);
    let mut watches = stream::select_all(watches(cluster, &jobs, tracker.uids(), &namespaces));
    let mut stop = Some(stop);
    let mut interrupted = false;
    let mut relisted: HashMap<String, HashSet<String>> = HashMap::new();
    let mut last_problem = String::new();
    // Once settled, the Job controller's last events are awaited this long at most.
    let mut settled_at: Option<tokio::time::Instant> = None;
    loop {
        if interrupted && tracker.pods_left(&attached) == 0 {
            break;
        }
        if !interrupted && tracker.settled() {
            if tracker.final_events_seen() {
                break;
            }
            settled_at.get_or_insert_with(tokio::time::Instant::now);
        }
        let waited_enough = async {
            match settled_at {
                Some(at) => tokio::time::sleep_until(at + FINAL_EVENTS_WAIT).await,
                None => std::future::pending().await,
            }
        };
        let watched = tokio::select! {
            watched = watches.next() => watched,
            _ = waited_enough => break,
            signal = next_stop(&mut stop) => {
                if signal.is_none() {
                    stop = None;
                    continue;
                }
                if interrupted {
                    note("stopped waiting for the pods to end");
                    logs.abandon().await;
                    return followed(Ending::Interrupted, &tracker);
                }
                interrupted = true;
                note("run interrupted: deleting its Jobs and waiting for their pods to end (again to stop waiting)");
                let (kept, created): (Vec<Job>, Vec<Job>) = (jobs.iter().cloned())
                    .partition(|j| attached.contains(j.metadata.uid.as_deref().unwrap_or_default()));
                for job in kept {
                    let name = job.metadata.name.unwrap_or_default();
                    note(&format!("job {name}: not created by this run, left running"));
                }
                for problem in delete_jobs(cluster, &created).await {
                    note(&problem);
                }
                continue;
            }
        };
        let Some(watched) = watched else { break };
        let now = SystemClock.now();
        let notices = match watched {
            Watched::Job(Ok(Event::Apply(job) | Event::InitApply(job))) => tracker.job(&job, now),
            Watched::Job(Ok(Event::Delete(job))) => {
                tracker.job_deleted(&job);
                Vec::new()
            }
            Watched::Pod(namespace, Ok(event)) => match event {
                Event::Apply(pod) | Event::InitApply(pod) => {
                    if let Some(seen) = relisted.get_mut(&namespace) {
                        seen.insert(pod.metadata.name.clone().unwrap_or_default());
                    }
                    logs.pod(&pod);
                    tracker.pod(&pod, now)
                }
                Event::Delete(pod) => {
                    logs.pod_deleted(&pod);
                    tracker.pod_deleted(&pod, now)
                }
                Event::Init => {
                    relisted.insert(namespace, HashSet::new());
                    Vec::new()
                }
                Event::InitDone => {
                    // Pods deleted while the watch was away have no delete event.
                    let seen = relisted.remove(&namespace).unwrap_or_default();
                    tracker.pods_not_listed(&namespace, &seen, now)
                }
            },
            Watched::Event(Ok(Event::Apply(event) | Event::InitApply(event))) => {
                tracker.event(&event, now)
            }
            Watched::Job(Ok(_)) | Watched::Event(Ok(_)) => Vec::new(),
            Watched::Job(Err(e)) | Watched::Pod(_, Err(e)) | Watched::Event(Err(e)) => {
                let problem = format!("watch: {}; retrying", connect::chain(&e));
                if problem != last_problem {
                    note(&problem);
                    last_problem = problem;
                }
                Vec::new()
            }
        };
        for notice in notices {
            observer(notice);
        }
    }
    if !interrupted {
        // The pods' last statuses, which the watch may not have brought yet: their logs.
        // Listed a page at a time: a big Job's pods whole would be the run's peak memory.
        for namespace in &namespaces {
            let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
            let mut page = (ListParams::default())
                .labels(&uid_selector(tracker.uids()))
                .limit(LIST_PAGE);
            loop {
                let list = match pods.list(&page).await {
                    Ok(list) => list,
                    Err(e) => {
                        note(&format!("listing the pods: {}", connect::said(&e)));
                        break;
                    }
                };
                let now = SystemClock.now();
                for pod in &list.items {
                    logs.pod(pod);
                    for notice in tracker.pod(pod, now) {
                        observer(notice);
                    }
                }
                match list.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => page = page.continue_token(&token),
                    None => break,
                }
            }
        }
    }
    // Interrupted, the deleted pods' streams have ended or are ending; those of a Job the
    // run attached to and left running would not end: they are cut after a moment.
    let problems = match interrupted {
        true => {
            (tokio::time::timeout(INTERRUPTED_LOGS_WAIT, logs.finish()).await).unwrap_or_default()
        }
        false => logs.finish().await,
    };
    for problem in problems {
        note(&problem);
    }
    let ending = match interrupted {
        true => Ending::Interrupted,
        false => Ending::Settled,
    };
    followed(ending, &tracker)
}

fn followed(ending: Ending, tracker: &track::Tracker) -> Followed {
    Followed {
        ending,
        jobs: tracker.jobs(),
        deleted: tracker.deleted(),
    }
}

async fn next_stop(
    stop: &mut Option<UnboundedReceiver<joblet_driver::Shutdown>>,
) -> Option<joblet_driver::Shutdown> {
    match stop {
        Some(stop) => stop.recv().await,
        None => std::future::pending().await,
    }
}

fn namespaces_of(jobs: &[Job], default: &str) -> Vec<String> {
    let mut namespaces: Vec<String> = (jobs.iter())
        .map(|j| {
            j.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| default.to_string())
        })
        .collect();
    namespaces.sort();
    namespaces.dedup();
    namespaces
}

/// The pods of the Jobs, by the label the Job controller puts on each.
fn uid_selector(uids: &[String]) -> String {
    format!("{} in ({})", labels::CONTROLLER_UID, uids.join(","))
}

/// A watch of each Job by name, and per namespace one of the Jobs' pods and one of events.
fn watches(
    cluster: &Cluster,
    jobs: &[Job],
    uids: &[String],
    namespaces: &[String],
) -> Vec<BoxStream<'static, Watched>> {
    let client = &cluster.client;
    let mut watches = Vec::new();
    for job in jobs {
        let namespace = job
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(&cluster.namespace);
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let api: Api<Job> = Api::namespaced(client.clone(), namespace);
        watches.push(
            watcher(api, config)
                .default_backoff()
                .map(Watched::Job)
                .boxed(),
        );
    }
    for namespace in namespaces {
        let events: Api<WireEvent> = Api::namespaced(client.clone(), namespace);
        let events = watcher(events, watcher::Config::default()).default_backoff();
        watches.push(events.map(Watched::Event).boxed());
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let config = watcher::Config::default().labels(&uid_selector(uids));
        let namespace = namespace.clone();
        let pods = watcher(pods, config).default_backoff();
        watches.push(
            pods.map(move |e| Watched::Pod(namespace.clone(), e))
                .boxed(),
        );
    }
    watches
}
