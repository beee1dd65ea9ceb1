//! What `joblet run` shows while Jobs run: a live progress view on a terminal, one
//! `kubectl get events` line per event elsewhere, and a `kubectl get jobs` summary.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::printers::{human_duration, job_row, render_table};
use joblet_api::IndexSet;
use joblet_core::{EventType, Status};
use joblet_driver::{Notice, SystemClock};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `-o json|yaml`: stdout is for the objects only.
    Quiet,
    Progress,
    Events,
}

struct JobBar {
    bar: ProgressBar,
    completions: Option<i32>,
    indexed: bool,
}

struct State {
    view: View,
    started: Instant,
    header_printed: bool,
    bars: HashMap<(String, String), JobBar>,
    /// The terminal's bars, above which lines are printed.
    multi: Option<MultiProgress>,
}

pub struct Display {
    state: Arc<Mutex<State>>,
}

impl Display {
    pub fn new(view: View, jobs: &[Job]) -> Self {
        let mut bars = HashMap::new();
        let multi = (view == View::Progress).then(MultiProgress::new);
        if let Some(multi) = &multi {
            let width = jobs.iter().map(|j| job_name(j).len()).max().unwrap_or(0);
            for job in jobs {
                bars.insert(job_key(job), JobBar::new(multi, job, width));
            }
        }
        Display {
            state: Arc::new(Mutex::new(State {
                view,
                started: Instant::now(),
                header_printed: false,
                bars,
                multi,
            })),
        }
    }

    pub fn observer(&self) -> Box<dyn FnMut(Notice) + Send> {
        let state = self.state.clone();
        Box::new(move |notice| state.lock().expect("display").notice(notice))
    }

    /// A line for the user on stderr, above the bars on a terminal (not through them).
    pub fn note(&self, text: &str) {
        let state = self.state.lock().expect("display");
        match &state.multi {
            Some(multi) => multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Ends the live view, each bar left where its Job ended (a failed or interrupted Job's
    /// bar is not full), and prints the `kubectl get jobs` summary.
    pub fn finish(&self, jobs: &[Job]) {
        let state = self.state.lock().expect("display");
        if state.view == View::Quiet {
            return;
        }
        for job in jobs {
            // A bar stopped when its Job ended stays as it was drawn then.
            let running = |b: &&JobBar| !b.bar.is_finished();
            if let Some(job_bar) = state.bars.get(&job_key(job)).filter(running) {
                let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
                let position = match job_bar.completions {
                    Some(_) => succeeded.max(0) as u64,
                    None => u64::from(succeeded > 0),
                };
                job_bar.bar.set_position(position);
                job_bar.bar.abandon();
            }
        }
        let now = SystemClock.now_timestamp();
        let rows: Vec<Vec<String>> = jobs.iter().map(|j| job_row(j, now).to_vec()).collect();
        let table = render_table(&["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], &rows);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out);
        let _ = out.write_all(table.as_bytes());
    }
}

impl State {
    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Event { object, event, .. } => {
                // Each pod's binding, image found and each container's start and stop are
                // left to `kubectl describe`: lines for every pod would bury the rest. A
                // pull is said: it takes long.
                let container_start = event.type_ == EventType::Normal
                    && (matches!(
                        event.reason.as_str(),
                        "Scheduled" | "Created" | "Started" | "Killing"
                    ) || event.message.ends_with("already present on machine"))
                    && object.starts_with("pod/");
                // On a terminal, only what went wrong: the bars show the rest.
                if (self.view == View::Events && !container_start)
                    || (self.view == View::Progress && event.type_ == EventType::Warning)
                {
                    self.line(event.type_.as_str(), &event.reason, &object, &event.message);
                }
            }
            Notice::PodFailed { pod, reason, .. } => {
                if self.view != View::Quiet {
                    self.line("Warning", "PodFailed", &format!("pod/{pod}"), &reason);
                }
            }
            // A Job made while the run goes on (by a CronJob): a bar of its own, as the
            // manifest's Jobs have.
            Notice::JobAdded(job) => {
                if let Some(multi) = &self.multi {
                    let job_bar = JobBar::new(multi, &job, 0);
                    self.bars.insert(job_key(&job), job_bar);
                }
            }
            Notice::Status {
                namespace,
                job,
                status,
                running_indexes,
                ..
            } => {
                if let Some(job_bar) = self.bars.get(&(namespace, job)) {
                    update_bar(job_bar, &status, &running_indexes);
                }
            }
        }
    }

    /// One line in the style of `kubectl get events` (above the bars on a terminal).
    fn line(&mut self, type_: &str, reason: &str, object: &str, message: &str) {
        let seen = human_duration(self.started.elapsed().as_secs() as i64);
        let mut text = String::new();
        if !self.header_printed {
            self.header_printed = true;
            text.push_str(&format!(
                "{:<10} {:<8} {:<22} {:<28} MESSAGE\n",
                "LAST SEEN", "TYPE", "REASON", "OBJECT"
            ));
        }
        text.push_str(&format!(
            "{seen:<10} {type_:<8} {reason:<22} {object:<28} {message}"
        ));
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => {
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }
        }
    }
}

fn job_name(job: &Job) -> String {
    job.metadata.name.clone().unwrap_or_default()
}

fn job_key(job: &Job) -> (String, String) {
    let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
    (namespace.to_string(), job_name(job))
}

impl JobBar {
    /// A bar for the Job, its name padded to `width`.
    fn new(multi: &MultiProgress, job: &Job, width: usize) -> JobBar {
        let spec = job.spec.as_ref();
        let completions = spec.and_then(|s| s.completions);
        let indexed = spec.and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
        let bar = multi.add(ProgressBar::new(completions.unwrap_or(1).max(0) as u64));
        bar.set_style(
            ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} {msg} {elapsed}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{:<width$}", job_name(job)));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        JobBar {
            bar,
            completions,
            indexed,
        }
    }
}

fn update_bar(job_bar: &JobBar, status: &Status, running: &IndexSet) {
    let bar = &job_bar.bar;
    match job_bar.completions {
        Some(_) => bar.set_position(status.succeeded.max(0) as u64),
        None => bar.set_position(u64::from(status.succeeded > 0)),
    }
    let mut message = format!("active {} failed {}", status.active, status.failed);
    if job_bar.indexed && !status.completed_indexes.is_empty() {
        message.push_str(&format!(
            " done [{}]",
            truncate(&status.completed_indexes.to_string())
        ));
    }
    if job_bar.indexed && !running.is_empty() {
        message.push_str(&format!(" running [{}]", truncate(&running.to_string())));
    }
    if let Some(failed) = status.failed_indexes.as_ref().filter(|f| !f.is_empty()) {
        message.push_str(&format!(" failed [{}]", truncate(&failed.to_string())));
    }
    if let Some(condition) = status.conditions.iter().rev().find(|c| c.status) {
        message.push_str(&format!(" {}", condition.type_.as_str()));
    }
    bar.set_message(message);
    // An ended Job's bar stops where it ended: its time no longer runs (a CronJob's run
    // goes on after it).
    if status.is_finished() {
        bar.abandon();
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= 40 {
        text.to_string()
    } else {
        let cut = text[..40].rfind(',').unwrap_or(40);
        format!("{}...", &text[..cut])
    }
}
