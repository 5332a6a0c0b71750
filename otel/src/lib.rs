//! OpenTelemetry trace propagation for [runwarden](https://docs.rs/runwarden): a run's span
//! (`run`, with its id, name, label, kind, queue and attempt) is the child of the span that
//! submitted it, however long it waited, after a registry restart, and after a crash
//! recovery (the context is kept on the run's record, and in the store).
//!
//! Export is the application's: it installs `tracing-opentelemetry`'s layer with the tracer
//! of its choice (an OTLP exporter, say). This crate only moves the context:
//!
//! ```no_run
//! # async fn f() -> Result<(), runwarden::Error> {
//! let rw = runwarden::Runwarden::builder()
//!     .trace_propagation(runwarden_otel::OtelPropagation::new())
//!     .start()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! It captures the context of [`tracing::Span::current`] (as `tracing-opentelemetry` sees
//! it) at submit, as a W3C `traceparent`, and sets the run span's parent from it at start.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use runwarden_actors::TracePropagation;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// [`TracePropagation`] through OpenTelemetry's W3C trace-context propagator.
#[derive(Debug, Default)]
pub struct OtelPropagation {
    propagator: TraceContextPropagator,
}

impl OtelPropagation {
    /// The W3C trace-context propagation.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl TracePropagation for OtelPropagation {
    fn capture(&self) -> Option<String> {
        let cx = tracing::Span::current().context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier: HashMap<String, String> = HashMap::new();
        self.propagator.inject_context(&cx, &mut carrier);
        carrier.remove("traceparent")
    }

    fn adopt(&self, span: &tracing::Span, traceparent: &str) {
        let carrier: HashMap<String, String> =
            HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let cx = self.propagator.extract(&carrier);
        if cx.span().span_context().is_valid() {
            // Fails only when the span is disabled (no OpenTelemetry layer sees it).
            let _ = span.set_parent(cx);
        }
    }
}
