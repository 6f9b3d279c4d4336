//! The in-process executor: calls the app's handler directly, with the deadline enforced by
//! dropping its future, panics turned into crash errors, and log lines captured per invocation.

use std::future::Future as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use faas_api::context::{ContextBuilder, Level, LogSink};
use faas_api::handler::{BoxHandler, Invocation, call_catching_panics};
use faas_api::{Error, FunctionSpec, Payload};

use crate::exec::{Gate, Outcome, human};

/// Collects the lines one invocation writes through its logger.
#[derive(Default)]
struct Capture {
    lines: Mutex<Vec<String>>,
}

impl LogSink for Capture {
    fn write(&self, _invocation_id: &str, level: Level, line: &str) {
        self.lines.lock().expect("capture lock").push(format!("{} {line}", level.as_str()));
    }
}

/// One deployed function in in-process mode.
pub struct InProcess {
    handler: BoxHandler,
    gate: Gate,
    warm: AtomicBool,
}

impl InProcess {
    /// Wraps `handler` with the concurrency limit of `spec`.
    pub fn new(handler: BoxHandler, spec: &FunctionSpec, max_waiting: usize) -> InProcess {
        InProcess { handler, gate: Gate::new(&spec.name, spec.concurrency, max_waiting), warm: AtomicBool::new(false) }
    }

    /// Runs one invocation. `cx` is completed here with the log capture; its deadline must be set.
    pub async fn run(&self, cx: ContextBuilder, payload: Payload, spec: &FunctionSpec) -> Outcome {
        let capture = Arc::new(Capture::default());
        let cx = cx.log_sink(capture.clone()).build();
        let deadline = cx.deadline();
        let _permit = match self.gate.enter(deadline).await {
            Ok(p) => p,
            Err(e) => return Outcome::refused(e),
        };
        let cold = !self.warm.swap(true, Ordering::SeqCst);
        // The handler runs in the caller's task: dropping its future at the deadline cancels it,
        // and panics are caught around every poll, so no extra task (and no cross-thread wake-up)
        // is needed.
        let mut call = std::pin::pin!(call_catching_panics(self.handler.as_ref(), Invocation { cx, payload }));
        // Most handlers finish in their first poll. Answering those before arming the deadline
        // saves a timer registration, which on a multi-threaded runtime with no other timer pending
        // wakes the timer driver's thread: a cross-thread wake-up on every invocation.
        let result = match std::future::poll_fn(|task| Poll::Ready(call.as_mut().poll(task))).await {
            Poll::Ready(r) => r,
            Poll::Pending => {
                let wait = deadline.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                match tokio::time::timeout(wait, call).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err(Error::timeout(format!("function `{}` timed out after {}", spec.name, human(spec.timeout))))
                    }
                }
            }
        };
        let logs = std::mem::take(&mut *capture.lines.lock().expect("capture lock"));
        Outcome { result, logs, cold }
    }
}
