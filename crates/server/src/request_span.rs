//! The `tracing` span of a request that carries W3C trace context (the
//! frame's `trace` member, see `execd_protocol::trace`): its handler runs
//! inside it, and so does the task that answers it later, so every log
//! line and audit event of the request shows `trace_id` (and the caller's
//! `parent_id`). A request without one gets no span at all (nothing to
//! pay on the hot path); a `traceparent` that does not parse is ignored,
//! as the W3C recommendation asks, with a debug line saying why.

use execd_protocol::trace::{frame_trace, TraceParent, MAX_TRACESTATE_BYTES};
use tracing::{debug, info_span, Span};

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
            info_span!(
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
