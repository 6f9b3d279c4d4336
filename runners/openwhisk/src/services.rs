//! `cx.invoke` and `cx.emit` for a function running as an OpenWhisk action.
//!
//! - `cx.invoke(name, payload)` invokes the app's action `name` through the controller's REST
//!   API at `__OW_API_HOST` (`POST /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}?blocking=true&result=true`),
//!   authenticated with the calling activation's own API key (HTTP Basic, `uuid:key`): the action
//!   in the caller's namespace and package (the runner deploys an app's functions into one
//!   package). A blocking invoke that OpenWhisk does not finish within its wait answers `202`
//!   with the activation id; the activation is then polled until it ends or the caller's deadline.
//!   Application errors come back as the callee's portable error; the controller's own errors keep
//!   its message ([`crate::wire::api_error`]).
//! - `cx.emit(event)` posts the event to the gateway at `FAAS_EVENTS_URL` (the profile's
//!   `events` key, which the runner passes as an `init` parameter).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use faas_api::cloudevents::Event;
use faas_api::{Context, Error, Payload, Services};
use faas_host::client::{HttpClient, SendError};
use faas_host::local_child::HttpServices;
use faas_host::Env;
use http::Request;
use http_body_util::Full;

use crate::host::OpenWhiskContext;
use crate::wire;

/// Env var with the event gateway's ingress URL (`cx.emit`).
pub const ENV_EVENTS: &str = faas_host::wire::ENV_EVENTS;

/// How often a `202` activation is polled.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The [`Services`] of a function running on OpenWhisk (see the [module docs](self)).
pub struct OpenWhiskServices {
    api_host: Option<String>,
    api_key: Option<String>,
    events: Option<HttpServices>,
    events_url: Option<String>,
    client: HttpClient,
}

impl std::fmt::Debug for OpenWhiskServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenWhiskServices")
            .field("api_host", &self.api_host)
            .field("events", &self.events_url)
            .finish_non_exhaustive()
    }
}

impl OpenWhiskServices {
    /// Reads the action's environment: `__OW_API_HOST`, `__OW_API_KEY` (used when the activation
    /// brings no key of its own) and `FAAS_EVENTS_URL`.
    pub fn from_env(env: &Env) -> OpenWhiskServices {
        let get = |k: &str| env.get(k).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        OpenWhiskServices {
            api_host: get(crate::host::ENV_API_HOST),
            api_key: get("__OW_API_KEY"),
            events: get(ENV_EVENTS).map(HttpServices::events_only),
            events_url: get(ENV_EVENTS),
            client: HttpClient::new(),
        }
    }

    async fn call(&self, method: http::Method, url: &str, key: &str, body: Bytes) -> Result<(u16, Bytes), Error> {
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(key));
        let req = Request::builder()
            .method(method)
            .uri(url)
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| Error::bad_input(format!("cannot build the request to {url}: {e}")))?;
        let (parts, reply) = self.client.send(req, wire::MAX_PAYLOAD * 2 + 64 * 1024).await.map_err(|e| match e {
            SendError::Request(e) => Error::unavailable(format!("cannot reach the OpenWhisk API at {url}: {e}")),
            SendError::Body(e) => Error::unavailable(format!("reading the answer of {url}: {e}")),
        })?;
        Ok((parts.status.as_u16(), reply))
    }
}

/// The portable result of a finished activation record.
fn result_of_record(name: &str, record: &[u8]) -> Result<Payload, Error> {
    let v: serde_json::Value = serde_json::from_slice(record)
        .map_err(|e| Error::crash(format!("the activation record of `{name}` is not JSON: {e}")))?;
    let result = serde_json::to_vec(&v["response"]["result"]).unwrap_or_default();
    finished(name, &result)
}

fn finished(name: &str, result: &[u8]) -> Result<Payload, Error> {
    if let Some(e) = wire::error_of_result(result) {
        return Err(e);
    }
    wire::payload_of_result(result).ok_or_else(|| Error::crash(format!("`{name}` answered a result faas cannot read")))
}

#[async_trait]
impl Services for OpenWhiskServices {
    async fn invoke(&self, caller: &Context, name: &str, payload: Payload) -> Result<Payload, Error> {
        faas_api::validate_function_name(name)?;
        let ow = caller.extension::<OpenWhiskContext>().cloned().unwrap_or_default();
        let api_host = ow.api_host.clone().or_else(|| self.api_host.clone()).ok_or_else(|| {
            Error::unavailable(format!("cannot invoke `{name}`: __OW_API_HOST is not set in this action's environment"))
        })?;
        let key = ow.api_key.clone().or_else(|| self.api_key.clone()).ok_or_else(|| {
            Error::unauthorized(format!(
                "cannot invoke `{name}`: this activation has no API key (the action is annotated provide-api-key: false)"
            ))
        })?;
        let params = wire::params_of_traced(&payload, Some(&caller.trace().child().traceparent()));
        if params.len() > wire::MAX_PAYLOAD {
            return Err(Error::payload_too_large(format!(
                "the request to `{name}` is {} bytes; OpenWhisk's limit is {} bytes",
                params.len(),
                wire::MAX_PAYLOAD
            )));
        }
        let namespace = if ow.namespace.is_empty() { "_".to_string() } else { ow.namespace.clone() };
        let base = format!("{}/api/v1/namespaces/{}", wire::api_base_url(&api_host), wire::url_path(&namespace));
        let action = match ow.package() {
            Some(p) => format!("{}/{name}", wire::url_path(p)),
            None => name.to_string(),
        };
        let url = format!("{base}/actions/{action}?blocking=true&result=true");
        let what = format!("invoking `{name}` through the OpenWhisk API");
        let (status, body) = self.call(http::Method::POST, &url, &key, Bytes::from(params)).await?;
        match status {
            200 => finished(name, &body),
            // An application or developer error: the body is the result (`{"error": ...}`).
            502 if wire::error_of_result(&body).is_some() => finished(name, &body),
            202 => {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["activationId"].as_str().map(str::to_string))
                    .ok_or_else(|| wire::api_error(&what, status, &body))?;
                let url = format!("{base}/activations/{id}");
                loop {
                    if SystemTime::now() + POLL_EVERY >= caller.deadline() {
                        return Err(Error::timeout(format!(
                            "`{name}` (activation {id}) had not finished by the caller's deadline"
                        )));
                    }
                    tokio::time::sleep(POLL_EVERY).await;
                    let (status, record) = self.call(http::Method::GET, &url, &key, Bytes::new()).await?;
                    match status {
                        200 => return result_of_record(name, &record),
                        404 => continue, // not recorded yet
                        _ => return Err(wire::api_error(&what, status, &record)),
                    }
                }
            }
            _ => Err(wire::api_error(&what, status, &body)),
        }
    }

    async fn emit(&self, caller: &Context, event: Event) -> Result<(), Error> {
        // A Docker action has the variable from its `/init`, the other modes in their environment.
        let init = caller.extension::<OpenWhiskContext>().and_then(|o| o.init_env.get(ENV_EVENTS).cloned());
        match (init, &self.events) {
            (Some(url), _) => HttpServices::events_only(url).emit(caller, event).await,
            (None, Some(events)) => events.emit(caller, event).await,
            (None, None) => Err(Error::unavailable(format!(
                "cannot emit event `{}`: {ENV_EVENTS} is not set (give the backend profile an `events` key with the \
                 event gateway's URL)",
                faas_api::cloudevents::AttributesReader::id(&event)
            ))),
        }
    }
}
