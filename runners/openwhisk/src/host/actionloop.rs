//! The ActionLoop protocol (openwhisk-runtime-go, `docs/ACTION.md` and `openwhisk/executor.go`):
//! the runtime's proxy starts the binary once per container and keeps it running.
//!
//! - When `__OW_WAIT_FOR_ACK` is non-empty, the binary first writes `{"ok":true}` and a newline
//!   on file descriptor 3; the proxy waits for it. Without the variable nothing is written: the
//!   proxy would read an unrequested acknowledgement as the first result and shift every later
//!   one.
//! - Then each line of stdin is one activation's run body ([`crate::wire::RunBody`]); the
//!   answer is one JSON line on fd 3, an object or an array ([`crate::wire::result_of`]).
//! - stdout and stderr are the activation's logs; the proxy writes the end-of-activation sentinel
//!   after each answer, so the binary does not.
//!
//! Activations come one at a time, in order. The loop ends when stdin closes.

use std::io::Write as _;

use faas_api::{App, Error, Payload};
use faas_host::invoke::Input;
use faas_host::lines::{self, LineProtocol};
use faas_host::{Env, Facts};
use tokio::io::BufReader;

use crate::wire::{self, RunBody};

/// The file descriptor results are written to.
pub const RESULT_FD: i32 = 3;

/// The ActionLoop line format.
#[derive(Clone)]
pub struct ActionLoopLines {
    app: App,
    env: Env,
}

impl ActionLoopLines {
    /// The format for `app` in the environment `env`.
    pub fn new(app: App, env: Env) -> ActionLoopLines {
        ActionLoopLines { app, env }
    }
}

impl LineProtocol for ActionLoopLines {
    type Pending = super::Reply;

    fn decode(&self, line: &[u8]) -> Result<(Facts, Input, super::Reply), Error> {
        let run = RunBody::parse(line)?;
        Ok(super::activation(&self.app, &run, &self.env, Default::default()))
    }

    fn encode(&self, reply: Option<super::Reply>, result: Result<Payload, Error>) -> Vec<u8> {
        super::answer(&reply.unwrap_or(super::Reply::Result), result)
    }
}

/// The error for a result of `size` bytes, over OpenWhisk's limit.
pub(crate) fn too_large(size: usize) -> Error {
    Error::payload_too_large(format!("the result is {size} bytes; OpenWhisk's limit is {} bytes", wire::MAX_PAYLOAD))
}

/// A result over OpenWhisk's limit becomes the error saying so.
pub(crate) fn bounded(result: Vec<u8>) -> Vec<u8> {
    if result.len() > wire::MAX_PAYLOAD {
        wire::error_result(&too_large(result.len()))
    } else {
        result
    }
}

/// Serves `app` under the ActionLoop proxy: the acknowledgement if asked for, then one result on
/// fd 3 for each run body on stdin, until stdin closes.
pub async fn serve(app: App, env: &Env) -> Result<(), Error> {
    let results = std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{RESULT_FD}")).map_err(|e| {
        Error::unavailable(format!(
            "the ActionLoop proxy gives its process file descriptor {RESULT_FD} for results, but it cannot be opened: {e}"
        ))
    })?;
    serve_with(app, env, tokio::io::stdin(), results).await
}

/// [`serve`] on any input and result file (the tests give pipes).
pub async fn serve_with<R>(app: App, env: &Env, input: R, mut results: std::fs::File) -> Result<(), Error>
where
    R: tokio::io::AsyncRead + Unpin,
{
    app.validate()?;
    if env.get(super::ENV_WAIT_FOR_ACK).is_some() {
        results
            .write_all(b"{\"ok\":true}\n")
            .and_then(|_| results.flush())
            .map_err(|e| Error::unavailable(format!("cannot write the ActionLoop acknowledgement: {e}")))?;
    }
    let invoker = super::invoker(app.clone(), env);
    tracing::debug!(functions = ?app.names(), "serving the ActionLoop protocol");
    let protocol = ActionLoopLines::new(app, env.clone());
    lines::serve(BufReader::new(input), tokio::fs::File::from_std(results), invoker, protocol, super::MAX_REQUEST).await
}
