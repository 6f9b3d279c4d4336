//! How an AWS SDK error (of the Lambda or the CloudWatch Logs client) becomes a portable error.
//!
//! | what happened | kind | `errorType` |
//! |---|---|---|
//! | AWS answered with an error code | by the code (`ResourceNotFoundException` → not found, ...) | the AWS code |
//! | no credential could be had ([`MissingCredentials`]) | unauthorized | `MissingCredentials` |
//! | the endpoint could not be reached (connect, I/O, timeout) | backend unavailable | `BackendUnavailable` |
//! | an answer came but could not be read (e.g. a 200 whose body is not the expected shape) | crash (502, an invalid answer from upstream) | `UnreadableResponse` |
//! | an error status without an AWS code | by the status | the kind's default |
//!
//! Messages stay short: the AWS message, the cause and an excerpt of an unreadable body are cut to a
//! few hundred characters on one line (a raw answer can be megabytes).

use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use faas_api::{Error, ErrorKind};

use crate::credentials::MissingCredentials;
use crate::errors::kind_of_code;
pub(crate) use crate::errors::one_line;

/// The `errorType` of an answer that could not be read.
pub(crate) const UNREADABLE_RESPONSE: &str = "UnreadableResponse";
/// Most characters of a body excerpt in a message.
const EXCERPT: usize = 200;
/// Most characters of an error's cause or AWS message in a message.
const CAUSE: usize = 300;

/// The `Display` texts of `err` and its sources, joined with `: ` (a source whose text its parent
/// already shows is left out). Unlike `DisplayErrorContext`, no `Debug` dump of a raw response.
pub(crate) fn source_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The [`MissingCredentials`] somewhere in `err`'s sources.
fn missing_credentials<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a MissingCredentials> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(m) = e.downcast_ref::<MissingCredentials>() {
            return Some(m);
        }
        next = e.source();
    }
    None
}

/// An answer (`raw`) that came but could not be read as the answer to `op`.
fn unreadable(what: &str, op: &str, raw: &HttpResponse, cause: &str) -> Error {
    let body = raw.body().bytes().unwrap_or_default();
    let excerpt = one_line(&String::from_utf8_lossy(&body[..body.len().min(4 * EXCERPT)]), EXCERPT);
    Error::new(
        ErrorKind::Crash,
        format!(
            "{what} failed: the answer (HTTP {}, {} bytes) could not be read as a {op} response ({}); it begins: {excerpt}",
            raw.status().as_u16(),
            body.len(),
            one_line(cause, CAUSE),
        ),
    )
    .with_type(UNREADABLE_RESPONSE)
}

/// Maps the SDK error of operation `op` (e.g. `DeleteFunction`) on `target` (a function name, a log
/// group) at `place` (e.g. `AWS Lambda in eu-west-1`) to the portable taxonomy; see the module docs.
pub(crate) fn from_sdk<E>(op: &str, target: &str, place: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let what = format!("{op} `{target}` on {place}");
    if let Some(code) = err.code() {
        let detail = one_line(err.message().unwrap_or("no message"), CAUSE);
        let kind = kind_of_code(code).unwrap_or_else(|| match err.raw_response().map(|r| r.status().as_u16()) {
            Some(s) => ErrorKind::from_status(s),
            None => ErrorKind::BackendUnavailable,
        });
        return Error::new(kind, format!("{what} failed: {code}: {detail}")).with_type(code);
    }
    if let Some(m) = missing_credentials(&err) {
        return m.to_error();
    }
    let cause = source_chain(&err);
    match &err {
        SdkError::ServiceError(ctx) if ctx.raw().status().is_success() => unreadable(&what, op, ctx.raw(), &cause),
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let body = ctx.raw().body().bytes().unwrap_or_default();
            let excerpt = one_line(&String::from_utf8_lossy(&body[..body.len().min(4 * EXCERPT)]), EXCERPT);
            Error::new(
                ErrorKind::from_status(status),
                format!("{what} failed: HTTP {status} without an AWS error code: {excerpt}"),
            )
        }
        SdkError::ResponseError(ctx) => unreadable(&what, op, ctx.raw(), &cause),
        SdkError::TimeoutError(_) => Error::timeout(format!("{what} timed out: {}", one_line(&cause, CAUSE))),
        SdkError::DispatchFailure(_) => {
            Error::unavailable(format!("{what} failed: cannot reach {place}: {}", one_line(&cause, CAUSE)))
        }
        SdkError::ConstructionFailure(_) => {
            Error::bad_input(format!("{what}: the request could not be built: {}", one_line(&cause, CAUSE)))
        }
        _ => Error::unavailable(format!("{what} failed: {}", one_line(&cause, CAUSE))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_folds_whitespace_and_cuts() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line(&"x".repeat(500), 200).chars().count(), 201);
        assert_eq!(one_line("héllo wörld", 5), "héllo…");
    }
}
