//! Lambda service exceptions as the control plane returns them: HTTP status, `x-amzn-ErrorType`,
//! `x-amzn-RequestId` and the JSON body the AWS SDKs parse.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A Lambda service exception (the control plane's error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LambdaException {
    /// Exception shape name, e.g. `ResourceNotFoundException`.
    pub name: &'static str,
    /// HTTP status of the shape.
    pub status: u16,
    /// Human message.
    pub message: String,
    /// `Reason` member (TooManyRequestsException).
    pub reason: Option<&'static str>,
    /// `Retry-After` header in seconds (TooManyRequestsException).
    pub retry_after: Option<u64>,
}

impl LambdaException {
    fn new(name: &'static str, status: u16, message: impl Into<String>) -> LambdaException {
        LambdaException { name, status, message: message.into(), reason: None, retry_after: None }
    }

    /// 404 `ResourceNotFoundException`.
    pub fn not_found(message: impl Into<String>) -> LambdaException {
        LambdaException::new("ResourceNotFoundException", 404, message)
    }

    /// 400 `InvalidParameterValueException`.
    pub fn invalid_parameter(message: impl Into<String>) -> LambdaException {
        LambdaException::new("InvalidParameterValueException", 400, message)
    }

    /// 400 `InvalidRequestContentException` (malformed JSON and the like).
    pub fn invalid_content(message: impl Into<String>) -> LambdaException {
        LambdaException::new("InvalidRequestContentException", 400, message)
    }

    /// 400 `ValidationException`: what Lambda's front door answers when a member fails its model constraint
    /// (e.g. a FunctionName that does not match the pattern). Not a modeled Lambda shape; the SDKs surface it
    /// as an unhandled error with that code.
    pub fn validation(message: impl Into<String>) -> LambdaException {
        LambdaException::new("ValidationException", 400, message)
    }

    /// 409 `ResourceConflictException`.
    pub fn conflict(message: impl Into<String>) -> LambdaException {
        LambdaException::new("ResourceConflictException", 409, message)
    }

    /// 412 `PreconditionFailedException` (RevisionId mismatch).
    pub fn precondition_failed(message: impl Into<String>) -> LambdaException {
        LambdaException::new("PreconditionFailedException", 412, message)
    }

    /// 413 `RequestTooLargeException`.
    pub fn too_large(message: impl Into<String>) -> LambdaException {
        LambdaException::new("RequestTooLargeException", 413, message)
    }

    /// 429 `TooManyRequestsException` with `Reason: ConcurrentInvocationLimitExceeded` and `Retry-After`.
    pub fn too_many_concurrent() -> LambdaException {
        LambdaException {
            reason: Some("ConcurrentInvocationLimitExceeded"),
            retry_after: Some(1),
            ..LambdaException::new("TooManyRequestsException", 429, "Rate Exceeded.")
        }
    }

    /// 500 `ServiceException`.
    pub fn service(message: impl Into<String>) -> LambdaException {
        LambdaException::new("ServiceException", 500, message)
    }

    /// 404 for a route the API does not have (Lambda answers `UnknownOperationException`).
    pub fn unknown_operation() -> LambdaException {
        LambdaException::new("UnknownOperationException", 404, "Unknown operation")
    }

    /// The JSON body. The botocore model spells the message member `Message` for ResourceNotFoundException and
    /// ServiceException and `message` for the others; the SDK's generic error parser accepts either.
    pub fn body(&self) -> serde_json::Value {
        let key = match self.name {
            "ResourceNotFoundException" | "ServiceException" => "Message",
            _ => "message",
        };
        let mut body = json!({ "Type": "User", key: self.message });
        if self.status >= 500 {
            body["Type"] = json!("Service");
        }
        if let Some(reason) = self.reason {
            body["Reason"] = json!(reason);
        }
        body
    }
}

impl IntoResponse for LambdaException {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.name));
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            headers.insert("x-amzn-RequestId", id);
        }
        if let Some(secs) = self.retry_after {
            headers.insert("Retry-After", HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_member_follows_the_model() {
        assert_eq!(LambdaException::not_found("x").body()["Message"], "x");
        assert_eq!(LambdaException::conflict("y").body()["message"], "y");
        let throttle = LambdaException::too_many_concurrent();
        assert_eq!(throttle.body()["Reason"], "ConcurrentInvocationLimitExceeded");
        let response = throttle.into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["x-amzn-errortype"], "TooManyRequestsException");
        assert_eq!(response.headers()["retry-after"], "1");
    }
}
