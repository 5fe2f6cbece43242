//! The `tracing` span of a request that carries W3C trace context (the
//! frame's `trace` member, see `execd_protocol::trace`): its handler runs
//! inside it, and so does the task that answers it later, so every log
//! line and audit event of the request shows `trace_id` (and the caller's
//! `parent_id`). A request without one gets no span at all (nothing to
//! pay on the hot path); a `traceparent` that does not parse is ignored,
//! as the W3C recommendation asks, with a debug line saying why.
//!
//! The span's target is [`TARGET`] and its level `ERROR`: a span's level
//! only decides when it is recorded, and this one must be whenever any
//! line of the request is (a warning, or an audit event at info), so it
//! is on under every filter unless `RUST_LOG` turns `execd::request` off.

use execd_protocol::trace::{frame_trace, TraceParent, MAX_TRACESTATE_BYTES};
use tracing::{debug, error_span, Span};

/// The target of request spans.
pub const TARGET: &str = "execd::request";

/// The span for the request `method` in `frame`, or `Span::none()`.
pub fn request_span(method: &str, frame: &str) -> Span {
    let Some(trace) = frame_trace(frame) else {
        return Span::none();
    };
    let Some(traceparent) = trace.traceparent else {
        return Span::none();
    };
    match TraceParent::parse(&traceparent) {
        Ok(parent) => {
            let state = trace
                .tracestate
                .filter(|state| state.len() <= MAX_TRACESTATE_BYTES)
                .unwrap_or_default();
            error_span!(
                target: TARGET,
                "request",
                method,
                trace_id = %parent.trace_id,
                parent_id = %parent.parent_id,
                sampled = parent.sampled,
                tracestate = %state,
            )
        }
        Err(err) => {
            debug!(method, %err, "ignoring the request's trace context");
            Span::none()
        }
    }
}
