//! A run's span is the child of the span that submitted it, exported through OpenTelemetry
//! to an in-process exporter: for a run submitted inside a request's span, and for a queued
//! run recovered from the store after a crash, whose context only the record kept.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use runwarden::{
    BoxedJob, OnInterrupt, RunRecord, RunSpec, RunStatus, RunStore, Runwarden, SqliteStore,
    StoreWrite,
};
use runwarden_otel::OtelPropagation;
use tracing_subscriber::layer::SubscriberExt;

/// The process's one subscriber, exporting to memory.
fn exporter() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("runwarden-test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        (exporter, provider)
    })
}

/// The exported `run` span of run `id`, once it has ended.
async fn run_span(id: runwarden::RunId) -> SpanData {
    let (exporter, provider) = exporter();
    let want = id.to_string();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let _ = provider.force_flush();
            let spans = exporter.get_finished_spans().expect("spans");
            let found = spans.into_iter().find(|s| {
                s.name == "run"
                    && s.attributes
                        .iter()
                        .any(|kv| kv.key.as_str() == "run_id" && kv.value.as_str() == want)
            });
            if let Some(span) = found {
                return span;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the run's span to be exported")
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn noop(_: &runwarden::JsonObject) -> Result<BoxedJob, String> {
    Ok(BoxedJob::repeatable(|_ctx| async { Ok(()) }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_span_is_the_child_of_the_span_that_submitted_it() {
    exporter();
    let rw = Runwarden::builder()
        .trace_propagation(OtelPropagation::new())
        .job_kind("noop", OnInterrupt::Rerun, noop)
        .start()
        .await
        .expect("start");
    let request = tracing::info_span!("handle_request");
    let id = {
        let _in_request = request.enter();
        rw.submit_job(
            RunSpec::new("report").name("monthly report"),
            runwarden::Kind("noop"),
        )
        .expect("submit")
    };
    let request_cx = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = request.context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id(), sc.span_id())
    };
    drop(request);
    let record = rw.wait(id).await.expect("wait");
    assert_eq!(record.status, RunStatus::Completed);
    assert!(
        record.trace_parent.is_some(),
        "the record keeps the context"
    );

    let span = run_span(id).await;
    assert_eq!(span.span_context.trace_id(), request_cx.0, "same trace");
    assert_eq!(
        span.parent_span_id, request_cx.1,
        "child of the request's span"
    );
    assert_eq!(attribute(&span, "name").as_deref(), Some("monthly report"));
    assert_eq!(attribute(&span, "label").as_deref(), Some("report"));
    assert_eq!(attribute(&span, "kind").as_deref(), Some("noop"));
    assert_eq!(attribute(&span, "queue").as_deref(), Some("default"));
    assert_eq!(attribute(&span, "attempt").as_deref(), Some("1"));

    // Without a span around the submit there is no context to continue: a new trace.
    let orphan = rw
        .submit_job(RunSpec::new("orphan"), runwarden::Kind("noop"))
        .expect("submit");
    let record = rw.wait(orphan).await.expect("wait");
    assert_eq!(record.trace_parent, None);
    let span = run_span(orphan).await;
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_run_continues_the_trace_its_record_kept() {
    exporter();
    let dir = std::env::temp_dir().join(format!("runwarden-otel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("runs.db");
    let _ = std::fs::remove_file(&path);
    // What a process that crashed left: a queued run of a kind, with its submitter's context.
    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
    let parent = SpanId::from_hex("00f067aa0ba902b7").expect("hex");
    let traceparent = format!("00-{trace_id}-{parent}-01");
    let mut spec = RunSpec::new("left behind").trace_parent(traceparent.clone());
    spec.kind = Some("noop".into());
    let record = RunRecord::queued(runwarden::RunId::new(), spec);
    let id = record.id;
    {
        let mut store = SqliteStore::open(path.clone()).expect("open");
        store
            .write(&[StoreWrite::Put(Box::new(record))])
            .expect("write");
    }

    let rw = Runwarden::builder()
        .trace_propagation(OtelPropagation::new())
        .store(SqliteStore::open(path.clone()).expect("reopen"))
        .job_kind("noop", OnInterrupt::Rerun, noop)
        .start()
        .await
        .expect("start");
    let done = rw.wait(id).await.expect("wait");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.trace_parent.as_deref(), Some(traceparent.as_str()));
    let span = run_span(id).await;
    assert_eq!(span.span_context.trace_id(), trace_id);
    assert_eq!(span.parent_span_id, parent);
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
