//! The function side: [`PipesHost`], the host adapter a function binary is served with so it runs
//! under the pipes runner. It is light (faas-host only, no part of the control side), as a
//! platform's host adapter should be.
//!
//! ```no_run
//! // src/main.rs of a function binary for this backend (and for the facade's others):
//! use faas::{App, Context, Error};
//!
//! async fn hello(_cx: Context, name: String) -> Result<String, Error> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     faas::serve_with(App::new().function("hello", hello), &[&faas_pipes::PipesHost]).await
//! }
//! ```

use std::io::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use faas_api::{App, Error, Payload, TraceContext};
use faas_host::invoke::Input;
use faas_host::lines::{self, LineProtocol};
use faas_host::logging::{self, LogStyle};
use faas_host::wire;
use faas_host::{Env, Facts, HostAdapter, Invoker, Limits, ServeFuture};

use crate::protocol::{Answer, Request, END, ENV_PIPES, MAX_LINE, MAX_PAYLOAD};
use crate::KIND;

/// The host adapter of the pipes backend: recognises a process started by the pipes runner
/// ([`ENV_PIPES`] is set) and serves the app's invocations from stdin until it closes.
///
/// ```
/// use faas_host::{Env, Host, HostAdapter};
/// use faas_pipes::PipesHost;
/// let env = Env::from_pairs([("FAAS_PIPES", "1"), ("FAAS_FUNCTION", "hello")]);
/// assert!(PipesHost.detect(&env));
/// assert!(!PipesHost.detect(&Env::from_pairs([("PORT", "8080")])));
/// assert_eq!(Host::detect(&env, &[&PipesHost]), Host::Platform("pipes"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PipesHost;

impl HostAdapter for PipesHost {
    fn name(&self) -> &'static str {
        KIND
    }

    fn detect(&self, env: &Env) -> bool {
        env.get(ENV_PIPES).is_some()
    }

    fn serve(&self, app: App, env: Env) -> ServeFuture {
        Box::pin(async move {
            // Logs go to stderr, which the runner attributes to the invocation.
            logging::install(LogStyle::Plain, env.get("RUST_LOG"));
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            lines::serve(stdin, tokio::io::stdout(), invoker(app, &env), PipesLines, MAX_LINE).await
        })
    }
}

/// The invoker of a function process: backend `pipes` (what `Context::backend` reports), the
/// function named by each request, the process's variables. The runner enforces deadlines by
/// killing the process, so the host does not abort handlers itself.
fn invoker(app: App, env: &Env) -> Invoker {
    Invoker::new(app, KIND)
        .function(env.get(wire::ENV_FUNCTION).map(str::to_string), "the request or FAAS_FUNCTION")
        .vars(env.vars().clone())
        .limits(Limits { max_reply: Some(MAX_PAYLOAD), abort_before: None, ..Limits::new("the pipes runner") })
}

/// The protocol's lines on the shared line loop; the pending state is the request's id.
///
/// ```
/// use faas_host::lines::LineProtocol;
/// use faas_pipes::host::PipesLines;
/// let line = br#"{"id":"a1","function":"echo","deadline_ms":4102444800000,"body_base64":"aGk="}"#;
/// let (facts, _input, id) = PipesLines.decode(line).unwrap();
/// assert_eq!((facts.function.as_deref(), facts.invocation_id.as_deref(), id.as_str()), (Some("echo"), Some("a1"), "a1"));
/// let answer = PipesLines.encode(Some(id), Ok(faas_api::Payload::bytes("hi")));
/// let answer = String::from_utf8(answer).unwrap();
/// assert!(answer.starts_with(r#"{"answer":"a1","reply":"#) && answer.ends_with("__FAAS_PIPES_END__ a1"), "{answer}");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PipesLines;

impl LineProtocol for PipesLines {
    type Pending = String;

    fn decode(&self, line: &[u8]) -> Result<(Facts, Input, String), Error> {
        let request: Request =
            serde_json::from_slice(line).map_err(|e| Error::bad_input(format!("not a pipes request line: {e}")))?;
        let facts = Facts {
            function: Some(request.function),
            invocation_id: Some(request.id.clone()),
            deadline: Some(UNIX_EPOCH + Duration::from_millis(request.deadline_ms)),
            trace: request.traceparent.as_deref().and_then(TraceContext::parse),
            extensions: Default::default(),
        };
        Ok((facts, Input::Payload(request.body.into_payload()?), request.id))
    }

    /// The answer line, ending with the end marker; the marker also goes to stderr, after every
    /// log line the handler wrote there. A line that could not be decoded has no id to answer:
    /// it is answered without one (the runner never writes such lines).
    fn encode(&self, id: Option<String>, result: Result<Payload, Error>) -> Vec<u8> {
        let id = id.unwrap_or_default();
        let mut line = serde_json::to_vec(&Answer::new(&id, result)).expect("an answer serialises");
        if !id.is_empty() {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{END} {id}");
            let _ = stderr.flush();
            line.extend_from_slice(format!("{END} {id}").as_bytes());
        }
        line
    }
}
