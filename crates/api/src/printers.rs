//! What `kubectl get jobs` shows (`printJob` in pkg/printers/internalversion/printers.go).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;

/// apimachinery's `HumanDuration`, from whole seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn condition_true(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The STATUS column: the first of Complete, Failed, Terminating, Suspended,
/// FailureTarget that applies, else Running.
pub fn job_status(job: &Job) -> &'static str {
    if condition_true(job, "Complete") {
        "Complete"
    } else if condition_true(job, "Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if condition_true(job, "Suspended") {
        "Suspended"
    } else if condition_true(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// The COMPLETIONS column.
pub fn job_completions(job: &Job) -> String {
    let spec = job.spec.as_ref();
    let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
    match spec.and_then(|s| s.completions) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match spec.and_then(|s| s.parallelism).unwrap_or(1) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// NAME, STATUS, COMPLETIONS, DURATION, AGE at `now`.
pub fn job_row(job: &Job, now: Timestamp) -> [String; 5] {
    let status = job.status.as_ref();
    let seconds = |from: Timestamp, to: Timestamp| to.as_second() - from.as_second();
    let duration = match status.and_then(|s| s.start_time.as_ref()) {
        None => String::new(),
        Some(start) => {
            let end = status
                .and_then(|s| s.completion_time.as_ref())
                .map_or(now, |t| t.0);
            human_duration(seconds(start.0, end))
        }
    };
    let age = job
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| human_duration(seconds(t.0, now)))
        .unwrap_or_else(|| "<unknown>".to_string());
    [
        job.metadata.name.clone().unwrap_or_default(),
        job_status(job).to_string(),
        job_completions(job),
        duration,
        age,
    ]
}

/// Columns padded as kubectl's tab writer pads them (three spaces between columns).
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(value: serde_json::Value) -> Job {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn tc165_human_durations() {
        let cases = [
            (65, "65s"),
            (150, "2m30s"),
            (180, "3m"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (50 * 3600, "2d2h"),
            (-5, "<invalid>"),
            (-1, "0s"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn tc163_completions_column() {
        let with = |spec: serde_json::Value, succeeded: i32| {
            job_completions(&job(
                serde_json::json!({"spec": spec, "status": {"succeeded": succeeded}}),
            ))
        };
        assert_eq!(
            with(serde_json::json!({"completions": 5, "template": {}}), 3),
            "3/5"
        );
        assert_eq!(
            with(serde_json::json!({"parallelism": 3, "template": {}}), 0),
            "0/1 of 3"
        );
        assert_eq!(
            with(serde_json::json!({"parallelism": 1, "template": {}}), 0),
            "0/1"
        );
    }

    #[test]
    fn tc164_status_column_precedence() {
        let with = |conditions: serde_json::Value| {
            job_status(&job(
                serde_json::json!({"status": {"conditions": conditions}}),
            ))
        };
        assert_eq!(
            with(serde_json::json!([{"type": "Complete", "status": "True"}])),
            "Complete"
        );
        assert_eq!(
            with(
                serde_json::json!([{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}])
            ),
            "Failed"
        );
        assert_eq!(
            with(serde_json::json!([{"type": "Suspended", "status": "True"}])),
            "Suspended"
        );
        assert_eq!(
            with(serde_json::json!([{"type": "FailureTarget", "status": "True"}])),
            "FailureTarget"
        );
        assert_eq!(
            with(serde_json::json!([{"type": "SuccessCriteriaMet", "status": "True"}])),
            "Running"
        );
        assert_eq!(
            with(serde_json::json!([{"type": "Suspended", "status": "False"}])),
            "Running"
        );
    }

    #[test]
    fn tc172_row_of_a_finished_job() {
        let j = job(
            serde_json::json!({"metadata": {"name": "pi", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"completions": 1, "template": {}},
            "status": {"succeeded": 1, "startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:01:06Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}}),
        );
        let now: Timestamp = "2026-01-01T00:14:00Z".parse().unwrap();
        assert_eq!(
            job_row(&j, now),
            ["pi", "Complete", "1/1", "65s", "14m"].map(String::from)
        );
        let table = render_table(&["NAME", "STATUS"], &[vec!["pi".into(), "Complete".into()]]);
        assert_eq!(table, "NAME   STATUS\npi     Complete\n");
    }
}
