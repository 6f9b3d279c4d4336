//! The dockerskeleton protocol (`openwhisk/dockerskeleton`, openwhisk-runtime-docker's
//! `core/actionProxy/actionproxy.py`): what `wsk action create --native` runs. The proxy starts
//! the binary once per activation:
//!
//! - the parameters arrive as JSON in argv\[1\] when they are shorter than 131071 bytes
//!   (Linux's `MAX_ARG_STRLEN`), and always on stdin;
//! - the activation's facts are `__OW_*` variables of the process (`__OW_ACTIVATION_ID`,
//!   `__OW_ACTION_NAME`, `__OW_NAMESPACE`, `__OW_DEADLINE`, `__OW_API_KEY`, ...): every key of
//!   the run body but `value`, upper-cased;
//! - the **last line of stdout** is the result, a JSON object or array; every earlier stdout line
//!   and all of stderr are logs. So the binary writes the result last and nothing after it.

use std::io::Write as _;

use faas_api::{App, Error};
use faas_host::Env;
use tokio::io::AsyncReadExt as _;

use crate::wire::{self, RunBody};

/// The run body the dockerskeleton proxy's variables describe, with `value` the parameters.
fn run_body(env: &Env, value: &[u8]) -> Result<RunBody, Error> {
    let mut body = serde_json::Map::new();
    for (name, value) in env.vars() {
        if let Some(key) = name.strip_prefix("__OW_") {
            body.insert(key.to_ascii_lowercase(), serde_json::Value::String(value.clone()));
        }
    }
    let value: serde_json::Value = serde_json::from_slice(value)
        .map_err(|e| Error::bad_input(format!("the action's parameters are not JSON: {e}")))?;
    body.insert("value".into(), value);
    RunBody::parse(&serde_json::to_vec(&body).expect("JSON serialises"))
}

/// Serves one activation as the dockerskeleton proxy starts it: the parameters from argv\[1\],
/// else from stdin; the result as the last line of stdout.
pub async fn serve(app: App, env: &Env) -> Result<(), Error> {
    let argument = std::env::args().nth(1);
    let parameters = match argument {
        Some(a) => a.into_bytes(),
        None => {
            let mut all = Vec::new();
            tokio::io::stdin()
                .take(super::MAX_REQUEST as u64 + 1)
                .read_to_end(&mut all)
                .await
                .map_err(|e| Error::unavailable(format!("cannot read the parameters from stdin: {e}")))?;
            all
        }
    };
    let line = answer(app, env, &parameters).await;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&line)
        .and_then(|_| stdout.write_all(b"\n"))
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::unavailable(format!("cannot write the result to stdout: {e}")))
}

/// The result line (without its newline) for one activation with `parameters` in `env`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::{App, Context, Error};
/// use faas_host::Env;
/// async fn hello(cx: Context, p: serde_json::Value) -> Result<serde_json::Value, Error> {
///     Ok(serde_json::json!({"greeting": format!("Hello, {}!", p["name"].as_str().unwrap_or("?")), "id": cx.invocation_id()}))
/// }
/// let env = Env::from_pairs([("__OW_ACTIVATION_ID", "a1"), ("__OW_ACTION_NAME", "/guest/hello")]);
/// let line = faas_runner_openwhisk::host::skeleton::answer(App::new().function("hello", hello), &env, br#"{"name":"Ada"}"#).await;
/// assert_eq!(line, br#"{"greeting":"Hello, Ada!","id":"a1"}"#);
/// # }
/// ```
pub async fn answer(app: App, env: &Env, parameters: &[u8]) -> Vec<u8> {
    if parameters.len() > super::MAX_REQUEST {
        let e = Error::payload_too_large(format!("the parameters are over the limit of {} bytes", super::MAX_REQUEST));
        return wire::error_result(&e);
    }
    let run = match run_body(env, parameters) {
        Ok(run) => run,
        Err(e) => return wire::error_result(&e),
    };
    let invoker = super::invoker(app.clone(), env);
    let (facts, input, reply) = super::activation(&app, &run, env, Default::default());
    let result = invoker.invoke_input(facts, input).await;
    super::answer(&reply, result)
}
