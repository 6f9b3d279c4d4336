//! The controller's error answers: `{"error": "<message>", "code": "<transaction id>"}` with the
//! status OpenWhisk uses, and its messages (apache/openwhisk
//! common/scala/src/main/scala/org/apache/openwhisk/http/ErrorResponse.scala, `Messages`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `Messages.resourceDoesNotExist`.
pub(crate) const RESOURCE_DOES_NOT_EXIST: &str = "The requested resource does not exist.";
/// `Messages.notAuthorizedtoOperateOnResource`.
pub(crate) const NOT_AUTHORIZED: &str = "The supplied authentication is not authorized to access this resource.";
/// Pekko's default rejection text for credentials that do not match, wrapped by the controller.
pub(crate) const AUTH_INVALID: &str = "The supplied authentication is invalid";
/// Pekko's default rejection text for a request without credentials.
pub(crate) const AUTH_MISSING: &str = "The resource requires authentication, which was not supplied with the request";

/// `Messages.entityNameIllegal`.
pub(crate) const ENTITY_NAME_ILLEGAL: &str = "The name of the entity contains illegal characters.";

/// A path's parameters, percent-decoded, as `axum::extract::Path` gives them; a segment that does
/// not decode to UTF-8 (`%FF`) is refused in the controller's shape, as a name with illegal
/// characters, instead of axum's plain-text 400.
pub(crate) struct WhiskPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for WhiskPath<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(WhiskPath(value)),
            Err(_) => Err(ApiError::bad_request(ENTITY_NAME_ILLEGAL)),
        }
    }
}

/// A controller error: its HTTP status and message. The transaction id is added when answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 for a body that is not the JSON expected, worded as Pekko's `MalformedRequestContentRejection`.
    pub fn malformed(detail: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("The request content was malformed:\n{detail}"))
    }

    /// 400 for a query parameter that does not parse, worded as Pekko's `MalformedQueryParamRejection`.
    pub fn malformed_query(name: &str, detail: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("The query parameter '{name}' was malformed:\n{detail}"))
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, RESOURCE_DOES_NOT_EXIST)
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, NOT_AUTHORIZED)
    }

    /// 409 for a PUT without `overwrite=true` over an existing entity (`Messages.conflictMessage`).
    pub fn conflict() -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "resource already exists")
    }

    /// 409 for an entity of the name in another collection (`Messages.conformanceMessage`).
    pub fn other_collection() -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "Resource by this name exists but is not in this collection.")
    }

    /// 413 with `Messages.entityTooBig`: `<field> larger than allowed: <is> > <allowed> bytes.`
    pub fn too_big(field: &str, is: usize, allowed: usize) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("{field} larger than allowed: {is} > {allowed} bytes."))
    }

    /// 429 with `Messages.tooManyConcurrentRequests(count, allowed)`.
    pub fn too_many_concurrent(count: usize, allowed: usize) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many concurrent requests in flight (count: {count}, allowed: {allowed})."),
        )
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// A new transaction id: 32 alphanumeric characters, as the controller's `TransactionId` ids look.
pub(crate) fn transaction_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "code": transaction_id() });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Basic realm=\"whisk rest service\""));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_openwhisk_messages() {
        assert_eq!(ApiError::too_big("Request", 2, 1).message, "Request larger than allowed: 2 > 1 bytes.");
        assert_eq!(ApiError::not_found().status, StatusCode::NOT_FOUND);
        assert_eq!(transaction_id().len(), 32);
        assert!(ApiError::malformed("x").message.starts_with("The request content was malformed:\n"));
    }
}
