use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn record() -> RunRecord {
    RunRecord::queued(RunId::new(), RunSpec::new("test"))
}

fn started() -> Transition {
    Transition::Started {
        at: Timestamp::now(),
    }
}

// The happy path stamps every time and computes the duration.
#[test]
fn queued_running_completed_stamps_every_transition() {
    let mut r = record();
    r.apply(started()).expect("queued -> running");
    assert_eq!(r.status, RunStatus::Running);
    assert!(r.started_at.is_some());
    r.apply(Transition::completed())
        .expect("running -> completed");
    assert_eq!(r.status, RunStatus::Completed);
    let (s, f) = (
        r.started_at.expect("started"),
        r.finished_at.expect("finished"),
    );
    assert!(r.created_at <= s && s <= f);
    assert!(r.duration_ms.expect("duration") >= 0.0);
}

// A terminal status is final.
#[test]
fn a_terminal_status_refuses_every_later_transition() {
    let mut r = record();
    r.apply(Transition::cancelled(
        CancelReason::User,
        CancelKind::WhileQueued,
        "user",
    ))
    .expect("queued -> cancelled");
    let before = r.clone();
    for t in [
        started(),
        Transition::completed(),
        Transition::failed(FailureKind::Returned, "late"),
    ] {
        let target = t.target();
        assert_eq!(
            r.apply(t),
            Err(TransitionError::AlreadyTerminal {
                id: r.id,
                status: RunStatus::Cancelled,
                attempted: target
            })
        );
    }
    assert_eq!(r, before);
}

#[test]
fn running_twice_is_out_of_order() {
    let mut r = record();
    r.apply(started()).expect("first start");
    assert!(matches!(
        r.apply(started()),
        Err(TransitionError::OutOfOrder {
            from: RunStatus::Running,
            to: RunStatus::Running,
            ..
        })
    ));
}

#[test]
fn completed_without_starting_is_out_of_order() {
    let mut r = record();
    assert!(matches!(
        r.apply(Transition::completed()),
        Err(TransitionError::OutOfOrder {
            from: RunStatus::Queued,
            to: RunStatus::Completed,
            ..
        })
    ));
    assert_eq!(r.status, RunStatus::Queued);
}

// Who cancelled is a typed field of the record, and only a cancelled record has one.
#[test]
fn a_cancelled_record_names_who_cancelled_it() {
    let mut r = record();
    r.apply(Transition::cancelled(
        CancelReason::DrainDeadline,
        CancelKind::WhileQueued,
        "deadline",
    ))
    .expect("queued -> cancelled");
    assert_eq!(r.cancelled_by, Some(CancelReason::DrainDeadline));
    let json = serde_json::to_value(&r).expect("serialise");
    assert_eq!(json["cancelled_by"], "drain_deadline");
    let mut done = record();
    done.apply(started()).expect("start");
    done.apply(Transition::completed()).expect("complete");
    assert_eq!((done.cancelled_by, done.error), (None, None));
}

// A sender whose clock stepped back cannot make time run backwards on the record.
#[test]
fn times_never_run_backwards() {
    let mut r = record();
    let past = r.created_at.saturating_sub(Duration::from_secs(60));
    r.apply(Transition::Started { at: past }).expect("start");
    r.apply(Transition::Finished {
        at: past,
        outcome: Outcome::Completed(None),
    })
    .expect("finish");
    assert_eq!(r.started_at, Some(r.created_at));
    assert_eq!(r.finished_at, Some(r.created_at));
    assert_eq!(r.duration_ms, Some(0.0));
}

#[test]
fn records_serialise_with_lowercase_status_and_rfc3339_times() {
    let mut r = record();
    r.apply(started()).expect("start");
    r.apply(Transition::failed(FailureKind::Panicked, "boom"))
        .expect("fail");
    let json = serde_json::to_value(&r).expect("serialise");
    assert_eq!(json["status"], "failed");
    assert_eq!(json["error"]["kind"], "panicked");
    let created = json["created_at"].as_str().expect("string");
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    let back: RunRecord = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, r);
}

#[test]
fn run_ids_sort_by_creation() {
    let ids: Vec<RunId> = (0..1000).map(|_| RunId::new()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

pub(crate) fn any_transition() -> impl Strategy<Value = Transition> {
    let kind = prop_oneof![
        Just(FailureKind::Returned),
        Just(FailureKind::Panicked),
        Just(FailureKind::TimedOut),
    ];
    let status = prop::sample::select(RunStatus::ALL.to_vec());
    (0u8..4, status, kind, any::<bool>(), 0u64..10_000_000).prop_map(
        |(tag, status, kind, with_error, offset)| {
            let at = Timestamp::from_unix_micros(1_700_000_000_000_000 + offset);
            if tag == 0 {
                Transition::Started { at }
            } else if tag == 3 {
                Transition::Snoozed { at, until: at }
            } else if tag == 1 {
                Transition::RetryScheduled {
                    at,
                    error: RunError::new(kind.into(), "retry"),
                    next_attempt_at: at,
                }
            } else {
                let outcome = match (status, with_error) {
                    (RunStatus::Failed, _) => Outcome::Failed {
                        kind,
                        message: "x".into(),
                    },
                    (RunStatus::Cancelled, true) => Outcome::Cancelled {
                        by: CancelReason::User,
                        kind: CancelKind::WhileRunning,
                        message: "x".into(),
                    },
                    (RunStatus::Cancelled, false) => Outcome::Cancelled {
                        by: CancelReason::DrainDeadline,
                        kind: CancelKind::WhileQueued,
                        message: "x".into(),
                    },
                    _ => Outcome::Completed(None),
                };
                Transition::Finished { at, outcome }
            }
        },
    )
}

fn rank(s: RunStatus) -> u8 {
    match s {
        RunStatus::Queued => 0,
        RunStatus::Running => 1,
        _ => 2,
    }
}

proptest! {
    // Any sequence of transitions, legal or not: (attempt, snoozes, status) never moves backwards, a
    // terminal status never changes, refused transitions change nothing, attempts stay within
    // the policy, and times stay ordered.
    #[test]
    fn any_sequence_keeps_the_state_machine_invariants(ts in prop::collection::vec(any_transition(), 0..30)) {
        let mut r = RunRecord::queued(RunId::new(), RunSpec::new("p").retry(RetryPolicy::attempts(3)));
        let mut terminal: Option<RunRecord> = None;
        for t in ts {
            let before = r.clone();
            match r.apply(t) {
                Ok(()) => {
                    prop_assert!(terminal.is_none(), "a terminal record changed");
                    prop_assert!(
                        (r.attempt, r.snoozes, rank(r.status))
                            > (before.attempt, before.snoozes, rank(before.status))
                    );
                    prop_assert!(r.attempt <= r.max_attempts);
                    prop_assert_eq!(r.attempt_errors.len() as u32, r.attempt - 1);
                }
                Err(_) => prop_assert_eq!(&r, &before),
            }
            if r.status.is_terminal() {
                prop_assert!(r.finished_at.is_some());
                prop_assert_eq!(r.error.is_some(), r.status != RunStatus::Completed);
                if let Some(t) = &terminal { prop_assert_eq!(t, &r); }
                terminal = Some(r.clone());
            }
            if let (Some(s), Some(f)) = (r.started_at, r.finished_at) {
                prop_assert!(r.created_at <= s && s <= f);
            }
        }
    }
}

// A retry moves Running back to Queued with the next attempt number; the first start time is
// kept and each attempt's error is kept.
#[test]
fn a_retry_starts_the_next_attempt_and_keeps_the_error() {
    let spec = RunSpec::new("r").retry(RetryPolicy::attempts(2));
    let mut r = RunRecord::queued(RunId::new(), spec);
    r.apply(started()).expect("start 1");
    let first_start = r.started_at;
    let retry = Transition::RetryScheduled {
        at: Timestamp::now(),
        error: RunError::new(ErrorKind::Returned, "flaky"),
        next_attempt_at: Timestamp::now(),
    };
    r.apply(retry.clone()).expect("retry");
    assert_eq!((r.status, r.attempt), (RunStatus::Queued, 2));
    assert!(r.next_attempt_at.is_some());
    r.apply(started()).expect("start 2");
    assert_eq!(r.started_at, first_start);
    assert!(r.next_attempt_at.is_none());
    // No third attempt under a two-attempt policy.
    assert!(matches!(
        r.apply(retry),
        Err(TransitionError::OutOfOrder { .. })
    ));
    r.apply(Transition::completed()).expect("complete");
    assert_eq!(r.attempt_errors.len(), 1);
}

#[test]
fn backoff_grows_exponentially_up_to_the_cap_with_bounded_jitter() {
    let p = RetryPolicy::attempts(10)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .jitter(0.0);
    let waits: Vec<u128> = (1..=6)
        .map(|a| p.backoff_after(a, 0.5).as_millis())
        .collect();
    assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
    let jittered = p.jitter(0.5);
    for unit in [0.0, 0.3, 0.99] {
        let w = jittered.backoff_after(3, unit);
        assert!(
            w <= Duration::from_millis(400) && w >= Duration::from_millis(200),
            "{w:?}"
        );
    }
}

/// A record with every field present (none `None`, no list empty).
fn every_field() -> RunRecord {
    let t = |micros| Timestamp::from_unix_micros(micros);
    let mut params = JsonObject::new();
    params.insert("n".into(), Json::from(3));
    RunRecord {
        id: RunId::new(),
        label: "label".into(),
        name: "name \"quoted\"".into(),
        params,
        status: RunStatus::Cancelled,
        created_at: t(1),
        started_at: Some(t(2)),
        finished_at: Some(t(3)),
        duration_ms: Some(0.25),
        error: Some(RunError::new(ErrorKind::TimedOut, "slow")),
        cancelled_by: Some(CancelReason::User),
        queue: "q".into(),
        priority: -4,
        attempt: 2,
        max_attempts: 5,
        attempt_errors: vec![RunError::new(ErrorKind::Returned, "first")],
        next_attempt_at: Some(t(4)),
        snoozes: 1,
        eligible_at: Some(t(5)),
        progress: Some(Progress::percent(40.0)),
        result: Some(Json::from("done")),
        exit_code: Some(3),
        kind: Some("kind".into()),
        idempotency_key: Some("key".into()),
        partition_key: Some("tenant".into()),
        timeout: Some(Duration::from_millis(1500)),
        retry: Some(RetryPolicy::default()),
        depends_on: vec![Dependency::on(RunId::new())],
        workflow: Some(WorkflowId::new()),
        step: Some("step".into()),
        rerun_of: Some(RunId::new()),
        reruns: vec![RunId::new()],
        trace_parent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

fn json_value(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).expect("serialise")
}

// A store's compact JSON is the record's own JSON without its absent fields, and reads back as
// the same record: with every field present it is the same JSON, field for field.
#[test]
fn compact_json_is_the_full_json_without_absent_fields() {
    let full = every_field();
    assert_eq!(json_value(&full.compact()), json_value(&full));
    let text = serde_json::to_string(&full.compact()).expect("serialise");
    let back: RunRecord = serde_json::from_str(&text).expect("reads back");
    assert_eq!(back, full);

    // A queued record has most fields absent; a `null` result reads back as none in either form.
    let mut queued = record();
    queued.result = Some(Json::Null);
    let mut expected = json_value(&queued);
    if let serde_json::Value::Object(fields) = &mut expected {
        fields.retain(|k, v| {
            let empty = v.is_null() || v.as_array().is_some_and(Vec::is_empty);
            !(empty || (k == "snoozes" && v.as_u64() == Some(0)))
        });
    }
    assert_eq!(json_value(&queued.compact()), expected);
    let text = serde_json::to_string(&queued.compact()).expect("serialise");
    assert!(!text.contains("null"), "{text}");
    let back: RunRecord = serde_json::from_str(&text).expect("reads back");
    queued.result = None;
    assert_eq!(back, queued);
}
