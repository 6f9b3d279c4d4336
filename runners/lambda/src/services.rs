//! `cx.invoke` and `cx.emit` inside a Lambda function.
//!
//! - **invoke** calls another function of the app by its logical name through Lambda's own
//!   [Invoke API](https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html)
//!   (`POST /2015-03-31/functions/{prefix}{name}/invocations`, `RequestResponse`), signed with
//!   Signature Version 4 using the function's own credentials, which Lambda puts in its
//!   environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`).
//!   The endpoint is `AWS_ENDPOINT_URL_LAMBDA`, else `AWS_ENDPOINT_URL` (the AWS SDKs' own
//!   endpoint-override variables; the faas runner sets the first when its profile has an
//!   `endpoint`, such as the emulator), else `https://lambda.{region}.amazonaws.com`. The function
//!   name is the logical name with the deployment's prefix (`FAAS_LAMBDA_PREFIX`, set by the faas
//!   runner). The payload travels as the faas runner sends it (JSON as is, anything else in the
//!   payload envelope), the caller's trace in the client context, and an error comes back as the
//!   exact portable error the callee's host wrote ([`crate::errors`]).
//! - **emit** posts the event, structured mode, to the event gateway whose ingress URL is in
//!   `FAAS_EVENTS_URL` (the profile's `events` key); without one, emitting fails with a
//!   `backend_unavailable` error saying so.
//!
//! ```
//! use faas_host::Env;
//! use faas_runner_lambda::services::LambdaServices;
//! let env = Env::from_pairs([
//!     ("AWS_REGION", "eu-west-1"),
//!     ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
//!     ("AWS_SECRET_ACCESS_KEY", "secret"),
//!     ("AWS_LAMBDA_FUNCTION_NAME", "shop-checkout"),
//!     ("FAAS_LAMBDA_PREFIX", "shop-"),
//! ]);
//! let services = LambdaServices::from_env(&env);
//! assert_eq!(services.endpoint(), "https://lambda.eu-west-1.amazonaws.com");
//! assert_eq!(services.function_url("billing"), "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/shop-billing/invocations");
//! ```

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use faas_api::cloudevents::Event;
use faas_api::{Context, Error, ErrorKind, Payload, Services};
use faas_host::client::{HttpClient, SendError};
use faas_host::local_child::HttpServices;
use faas_host::Env;
use http::Request;
use http_body_util::Full;

use crate::errors::{error_from_body, kind_of_code, one_line};
use crate::host::MAX_PAYLOAD;
use crate::sigv4::Keys;

/// Env var with the deployment's prefix of Lambda function names (the profile's `prefix`).
pub const ENV_PREFIX: &str = "FAAS_LAMBDA_PREFIX";
/// The AWS SDKs' endpoint override for Lambda, which the runner sets from the profile's
/// `endpoint`.
pub const ENV_ENDPOINT: &str = "AWS_ENDPOINT_URL_LAMBDA";
/// The AWS SDKs' endpoint override for every service.
pub const ENV_ENDPOINT_ALL: &str = "AWS_ENDPOINT_URL";
/// Env var with the event gateway's ingress URL (`cx.emit`).
pub const ENV_EVENTS: &str = faas_host::wire::ENV_EVENTS;

/// The [`Services`] of a function running on Lambda (see the [module docs](self)).
pub struct LambdaServices {
    endpoint: String,
    region: String,
    prefix: String,
    keys: Option<Keys>,
    events: Option<HttpServices>,
    client: HttpClient,
}

impl std::fmt::Debug for LambdaServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("LambdaServices")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("signed", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

impl LambdaServices {
    /// Reads the function's environment (see the [module docs](self)). Nothing is checked here:
    /// a missing credential or region is reported by the first `cx.invoke`, naming the variable.
    pub fn from_env(env: &Env) -> LambdaServices {
        let get = |k: &str| env.get(k).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")).unwrap_or_default();
        let endpoint = get(ENV_ENDPOINT)
            .or_else(|| get(ENV_ENDPOINT_ALL))
            .unwrap_or_else(|| default_endpoint(&region))
            .trim_end_matches('/')
            .to_string();
        let keys = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key), Some(secret_key)) => {
                Some(Keys { access_key, secret_key, session_token: get("AWS_SESSION_TOKEN") })
            }
            _ => None,
        };
        let prefix = get(ENV_PREFIX).unwrap_or_else(|| {
            // Without the runner's variable: the function's own name less the logical name it serves.
            match (get("AWS_LAMBDA_FUNCTION_NAME"), get(crate::host::ENV_HANDLER)) {
                (Some(name), Some(handler)) => name.strip_suffix(&handler).unwrap_or_default().to_string(),
                _ => String::new(),
            }
        });
        LambdaServices {
            endpoint,
            region,
            prefix,
            keys,
            events: get(ENV_EVENTS).map(HttpServices::events_only),
            client: HttpClient::new(),
        }
    }

    /// The Lambda API endpoint calls go to, without a trailing `/`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The Invoke URL of the app's function `name`.
    pub fn function_url(&self, name: &str) -> String {
        format!("{}/2015-03-31/functions/{}{name}/invocations", self.endpoint, self.prefix)
    }

    /// Signs `req` for the `lambda` service in this region (SigV4, the payload's hash included).
    fn sign(&self, req: &mut Request<Full<Bytes>>, body: &[u8]) -> Result<(), Error> {
        let missing = |what: &str| {
            Error::unauthorized(format!(
                "cannot sign the Invoke call: {what} is not set in the function's environment (Lambda sets it \
                 for every function)"
            ))
            .with_type("MissingCredentials")
        };
        let keys = self.keys.as_ref().ok_or_else(|| missing("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"))?;
        if self.region.is_empty() {
            return Err(missing("AWS_REGION"));
        }
        crate::sigv4::sign(req, body, keys, &self.region, "lambda", chrono::Utc::now());
        Ok(())
    }
}

/// Lambda's public endpoint in `region` (China's regions have their own domain).
fn default_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://lambda.{region}.{domain}")
}

/// The portable error of an Invoke call that Lambda itself refused (`status` with the AWS error
/// code in `x-amzn-ErrorType` or the body).
fn api_error(name: &str, status: http::StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Error {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    // `x-amzn-ErrorType` may carry a `:namespace` suffix; the body's `__type` a `namespace#` prefix.
    let code = headers
        .get("x-amzn-errortype")
        .and_then(|h| h.to_str().ok())
        .map(|c| c.split(':').next().unwrap_or(c).to_string())
        .or_else(|| v.get("__type").and_then(|t| t.as_str()).map(|t| t.rsplit('#').next().unwrap_or(t).to_string()))
        .unwrap_or_default();
    let message = ["message", "Message", "errorMessage"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|m| m.as_str()))
        .map(|m| one_line(m, 300))
        .unwrap_or_else(|| one_line(&String::from_utf8_lossy(&body[..body.len().min(800)]), 200));
    let kind = kind_of_code(&code).unwrap_or_else(|| ErrorKind::from_status(status.as_u16()));
    let what = format!("invoking `{name}` through the Lambda Invoke API failed (HTTP {})", status.as_u16());
    let error = Error::new(
        kind,
        if code.is_empty() { format!("{what}: {message}") } else { format!("{what}: {code}: {message}") },
    );
    if code.is_empty() {
        error
    } else {
        error.with_type(code)
    }
}

#[async_trait]
impl Services for LambdaServices {
    async fn invoke(&self, caller: &Context, name: &str, payload: Payload) -> Result<Payload, Error> {
        faas_api::validate_function_name(name)?;
        let body = if faas_host::envelope::needs_envelope(&payload) {
            Bytes::from(faas_host::envelope::wrap(&payload))
        } else {
            payload.into_body()
        };
        if body.len() > MAX_PAYLOAD {
            return Err(Error::payload_too_large(format!(
                "the request to `{name}` is {} bytes; Lambda's synchronous limit is {MAX_PAYLOAD} bytes",
                body.len()
            )));
        }
        let url = self.function_url(name);
        // The caller's trace rides in the client context's `custom` map, as the faas runner sends it.
        let cc = serde_json::json!({"custom": {"traceparent": caller.trace().child().traceparent()}}).to_string();
        let mut req = Request::post(&url)
            .header("x-amz-invocation-type", "RequestResponse")
            .header("x-amz-client-context", base64::engine::general_purpose::STANDARD.encode(cc))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| Error::bad_input(format!("cannot build the Invoke request to {url}: {e}")))?;
        self.sign(&mut req, &body)?;
        let (parts, reply) = self.client.send(req, MAX_PAYLOAD + 1024).await.map_err(|e| match e {
            SendError::Request(e) => Error::unavailable(format!("cannot reach the Lambda API at {url}: {e}")),
            SendError::Body(e) => Error::unavailable(format!("reading the answer of {url}: {e}")),
        })?;
        if parts.status != http::StatusCode::OK {
            return Err(api_error(name, parts.status, &parts.headers, &reply));
        }
        if parts.headers.contains_key("x-amz-function-error") {
            return Err(error_from_body(name, &reply));
        }
        Ok(match faas_host::envelope::unwrap(&reply) {
            Some(p) => p,
            None => {
                let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                let content_type = content_type.filter(|_| !reply.is_empty()).map(str::to_string);
                Payload::new(reply, content_type)
            }
        })
    }

    async fn emit(&self, caller: &Context, event: Event) -> Result<(), Error> {
        match &self.events {
            Some(events) => events.emit(caller, event).await,
            None => Err(Error::unavailable(format!(
                "cannot emit event `{}`: {ENV_EVENTS} is not set (give the backend profile an `events` key with the \
                 event gateway's URL)",
                faas_api::cloudevents::AttributesReader::id(&event)
            ))),
        }
    }
}
