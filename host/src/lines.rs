//! The serve loop of line-oriented hosts, which are not HTTP: the platform writes one request per
//! line and reads one answer per line (OpenWhisk's ActionLoop protocol: requests as JSON lines on
//! the process's stdin, answers as JSON lines on file descriptor 3, logs on stdout and stderr).
//!
//! Requests are served one at a time, in order, as such platforms send them. The platform's
//! [`LineProtocol`] decodes a line into [`Facts`] and an [`Input`], and encodes the result as one
//! line; the loop adds the newline and stops at the end of the input.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use faas_api::{App, Context, Error, Payload};
//! use faas_host::lines::{self, LineProtocol};
//! use faas_host::{invoke::Input, Facts, Invoker};
//!
//! /// Each line is the payload; answers are the reply or `error: <message>`.
//! struct Plain;
//! impl LineProtocol for Plain {
//!     type Pending = ();
//!     fn decode(&self, line: &[u8]) -> Result<(Facts, Input, ()), Error> {
//!         Ok((Facts::default(), Input::Payload(Payload::new(line.to_vec(), None)), ()))
//!     }
//!     fn encode(&self, _: Option<()>, result: Result<Payload, Error>) -> Vec<u8> {
//!         match result {
//!             Ok(reply) => reply.into_body().to_vec(),
//!             Err(e) => format!("error: {}", e.message()).into_bytes(),
//!         }
//!     }
//! }
//! async fn shout(_cx: Context, p: Payload) -> Result<Payload, Error> {
//!     Ok(Payload::bytes(String::from_utf8_lossy(p.body()).to_uppercase()))
//! }
//! let invoker = Invoker::new(App::new().raw("shout", shout), "example");
//! let mut answers = Vec::new();
//! lines::serve(&b"hi\nthere\n"[..], &mut answers, invoker, Plain, 1024).await.unwrap();
//! assert_eq!(answers, b"HI\nTHERE\n");
//! # }
//! ```

use faas_api::{Error, Payload};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::invoke::Input;
use crate::{Facts, Invoker};

/// A line-oriented platform's format.
pub trait LineProtocol: Send + Sync + 'static {
    /// What [`LineProtocol::decode`] keeps for [`LineProtocol::encode`].
    type Pending: Send;
    /// Reads one request line (without its newline). An error is encoded with no pending state.
    fn decode(&self, line: &[u8]) -> Result<(Facts, Input, Self::Pending), Error>;
    /// The answer line for a result (without a newline; one inside it is refused by the loop).
    /// `pending` is `None` when the line could not be decoded or was too long.
    fn encode(&self, pending: Option<Self::Pending>, result: Result<Payload, Error>) -> Vec<u8>;
}

/// Serves `protocol`: reads lines from `input` (at most `max_line` bytes each, a longer one is
/// answered with a `PayloadTooLarge` error and skipped), writes one answer line per request line
/// to `output`, flushing each. Returns at the end of `input`; fails when reading or writing does.
/// Empty lines are skipped.
pub async fn serve<R, W, P>(
    input: R,
    mut output: W,
    invoker: Invoker,
    protocol: P,
    max_line: usize,
) -> Result<(), Error>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
    P: LineProtocol,
{
    let mut input = input;
    let io = |what: &str, e: std::io::Error| Error::unavailable(format!("cannot {what} the host's lines: {e}"));
    loop {
        let mut line = Vec::new();
        let n = (&mut input).take(max_line as u64 + 1).read_until(b'\n', &mut line).await.map_err(|e| io("read", e))?;
        if n == 0 {
            return Ok(());
        }
        let answer = if line.last() != Some(&b'\n') && line.len() > max_line {
            skip_rest_of_line(&mut input).await.map_err(|e| io("read", e))?;
            let e = Error::payload_too_large(format!("the request line is over the limit of {max_line} bytes"));
            protocol.encode(None, Err(e))
        } else {
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match protocol.decode(line) {
                Ok((facts, request, pending)) => {
                    protocol.encode(Some(pending), invoker.invoke_input(facts, request).await)
                }
                Err(e) => protocol.encode(None, Err(e)),
            }
        };
        let answer = if answer.contains(&b'\n') {
            protocol.encode(None, Err(Error::crash("the host's answer spans several lines")))
        } else {
            answer
        };
        output.write_all(&answer).await.map_err(|e| io("write", e))?;
        output.write_all(b"\n").await.map_err(|e| io("write", e))?;
        output.flush().await.map_err(|e| io("write", e))?;
    }
}

async fn skip_rest_of_line<R: AsyncBufRead + Unpin>(input: &mut R) -> std::io::Result<()> {
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(at) => {
                input.consume(at + 1);
                return Ok(());
            }
            None => {
                let len = buf.len();
                input.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::{App, Context};

    /// JSON lines `{"fn": name, "value": ...}`; answers `{"ok": reply}` or `{"error": kind}`.
    struct Json;
    impl LineProtocol for Json {
        type Pending = ();
        fn decode(&self, line: &[u8]) -> Result<(Facts, Input, ()), Error> {
            let v: serde_json::Value =
                serde_json::from_slice(line).map_err(|e| Error::bad_input(format!("not JSON: {e}")))?;
            let function = v["fn"].as_str().map(str::to_string);
            let body = serde_json::to_vec(&v["value"]).unwrap();
            Ok((Facts { function, ..Facts::default() }, Input::JsonOnly(body.into()), ()))
        }
        fn encode(&self, _: Option<()>, result: Result<Payload, Error>) -> Vec<u8> {
            match result {
                Ok(p) => format!(r#"{{"ok":{}}}"#, String::from_utf8_lossy(p.body())).into_bytes(),
                Err(e) => format!(r#"{{"error":"{}"}}"#, e.kind().as_str()).into_bytes(),
            }
        }
    }

    async fn echo(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> {
        Ok(v)
    }

    async fn panics(_cx: Context, _v: serde_json::Value) -> Result<serde_json::Value, Error> {
        panic!("line probe")
    }

    async fn run(input: &[u8], max_line: usize) -> String {
        let app = App::new().function("echo", echo).function("panics", panics);
        let mut out = Vec::new();
        serve(input, &mut out, Invoker::new(app, "test"), Json, max_line).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn one_answer_line_per_request_line_in_order() {
        let input = b"{\"fn\":\"echo\",\"value\":1}\n\n{\"fn\":\"panics\"}\r\nnot json\n{\"fn\":\"nope\"}\n{\"fn\":\"echo\",\"value\":[2]}";
        let out = run(input, 1024).await;
        assert_eq!(
            out,
            "{\"ok\":1}\n{\"error\":\"crash\"}\n{\"error\":\"bad_input\"}\n{\"error\":\"not_found\"}\n{\"ok\":[2]}\n"
        );
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused_and_skipped() {
        let long = format!("{{\"fn\":\"echo\",\"value\":\"{}\"}}\n", "y".repeat(100));
        let input = format!("{long}{{\"fn\":\"echo\",\"value\":3}}\n");
        assert_eq!(run(input.as_bytes(), 40).await, "{\"error\":\"payload_too_large\"}\n{\"ok\":3}\n");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_one_line_becomes_an_error() {
        struct Broken;
        impl LineProtocol for Broken {
            type Pending = ();
            fn decode(&self, line: &[u8]) -> Result<(Facts, Input, ()), Error> {
                Ok((Facts::default(), Input::Payload(Payload::new(line.to_vec(), None)), ()))
            }
            fn encode(&self, pending: Option<()>, result: Result<Payload, Error>) -> Vec<u8> {
                match (pending, result) {
                    (Some(()), Ok(_)) => b"two\nlines".to_vec(),
                    (_, Err(e)) => e.message().as_bytes().to_vec(),
                    (None, Ok(_)) => b"unexpected".to_vec(),
                }
            }
        }
        async fn raw(_cx: Context, p: Payload) -> Result<Payload, Error> {
            Ok(p)
        }
        let mut out = Vec::new();
        serve(&b"a\n"[..], &mut out, Invoker::new(App::new().raw("raw", raw), "test"), Broken, 64).await.unwrap();
        assert_eq!(out, b"the host's answer spans several lines\n");
    }
}
