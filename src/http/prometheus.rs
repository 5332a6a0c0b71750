//! `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! Names follow Prometheus' conventions: a `runwarden_` prefix, base units (seconds), `_total`
//! on counters. Label values are bounded: queues and job kinds (both configured by the
//! application), statuses and states; never a run id or label.

use std::fmt::Write;

use runwarden_actors::metrics::BUCKET_BOUNDS;

use crate::{RegistryStats, RunMetrics, RunStatus, SupervisorStatus};

const TERMINAL: [RunStatus; 3] = [
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Cancelled,
];

/// Writes one exposition: the registry's counts and counters, the supervisor's queues.
pub(super) fn render(
    stats: &RegistryStats,
    sup: &SupervisorStatus,
    metrics: &RunMetrics,
    uptime_secs: f64,
) -> String {
    let mut out = Exposition(String::with_capacity(4096 + metrics.series.len() * 8192));

    out.family("runwarden_runs", "gauge", "Run records held, by status.");
    for st in RunStatus::ALL {
        out.sample(
            "runwarden_runs",
            &[("status", st.as_str())],
            stats.count(st),
        );
    }

    out.family(
        "runwarden_runs_finished_total",
        "counter",
        "Runs that reached a terminal status since start, by queue, kind and status.",
    );
    for s in &metrics.series {
        for (i, st) in TERMINAL.iter().enumerate() {
            let labels = [
                ("queue", &*s.queue),
                ("kind", s.kind.as_deref().unwrap_or("")),
                ("status", st.as_str()),
            ];
            out.sample("runwarden_runs_finished_total", &labels, s.finished[i]);
        }
    }

    out.family(
        "runwarden_run_duration_seconds",
        "histogram",
        "Duration of runs that started, from the first start to the end, by queue, kind and \
         terminal status.",
    );
    for s in &metrics.series {
        for (i, st) in TERMINAL.iter().enumerate() {
            let labels = [
                ("queue", &*s.queue),
                ("kind", s.kind.as_deref().unwrap_or("")),
                ("status", st.as_str()),
            ];
            out.histogram("runwarden_run_duration_seconds", &labels, &s.duration[i]);
        }
    }

    out.family(
        "runwarden_queue_wait_seconds",
        "histogram",
        "From submit (for a run with dependencies, from its release) to the first start, by \
         queue and kind.",
    );
    for s in &metrics.series {
        let labels = [
            ("queue", &*s.queue),
            ("kind", s.kind.as_deref().unwrap_or("")),
        ];
        out.histogram("runwarden_queue_wait_seconds", &labels, &s.queue_wait);
    }

    type Field = fn(&crate::MetricSeries) -> u64;
    let per_series: [(&str, &str, Field); 5] = [
        (
            "runwarden_run_retries_total",
            "Failed attempts followed by another attempt.",
            |s| s.retries,
        ),
        (
            "runwarden_run_timeouts_total",
            "Attempts that hit their time limit.",
            |s| s.timeouts,
        ),
        (
            "runwarden_run_forced_stops_total",
            "Cancelled runs whose job did not stop within the grace period and was dropped.",
            |s| s.forced_stops,
        ),
        (
            "runwarden_run_recoveries_total",
            "Interrupted attempts queued again after a crash.",
            |s| s.recoveries,
        ),
        (
            "runwarden_run_snoozes_total",
            "Runs that asked to run again later.",
            |s| s.snoozes,
        ),
    ];
    for (name, help, field) in per_series {
        out.family(name, "counter", help);
        for s in &metrics.series {
            let labels = [
                ("queue", &*s.queue),
                ("kind", s.kind.as_deref().unwrap_or("")),
            ];
            out.sample(name, &labels, field(s));
        }
    }

    out.family(
        "runwarden_peak_running",
        "gauge",
        "Most runs running at once.",
    );
    out.sample("runwarden_peak_running", &[], stats.peak_running);
    out.family(
        "runwarden_refused_messages_total",
        "counter",
        "Status messages the registry refused.",
    );
    out.sample("runwarden_refused_messages_total", &[], stats.refused);
    out.family(
        "runwarden_pruned_total",
        "counter",
        "Finished runs removed by retention.",
    );
    out.sample("runwarden_pruned_total", &[], stats.pruned);
    out.family(
        "runwarden_registry_restarts_total",
        "counter",
        "Times the registry restarted from its store after a failure.",
    );
    out.sample("runwarden_registry_restarts_total", &[], stats.restarts);

    out.family(
        "runwarden_queue_runs",
        "gauge",
        "Runs per queue: waiting for a slot (queued) and running.",
    );
    for q in &sup.queues {
        out.sample(
            "runwarden_queue_runs",
            &[("queue", &q.name), ("state", "queued")],
            q.queued,
        );
        out.sample(
            "runwarden_queue_runs",
            &[("queue", &q.name), ("state", "running")],
            q.running,
        );
    }
    out.family(
        "runwarden_queue_limit",
        "gauge",
        "A queue's concurrency limit (queues with one).",
    );
    for q in &sup.queues {
        if let Some(limit) = q.limit {
            out.sample("runwarden_queue_limit", &[("queue", &q.name)], limit);
        }
    }
    type QueueField = fn(&crate::QueueStatus) -> usize;
    let per_queue: [(&str, &str, QueueField); 2] = [
        (
            "runwarden_queue_paused",
            "Whether a queue is paused (1) or not (0).",
            |q| usize::from(q.paused),
        ),
        (
            "runwarden_queue_keys",
            "Partition keys with runs waiting or running in a queue.",
            |q| q.keys,
        ),
    ];
    for (name, help, field) in per_queue {
        out.family(name, "gauge", help);
        for q in &sup.queues {
            out.sample(name, &[("queue", &q.name)], field(q));
        }
    }
    out.family(
        "runwarden_kind_queued",
        "gauge",
        "Runs of a rate-limited kind waiting to start.",
    );
    for k in &sup.kind_rates {
        out.sample("runwarden_kind_queued", &[("kind", &k.kind)], k.queued);
    }
    out.family(
        "runwarden_waiting_runs",
        "gauge",
        "Runs waiting for their dependencies, held by the supervisor.",
    );
    out.sample("runwarden_waiting_runs", &[], sup.awaiting);
    out.family(
        "runwarden_uptime_seconds",
        "gauge",
        "Seconds since the API started.",
    );
    out.sample("runwarden_uptime_seconds", &[], Float(uptime_secs));
    out.0
}

/// A value written as Prometheus reads it.
struct Float(f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == f64::INFINITY {
            f.write_str("+Inf")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<f64>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.0.push('{');
        let mut first = true;
        for (k, v) in labels {
            if !first {
                self.0.push(',');
            }
            first = false;
            self.0.push_str(k);
            self.0.push_str("=\"");
            escape_into(&mut self.0, v);
            self.0.push('"');
        }
        if let Some(le) = le {
            if !first {
                self.0.push(',');
            }
            let _ = write!(self.0, "le=\"{}\"", Float(le));
        }
        self.0.push('}');
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &crate::Histogram) {
        debug_assert_eq!(h.cumulative().count(), BUCKET_BOUNDS.len() + 1);
        for (le, count) in h.cumulative() {
            self.0.push_str(name);
            self.0.push_str("_bucket");
            self.labels(labels, Some(le));
            let _ = writeln!(self.0, " {count}");
        }
        self.0.push_str(name);
        self.0.push_str("_sum");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", Float(h.sum()));
        self.0.push_str(name);
        self.0.push_str("_count");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", h.count());
    }
}

/// A label value as the text format requires: backslash, double quote and line feed
/// escaped.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition(String::new());
        out.sample("m", &[("queue", "a\"b\\c\nd")], 1);
        assert_eq!(out.0, "m{queue=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_sum_and_count() {
        let mut h = crate::Histogram::default();
        h.observe(0.002);
        h.observe(4.0);
        let mut out = Exposition(String::new());
        out.histogram("h", &[("queue", "q")], &h);
        assert!(out.0.contains("h_bucket{queue=\"q\",le=\"0.001\"} 0\n"));
        assert!(out.0.contains("h_bucket{queue=\"q\",le=\"0.0025\"} 1\n"));
        assert!(out.0.contains("h_bucket{queue=\"q\",le=\"5\"} 2\n"));
        assert!(out.0.contains("h_bucket{queue=\"q\",le=\"+Inf\"} 2\n"));
        assert!(out.0.contains("h_sum{queue=\"q\"} 4.002\n"));
        assert!(out.0.contains("h_count{queue=\"q\"} 2\n"));
    }
}
