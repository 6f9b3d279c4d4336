//! The API's error answers: `google.rpc.Status` bodies as Google's JSON APIs write them,
//! `{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}`, with the HTTP status
//! that goes with the canonical code (google/rpc/code.proto).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A canonical error: the HTTP status, the `google.rpc.Code` name and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code_name}: {message}")]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code_name: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code_name: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code_name, message: message.into() }
    }

    /// 400 `INVALID_ARGUMENT` (code 3).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// 404 `NOT_FOUND` (code 5), worded as Google's resource APIs word it (UNCONFIRMED for the
    /// Cloud Functions API in particular: `Resource '<name>' was not found`).
    pub fn not_found(name: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Resource '{name}' was not found"))
    }

    /// 409 `ALREADY_EXISTS` (code 6).
    pub fn already_exists(name: &str) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "ALREADY_EXISTS", format!("Resource '{name}' already exists"))
    }

    /// 409 `ABORTED` (code 10): another operation on the function is running.
    pub fn aborted(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "ABORTED", message)
    }

    /// 500 `INTERNAL` (code 13).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    /// The `google.rpc.Code` number of this error's name.
    pub fn code(&self) -> i32 {
        code_number(self.code_name)
    }

    /// The body: `{"error": {"code", "message", "status"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.status.as_u16(), "message": self.message, "status": self.code_name } })
    }
}

/// The number of a `google.rpc.Code` name (google/rpc/code.proto).
pub(crate) fn code_number(name: &str) -> i32 {
    match name {
        "OK" => 0,
        "CANCELLED" => 1,
        "UNKNOWN" => 2,
        "INVALID_ARGUMENT" => 3,
        "DEADLINE_EXCEEDED" => 4,
        "NOT_FOUND" => 5,
        "ALREADY_EXISTS" => 6,
        "PERMISSION_DENIED" => 7,
        "RESOURCE_EXHAUSTED" => 8,
        "FAILED_PRECONDITION" => 9,
        "ABORTED" => 10,
        "OUT_OF_RANGE" => 11,
        "UNIMPLEMENTED" => 12,
        "INTERNAL" => 13,
        "UNAVAILABLE" => 14,
        "DATA_LOSS" => 15,
        "UNAUTHENTICATED" => 16,
        _ => 2,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_google_rpc_statuses() {
        let e = ApiError::not_found("projects/p/locations/l/functions/f");
        assert_eq!(e.body()["error"]["code"], 404);
        assert_eq!(e.body()["error"]["status"], "NOT_FOUND");
        assert_eq!(e.code(), 5);
        assert_eq!(ApiError::invalid("x").code(), 3);
        assert_eq!(ApiError::already_exists("n").status, StatusCode::CONFLICT);
    }
}
