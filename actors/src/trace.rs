//! Trace context across the gap between submit and start: a run's span is the child of the
//! span that submitted it, even when it starts much later, after a crash recovery, or from a
//! request that has long returned.
//!
//! The context travels as a W3C `traceparent` value on the run's spec and record (so the
//! store keeps it). runwarden itself depends on no tracing backend: a [`TracePropagation`]
//! given to the supervisor captures the current context at submit and makes each run's span
//! a child of it at start (the `runwarden-otel` crate provides one for OpenTelemetry). A spec
//! may also carry a `traceparent` it was given (the HTTP API takes the request's header).

use std::fmt;

/// Captures trace context at submit and parents run spans on it.
pub trait TracePropagation: Send + Sync + 'static {
    /// The caller's current trace context as a W3C `traceparent` value, if there is one.
    /// Called in the submitting task, for specs that carry none.
    fn capture(&self) -> Option<String>;

    /// Makes `span`, a run's span before it is first entered, a child of `traceparent`.
    fn adopt(&self, span: &tracing::Span, traceparent: &str);
}

impl fmt::Debug for dyn TracePropagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TracePropagation")
    }
}

/// Whether `s` is a well-formed W3C `traceparent` of version `00`:
/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero.
#[must_use]
pub fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::is_traceparent;

    #[test]
    fn only_well_formed_traceparents_are_accepted() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }
}
