//! `LambdaRunner::invoke`: the Invoke API call, its limits, the payload envelope and trace headers.

use std::sync::{Arc, Mutex};

use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine;
use faas_api::{Error, InvokeMode, InvokeRequest, Invoked, Payload};

use super::{LambdaRunner, MAX_ASYNC_PAYLOAD, MAX_SYNC_PAYLOAD};

/// Reads the `Content-Type` of the Invoke response, which the SDK's output does not expose.
#[derive(Debug, Clone, Default)]
struct ContentTypeTap(Arc<Mutex<Option<String>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for ContentTypeTap {
    fn name(&self) -> &'static str {
        "faas-content-type-tap"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let ct = context.response().headers().get("content-type").map(str::to_string);
        *self.0.lock().expect("content type tap") = ct;
        Ok(())
    }
}

/// The X-Ray trace header of a W3C `traceparent`: `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`.
pub(super) fn xray_header(traceparent: &str) -> Option<String> {
    let t = faas_api::TraceContext::parse(traceparent)?;
    let (epoch, unique) = t.trace_id().split_at(8);
    Some(format!("Root=1-{epoch}-{unique};Parent={};Sampled={}", t.parent_id(), u8::from(t.sampled())))
}

impl LambdaRunner {
    /// One invocation through the Invoke API (`RequestResponse`, `Event` or `DryRun`), with the
    /// payload envelope for non-JSON payloads and the caller's trace in the client context.
    pub(super) async fn invoke_function(&self, request: InvokeRequest) -> Result<Invoked, Error> {
        let name = self.lambda_name(&request.function);
        let (invocation_type, limit) = match request.mode {
            InvokeMode::Sync => (InvocationType::RequestResponse, MAX_SYNC_PAYLOAD),
            InvokeMode::Async => (InvocationType::Event, MAX_ASYNC_PAYLOAD),
            InvokeMode::DryRun => (InvocationType::DryRun, MAX_SYNC_PAYLOAD),
        };
        if request.payload.len() > limit {
            return Err(Error::payload_too_large(format!(
                "the request to `{}` is {} bytes; Lambda's {} limit is {limit} bytes",
                request.function,
                request.payload.len(),
                if request.mode == InvokeMode::Async { "asynchronous" } else { "synchronous" }
            )));
        }
        let body = if crate::envelope::needs_envelope(&request.payload) {
            crate::envelope::wrap(&request.payload)
        } else {
            request.payload.body().to_vec()
        };
        let mut call =
            self.client.invoke().function_name(&name).invocation_type(invocation_type).payload(Blob::new(body));
        let sync = request.mode == InvokeMode::Sync;
        if sync && request.with_logs {
            call = call.log_type(LogType::Tail);
        }
        if let (true, Some(tp)) = (sync, &request.traceparent) {
            // The caller's trace rides in the client context's `custom` map, which the faas host
            // reads (Lambda forwards it as `Lambda-Runtime-Client-Context`; sync invocations only).
            let cc = serde_json::json!({"custom": {"traceparent": tp}}).to_string();
            call = call.client_context(base64::engine::general_purpose::STANDARD.encode(cc));
        }
        let tap = ContentTypeTap::default();
        let xray = request.traceparent.as_deref().and_then(xray_header);
        let mut custom = call
            .customize()
            // An invocation is not retried by the client: throttling and errors reach the caller.
            .config_override(
                aws_sdk_lambda::config::Builder::new()
                    .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled()),
            )
            .interceptor(tap.clone());
        if let Some(x) = xray {
            custom = custom.mutate_request(move |req| {
                req.headers_mut().insert("X-Amzn-Trace-Id", x.clone());
            });
        }
        let out = custom.send().await.map_err(|e| self.sdk_error("Invoke", &name, e))?;
        let activation_id = out.request_id().unwrap_or_default().to_string();
        let logs = out.log_result().map(|l| {
            let text = base64::engine::general_purpose::STANDARD.decode(l).unwrap_or_default();
            String::from_utf8_lossy(&text).lines().map(str::to_string).collect::<Vec<_>>()
        });
        let body = out.payload().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        if out.function_error().is_some() {
            return Err(crate::errors::error_from_body(&request.function, &body));
        }
        let payload = match crate::envelope::unwrap(&body) {
            Some(p) => p,
            None => {
                let content_type = if body.is_empty() { None } else { tap.0.lock().expect("content type tap").clone() };
                Payload::new(body, content_type)
            }
        };
        Ok(Invoked { activation_id, payload, logs })
    }
}
