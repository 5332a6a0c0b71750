//! Assertions on the runs an application submitted: find them by what they are, and say
//! which were submitted instead when the expectation fails.

use std::fmt::{self, Write as _};

use runwarden_actors::{
    Json, JsonObject, ListQuery, RegistryRef, Release, RunId, RunRecord, RunStatus, SupervisorRef,
};

use crate::Error;

/// What to look for among submitted runs. Every criterion given must hold; parameters match
/// as a subset (the keys given, with nested objects matched the same way), so a test names
/// only what it cares about.
///
/// # Examples
/// ```
/// use runwarden::testing::RunMatch;
///
/// let invoice = RunMatch::any().label("send-invoice").param("customer", 42);
/// assert_eq!(invoice.to_string(), r#"label = "send-invoice", params ⊇ {"customer":42}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMatch {
    label: Option<String>,
    kind: Option<String>,
    queue: Option<String>,
    name: Option<String>,
    status: Option<RunStatus>,
    params: JsonObject,
}

impl RunMatch {
    /// Every run.
    #[must_use]
    pub fn any() -> Self {
        Self::default()
    }

    /// Runs with this label.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Runs submitted by this registered kind.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Runs in this queue.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Runs with this name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs in this status now.
    #[must_use]
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Runs whose parameter `key` matches `value` (an object value matches as a subset).
    #[must_use]
    pub fn param(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// Runs whose parameters include these (each key matched as by [`RunMatch::param`]).
    #[must_use]
    pub fn params(mut self, params: JsonObject) -> Self {
        self.params.extend(params);
        self
    }

    /// Whether `run` meets every criterion.
    #[must_use]
    pub fn matches(&self, run: &RunRecord) -> bool {
        self.misses(run).is_empty()
    }

    /// The criteria `run` does not meet, described.
    fn misses(&self, run: &RunRecord) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |what: &str, want: &Option<String>, got: Option<&str>| match (want, got) {
            (Some(want), Some(got)) if got != want => {
                out.push(format!("{what} {got:?}, not {want:?}"));
            }
            (Some(want), None) => out.push(format!("no {what}, not {want:?}")),
            _ => {}
        };
        field("label", &self.label, Some(&run.label));
        field("kind", &self.kind, run.kind.as_deref());
        field("queue", &self.queue, Some(&run.queue));
        field("name", &self.name, Some(&run.name));
        if let Some(want) = self.status
            && run.status != want
        {
            out.push(format!("status {}, not {}", run.status, want));
        }
        for (key, want) in &self.params {
            match run.params.get(key) {
                None => out.push(format!("no param {key:?}")),
                Some(got) if !subset(want, got) => {
                    out.push(format!("param {key:?} {}, not {}", text(got), text(want)));
                }
                Some(_) => {}
            }
        }
        out
    }

    /// How many criteria there are (a parameter key counts as one).
    fn criteria(&self) -> usize {
        [&self.label, &self.kind, &self.queue, &self.name]
            .iter()
            .filter(|c| c.is_some())
            .count()
            + usize::from(self.status.is_some())
            + self.params.len()
    }
}

impl fmt::Display for RunMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (what, value) in [
            ("label", &self.label),
            ("kind", &self.kind),
            ("queue", &self.queue),
            ("name", &self.name),
        ] {
            if let Some(v) = value {
                parts.push(format!("{what} = {v:?}"));
            }
        }
        if let Some(s) = self.status {
            parts.push(format!("status = {s}"));
        }
        if !self.params.is_empty() {
            parts.push(format!(
                "params ⊇ {}",
                text(&Json::Object(self.params.clone()))
            ));
        }
        if parts.is_empty() {
            return f.write_str("any run");
        }
        f.write_str(&parts.join(", "))
    }
}

/// Whether `want` is found in `got`: objects key by key (recursively), anything else equal.
fn subset(want: &Json, got: &Json) -> bool {
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| subset(wv, gv))),
        _ => want == got,
    }
}

fn text(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

/// Every run the registry holds that matches, newest first (runs that retention has already
/// forgotten are not seen: keep the test's retention window wide enough).
///
/// # Errors
/// [`Error`] if the registry does not answer.
pub async fn submitted(
    registry: &RegistryRef,
    matching: &RunMatch,
) -> Result<Vec<RunRecord>, Error> {
    Ok(all_runs(registry)
        .await?
        .into_iter()
        .filter(|r| matching.matches(r))
        .collect())
}

async fn all_runs(registry: &RegistryRef) -> Result<Vec<RunRecord>, Error> {
    const PAGE: usize = 1000;
    let mut runs = Vec::new();
    loop {
        let query = ListQuery {
            limit: PAGE,
            offset: runs.len(),
            ..ListQuery::default()
        };
        let page = registry.list(query).await?;
        let got = page.runs.len();
        runs.extend(page.runs);
        if got < PAGE || runs.len() >= page.total {
            return Ok(runs);
        }
    }
}

/// Lets the queued runs that match start, in the order production would pick them among
/// themselves (higher priority first, then the oldest), in a runwarden that holds its runs
/// ([`crate::RunwardenBuilder::hold_starts`], [`crate::StartMode::Held`]).
/// Returns the ids released.
///
/// # Errors
/// [`Error`] if the registry or the supervisor does not answer. (A matching run that started
/// or ended between the query and the release is not an error: it is left out of the ids.)
pub async fn release_matching(
    registry: &RegistryRef,
    supervisor: &SupervisorRef,
    matching: &RunMatch,
) -> Result<Vec<RunId>, Error> {
    let mut queued = submitted(registry, &matching.clone().status(RunStatus::Queued)).await?;
    queued.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.created_at, r.id));
    let ids: Vec<RunId> = queued.iter().map(|r| r.id).collect();
    let missed = supervisor.release(Release::Runs(ids.clone())).await?;
    Ok(ids.into_iter().filter(|id| !missed.contains(id)).collect())
}

/// Asserts that exactly one run matches, and returns it.
///
/// # Panics
/// If none or several match: the message lists the runs that were submitted, nearest to the
/// expectation first, each with what it misses.
pub async fn assert_one(registry: &RegistryRef, matching: &RunMatch) -> RunRecord {
    let mut found = assert_count(registry, matching, 1).await;
    found.remove(0)
}

/// Asserts that no run matches.
///
/// # Panics
/// If any does, listing them.
pub async fn assert_none(registry: &RegistryRef, matching: &RunMatch) {
    assert_count(registry, matching, 0).await;
}

/// Asserts that exactly `n` runs match, and returns them, newest first.
///
/// # Panics
/// If another number does: the message lists the runs that were submitted, nearest to the
/// expectation first, each with what it misses.
pub async fn assert_count(registry: &RegistryRef, matching: &RunMatch, n: usize) -> Vec<RunRecord> {
    let runs = match all_runs(registry).await {
        Ok(runs) => runs,
        Err(e) => panic!("could not list the submitted runs: {e}"),
    };
    let found: Vec<RunRecord> = runs
        .iter()
        .filter(|r| matching.matches(r))
        .cloned()
        .collect();
    if found.len() != n {
        panic!("{}", mismatch(matching, n, &found, &runs));
    }
    found
}

/// The failure message: what was expected, what matched, and the nearest runs.
fn mismatch(matching: &RunMatch, n: usize, found: &[RunRecord], runs: &[RunRecord]) -> String {
    const SHOWN: usize = 10;
    let mut msg = format!(
        "expected {n} run{} matching {matching}, found {}",
        if n == 1 { "" } else { "s" },
        found.len()
    );
    if runs.is_empty() {
        msg.push_str("; no run was submitted at all");
        return msg;
    }
    let mut ranked: Vec<(usize, &RunRecord, Vec<String>)> = runs
        .iter()
        .map(|r| {
            let misses = matching.misses(r);
            (matching.criteria().saturating_sub(misses.len()), r, misses)
        })
        .collect();
    // Nearest first: most criteria met; newest first among equals (the list is newest first
    // and the sort is stable).
    ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
    let _ = write!(
        msg,
        "\nsubmitted runs, nearest first ({} in all):",
        runs.len()
    );
    for (_, r, misses) in ranked.iter().take(SHOWN) {
        let _ = write!(
            msg,
            "\n  {} label {:?} queue {:?} {} params {}",
            r.id,
            r.label,
            r.queue,
            r.status,
            text(&Json::Object(r.params.clone()))
        );
        if misses.is_empty() {
            msg.push_str(" (matches)");
        } else {
            let _ = write!(msg, " (misses: {})", misses.join("; "));
        }
    }
    if runs.len() > SHOWN {
        let _ = write!(msg, "\n  … and {} more", runs.len() - SHOWN);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use runwarden_actors::RunSpec;

    fn record(spec: RunSpec) -> RunRecord {
        RunRecord::queued(RunId::new(), spec)
    }

    #[test]
    fn params_match_as_a_subset_and_nested_objects_too() {
        let r = record(
            RunSpec::new("send-invoice")
                .param("customer", 42)
                .param("lines", Json::Array(vec![1.into(), 2.into()]))
                .param(
                    "to",
                    Json::Object(JsonObject::from([
                        ("email".to_owned(), "a@b.c".into()),
                        ("name".to_owned(), "Ada".into()),
                    ])),
                ),
        );
        assert!(RunMatch::any().param("customer", 42).matches(&r));
        let nested = JsonObject::from([("email".to_owned(), "a@b.c".into())]);
        assert!(
            RunMatch::any()
                .param("to", Json::Object(nested))
                .matches(&r)
        );
        assert!(!RunMatch::any().param("customer", 41).matches(&r));
        assert!(
            !RunMatch::any()
                .param("lines", Json::Array(vec![1.into()]))
                .matches(&r)
        );
        assert!(!RunMatch::any().param("missing", 1).matches(&r));
        assert!(
            RunMatch::any()
                .label("send-invoice")
                .queue("default")
                .matches(&r)
        );
        assert!(!RunMatch::any().kind("send-invoice").matches(&r));
    }

    #[test]
    fn a_mismatch_lists_the_nearest_runs_first_with_what_they_miss() {
        let runs = vec![
            record(RunSpec::new("resize").param("image", "a.png")),
            record(RunSpec::new("send-invoice").param("customer", 41)),
            record(RunSpec::new("send-receipt").param("customer", 42)),
        ];
        let m = RunMatch::any().label("send-invoice").param("customer", 42);
        let msg = mismatch(&m, 1, &[], &runs);
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(
            lines[0],
            r#"expected 1 run matching label = "send-invoice", params ⊇ {"customer":42}, found 0"#
        );
        assert_eq!(lines[1], "submitted runs, nearest first (3 in all):");
        // The two runs that meet one criterion of two come before the one that meets none.
        assert!(lines[2].contains(r#"label "send-invoice""#), "{msg}");
        assert!(
            lines[2].ends_with(r#"(misses: param "customer" 41, not 42)"#),
            "{msg}"
        );
        assert!(
            lines[3].ends_with(r#"(misses: label "send-receipt", not "send-invoice")"#),
            "{msg}"
        );
        assert!(lines[4].contains(r#"label "resize""#), "{msg}");
        assert!(lines[4].contains(r#"no param "customer""#), "{msg}");
        assert_eq!(
            mismatch(&m, 1, &[], &[]),
            r#"expected 1 run matching label = "send-invoice", params ⊇ {"customer":42}, found 0; no run was submitted at all"#
        );
    }
}
