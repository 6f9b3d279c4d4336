//! Compositions: functions built from functions (COMPOSITION.md).
//!
//! A composition is a program over deployed functions, called by their logical names: `seq`,
//! `if`, loops, `try`/`catch`/`finally`, `retry` with back-off, variables the conductor holds
//! (`let`, `mask`) and steps never see, JSON Pointer selection, `parallel`, `map`, durable
//! timers and waiting for an event. This crate holds the program: its tree ([`Node`]), its
//! portable JSON form (`{"faas": "composition/v1", "program": ...}`, read by
//! [`Composition::from_json`] with every problem named by its JSON path) and the builder DSL
//! ([`seq`], [`call`], [`when`], ...), which builds the same tree.
//!
//! ```
//! use faas_composition::*;
//! let program = let_(
//!     [("token", pointer("/token"))],
//!     seq([call("load"), call("enrich"), call("store").input(object([("data", pointer("")), ("token", var("token"))]))]),
//! );
//! let json = Composition::new(program).to_json();
//! assert_eq!(json["program"]["op"], "let");
//!
//! let err = Composition::from_json(br#"{"faas":"composition/v1","program":{"op":"seq","steps":[{"op":"call","function":"a b"}]}}"#)
//!     .unwrap_err();
//! assert_eq!(err.path, "/program/steps/0/function");
//! assert!(err.message.contains("a b"), "{}", err.message);
//! ```

pub mod ast;
mod decode;
pub mod dsl;
pub mod fused;
pub mod machine;
pub mod plan;

pub use ast::{Call, Catch, CompareOp, Composition, Cond, Expr, FORMAT, Node, Retry};
pub use decode::{MAX_DEPTH, MAX_FAN, MAX_JSON_BYTES, MAX_NODES, MAX_VAR_NAME, MAX_WAIT_MS};
pub use dsl::*;
pub use fused::AppExt;

/// A composition that cannot be read: where (a JSON Pointer into the JSON form; empty for the
/// whole document) and what is wrong there.
///
/// ```
/// let err = faas_composition::Composition::from_json(br#"{"faas":"composition/v2","program":{}}"#).unwrap_err();
/// assert_eq!(err.to_string(), "composition: /faas: must be `composition/v1`, not `composition/v2`");
/// let e: faas_api::Error = err.into();
/// assert_eq!(e.kind(), faas_api::ErrorKind::BadInput);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("composition: {}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct CompositionError {
    /// Where the problem is, as a JSON Pointer (`/program/steps/2/function`).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl From<CompositionError> for faas_api::Error {
    fn from(e: CompositionError) -> faas_api::Error {
        faas_api::Error::bad_input(e.to_string())
    }
}

impl Composition {
    /// Reads the JSON form (at most [`MAX_JSON_BYTES`]), checking every member: the format tag,
    /// each combinator's members and their values, function names, JSON Pointers, variables in
    /// scope, the limits. The error names the JSON path of the first problem.
    pub fn from_json(bytes: &[u8]) -> Result<Composition, CompositionError> {
        decode::composition(bytes)
    }

    /// [`Composition::from_json`] on an already parsed value (from `faas.toml`, for one).
    pub fn from_value(value: &serde_json::Value) -> Result<Composition, CompositionError> {
        decode::from_value(value)
    }
}
