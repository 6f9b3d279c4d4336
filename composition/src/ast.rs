//! The program of a composition: a tree of combinators over deployed functions. It serializes to
//! the portable JSON form (`{"faas": "composition/v1", "program": ...}`), which
//! [`crate::Composition::from_json`] reads back with every problem named by its JSON path.

use std::collections::BTreeMap;

use faas_api::{ErrorKind, EventFilter};
use serde::Serialize;
use serde_json::Value;

/// The format tag of the JSON form.
pub const FORMAT: &str = "composition/v1";

/// A composition: a program and, optionally, what it is for.
///
/// ```
/// use faas_composition::{call, seq, Composition};
/// let c = Composition::new(seq([call("validate"), call("charge")]));
/// let json = c.to_json();
/// assert_eq!(json["faas"], "composition/v1");
/// assert_eq!(json["program"]["steps"][1]["function"], "charge");
/// assert_eq!(Composition::from_json(&serde_json::to_vec(&json).unwrap()).unwrap(), c);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Composition {
    /// Always [`FORMAT`].
    pub faas: &'static str,
    /// What the composition does, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The program.
    pub program: Node,
}

impl Composition {
    /// A composition running `program`.
    pub fn new(program: Node) -> Composition {
        Composition { faas: FORMAT, description: None, program }
    }

    /// With a description.
    pub fn description(mut self, text: impl Into<String>) -> Composition {
        self.description = Some(text.into());
        self
    }

    /// The portable JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a composition is JSON")
    }
}

/// One combinator. The current value flows through a program: each node takes it and gives the
/// next one (or fails with a portable error).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Node {
    /// Invoke a function (or another composition) by its logical name.
    Call(Call),
    /// Each step in turn, the result of one the input of the next; no steps is the identity.
    Seq {
        /// The steps.
        steps: Vec<Node>,
    },
    /// `then` when the condition holds, else `else` (the identity when absent).
    If {
        /// The condition, on the current value.
        test: Cond,
        /// Run when it holds.
        then: Box<Node>,
        /// Run when it does not.
        #[serde(rename = "else", skip_serializing_if = "Option::is_none")]
        otherwise: Option<Box<Node>>,
    },
    /// `body` while the condition holds, tested first.
    While {
        /// The condition.
        test: Cond,
        /// The body.
        body: Box<Node>,
    },
    /// `body`, then again while the condition holds.
    DoWhile {
        /// The body.
        body: Box<Node>,
        /// The condition, tested after each run.
        test: Cond,
    },
    /// `body` a fixed number of times.
    Repeat {
        /// How many times.
        times: u32,
        /// The body.
        body: Box<Node>,
    },
    /// `body`; an error it fails with goes to the first matching handler; `finally` runs after
    /// either, and its own result is dropped (the value or error of the rest goes on).
    Try {
        /// The body.
        body: Box<Node>,
        /// The handlers, tried in order.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        catch: Vec<Catch>,
        /// Run after the body and any handler.
        #[serde(skip_serializing_if = "Option::is_none")]
        finally: Option<Box<Node>>,
    },
    /// `body` again after a failure, with exponential back-off.
    Retry(Retry),
    /// Variables held by the conductor for `body` (steps never see them, only expressions do).
    Let {
        /// Each variable and the expression that gives its value, on the current value.
        vars: BTreeMap<String, Expr>,
        /// Where they are in scope.
        body: Box<Node>,
    },
    /// `body` without the variables declared outside it.
    Mask {
        /// The body.
        body: Box<Node>,
    },
    /// The current value becomes an expression's value (a selection, a literal, a variable, an
    /// object built of those).
    Value {
        /// The expression.
        value: Expr,
    },
    /// Every branch on the current value, side by side; the result is the array of theirs.
    Parallel {
        /// The branches.
        branches: Vec<Node>,
        /// Fail at the first error instead of when every branch is done.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        fail_fast: bool,
    },
    /// `body` on each item of an array; the result is the array of results, in order.
    Map {
        /// Where the array is in the current value (`""`: the value itself).
        #[serde(skip_serializing_if = "String::is_empty")]
        items: String,
        /// Run on each item.
        body: Box<Node>,
        /// Most items in flight at once (all when absent).
        #[serde(skip_serializing_if = "Option::is_none")]
        max_concurrency: Option<u32>,
        /// Fail at the first error instead of when every item is done.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        fail_fast: bool,
    },
    /// A durable timer: the value goes on unchanged after `ms` milliseconds.
    Wait {
        /// How long.
        ms: u64,
    },
    /// Wait for a CloudEvent matching `filter`, which becomes the current value; a `timeout`
    /// error after `timeout_ms`.
    AwaitEvent {
        /// The event to wait for.
        filter: EventFilter,
        /// How long to wait.
        timeout_ms: u64,
    },
}

/// A call of a function by its logical name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    /// The function (or composition).
    pub function: String,
    /// What it is sent (the current value when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Expr>,
    /// Where its result goes in the current value (`None`: the result replaces it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A handler of `try`: the errors it takes and what runs on them. The handler's input is the
/// portable error as JSON (`{"kind", "errorType", "errorMessage"}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catch {
    /// The portable error kinds it takes (with `error_types`, none: every error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<ErrorKind>,
    /// The `errorType`s it takes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_types: Vec<String>,
    /// Run on a matching error.
    pub handler: Node,
}

/// How `retry` runs its body again: at most `attempts` runs in all, waiting `base_ms`, then
/// `rate` times longer each time, never more than `cap_ms`, with full jitter when asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    /// The body.
    pub body: Box<Node>,
    /// Runs in all, the first included.
    pub attempts: u32,
    /// The first wait.
    pub base_ms: u64,
    /// Each wait over the last.
    pub rate: f64,
    /// The longest wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_ms: Option<u64>,
    /// A random wait between zero and the computed one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub jitter: bool,
    /// The error kinds retried (none: every kind but `bad_input`, which another run cannot fix).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<ErrorKind>,
}

/// A value computed by the conductor (no user code runs there).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// The part of the current value at a JSON Pointer (RFC 6901; `""` is the whole value).
    Pointer(String),
    /// A variable of an enclosing `let`.
    Var(String),
    /// A constant.
    Literal(Value),
    /// An object of expressions.
    Object(BTreeMap<String, Expr>),
}

/// A condition on the current value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    /// Compares the value at a pointer with a constant.
    Compare {
        /// Where the value is.
        pointer: String,
        /// How it is compared.
        op: CompareOp,
        /// With what.
        value: Value,
    },
    /// There is a value at the pointer.
    Exists(String),
    /// The value at the pointer is neither absent, `null`, `false`, `0`, `""`, `[]` nor `{}`.
    Truthy(String),
    /// The condition does not hold.
    Not(Box<Cond>),
    /// Every condition holds (true when there are none).
    All(Vec<Cond>),
    /// Some condition holds (false when there are none).
    Any(Vec<Cond>),
    /// A function decides: it answers `{"value": true|false}`.
    Call(Call),
}

/// How [`Cond::Compare`] compares. Numbers compare as numbers, strings by code point; `eq` and
/// `ne` take any JSON; the ordering ones are false for values of different kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    /// The name in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Every operator.
    pub const ALL: [CompareOp; 6] =
        [CompareOp::Eq, CompareOp::Ne, CompareOp::Gt, CompareOp::Ge, CompareOp::Lt, CompareOp::Le];
}
