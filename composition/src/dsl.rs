//! The builder DSL: Rust functions that build the same program the JSON form describes.
//!
//! ```
//! use faas_composition::*;
//! let checkout = seq([
//!     call("validate"),
//!     when(at("/amount").gt(100), call("review")),
//!     call("charge").retry(3),
//!     call("notify").input(pointer("/receipt")),
//! ]);
//! let json = Composition::new(checkout.clone()).to_json();
//! assert_eq!(json["program"]["steps"][1]["op"], "if");
//! assert_eq!(json["program"]["steps"][2]["attempts"], 3);
//! assert_eq!(Composition::from_json(json.to_string().as_bytes()).unwrap().program, checkout);
//! ```

use std::collections::BTreeMap;

use faas_api::{ErrorKind, EventFilter};
use serde_json::Value;

use crate::ast::*;

/// Calls a function (or another composition) by its logical name.
pub fn call(function: impl Into<String>) -> Node {
    Node::Call(Call { function: function.into(), input: None, output: None })
}

/// Each step in turn.
pub fn seq(steps: impl IntoIterator<Item = Node>) -> Node {
    Node::Seq { steps: steps.into_iter().collect() }
}

/// `then` when `test` holds, else the value goes on unchanged ([`Node::otherwise`] adds an else).
pub fn when(test: Cond, then: Node) -> Node {
    Node::If { test, then: Box::new(then), otherwise: None }
}

/// `body` while `test` holds.
pub fn while_(test: Cond, body: Node) -> Node {
    Node::While { test, body: Box::new(body) }
}

/// `body`, then again while `test` holds.
pub fn do_while(body: Node, test: Cond) -> Node {
    Node::DoWhile { body: Box::new(body), test }
}

/// `body` `times` times.
pub fn repeat(times: u32, body: Node) -> Node {
    Node::Repeat { times, body: Box::new(body) }
}

/// `body` with the variables `vars` in scope (see [`Node::Let`]).
pub fn let_<K: Into<String>>(vars: impl IntoIterator<Item = (K, Expr)>, body: Node) -> Node {
    Node::Let { vars: vars.into_iter().map(|(k, e)| (k.into(), e)).collect(), body: Box::new(body) }
}

/// `body` without the variables declared outside it.
pub fn mask(body: Node) -> Node {
    Node::Mask { body: Box::new(body) }
}

/// The current value becomes `expr`'s.
pub fn value(expr: Expr) -> Node {
    Node::Value { value: expr }
}

/// The current value becomes a constant.
pub fn literal(v: impl Into<Value>) -> Node {
    value(Expr::Literal(v.into()))
}

/// Every branch side by side; the result is the array of theirs.
pub fn parallel(branches: impl IntoIterator<Item = Node>) -> Node {
    Node::Parallel { branches: branches.into_iter().collect(), fail_fast: false }
}

/// `body` on each item of the array at `items` (`""`: the value itself).
pub fn map(items: impl Into<String>, body: Node) -> Node {
    Node::Map { items: items.into(), body: Box::new(body), max_concurrency: None, fail_fast: false }
}

/// A durable timer of `ms` milliseconds.
pub fn wait(ms: u64) -> Node {
    Node::Wait { ms }
}

/// Waits for a CloudEvent matching `filter`, at most `timeout_ms`.
pub fn await_event(filter: EventFilter, timeout_ms: u64) -> Node {
    Node::AwaitEvent { filter, timeout_ms }
}

/// The part of the current value at a JSON Pointer.
pub fn pointer(p: impl Into<String>) -> Expr {
    Expr::Pointer(p.into())
}

/// A variable of an enclosing `let`.
pub fn var(name: impl Into<String>) -> Expr {
    Expr::Var(name.into())
}

/// A constant expression.
pub fn constant(v: impl Into<Value>) -> Expr {
    Expr::Literal(v.into())
}

/// An object of expressions.
pub fn object<K: Into<String>>(members: impl IntoIterator<Item = (K, Expr)>) -> Expr {
    Expr::Object(members.into_iter().map(|(k, e)| (k.into(), e)).collect::<BTreeMap<_, _>>())
}

/// The start of a comparison on the value at a JSON Pointer: `at("/amount").gt(100)`.
pub fn at(p: impl Into<String>) -> At {
    At(p.into())
}

/// A JSON Pointer a condition is about; see [`at`].
#[derive(Debug, Clone)]
pub struct At(String);

impl At {
    fn compare(self, op: CompareOp, v: impl Into<Value>) -> Cond {
        Cond::Compare { pointer: self.0, op, value: v.into() }
    }
    /// Equal to `v`.
    pub fn eq(self, v: impl Into<Value>) -> Cond {
        self.compare(CompareOp::Eq, v)
    }
    /// Not equal to `v`.
    pub fn ne(self, v: impl Into<Value>) -> Cond {
        self.compare(CompareOp::Ne, v)
    }
    /// Greater than `v`.
    pub fn gt(self, v: impl Into<Value>) -> Cond {
        self.compare(CompareOp::Gt, v)
    }
    /// Greater than or equal to `v`.
    pub fn ge(self, v: impl Into<Value>) -> Cond {
        self.compare(CompareOp::Ge, v)
    }
    /// Less than `v`.
    pub fn lt(self, v: impl Into<Value>) -> Cond {
        self.compare(CompareOp::Lt, v)
    }
    /// Less than or equal to `v`.
    pub fn le(self, v: impl Into<Value>) -> Cond {
        self.compare(CompareOp::Le, v)
    }
    /// There is a value here.
    pub fn exists(self) -> Cond {
        Cond::Exists(self.0)
    }
    /// The value here is truthy ([`Cond::Truthy`]).
    pub fn truthy(self) -> Cond {
        Cond::Truthy(self.0)
    }
}

/// `!cond`: the condition does not hold.
///
/// ```
/// use faas_composition::{at, Cond};
/// assert_eq!(!at("/done").exists(), Cond::Not(Box::new(Cond::Exists("/done".into()))));
/// ```
impl std::ops::Not for Cond {
    type Output = Cond;
    fn not(self) -> Cond {
        Cond::Not(Box::new(self))
    }
}

impl Cond {
    /// Both hold.
    pub fn and(self, other: Cond) -> Cond {
        Cond::All(vec![self, other])
    }
    /// Either holds.
    pub fn or(self, other: Cond) -> Cond {
        Cond::Any(vec![self, other])
    }
    /// A function decides (it answers `{"value": bool}`).
    pub fn call(function: impl Into<String>) -> Cond {
        Cond::Call(Call { function: function.into(), input: None, output: None })
    }
}

impl Node {
    /// For a call: what it is sent.
    pub fn input(mut self, expr: Expr) -> Node {
        if let Node::Call(c) = &mut self {
            c.input = Some(expr);
        }
        self
    }

    /// For a call: where its result goes in the current value.
    pub fn output(mut self, p: impl Into<String>) -> Node {
        if let Node::Call(c) = &mut self {
            c.output = Some(p.into());
        }
        self
    }

    /// For an `if`: what runs when the test does not hold.
    pub fn otherwise(mut self, node: Node) -> Node {
        if let Node::If { otherwise, .. } = &mut self {
            *otherwise = Some(Box::new(node));
        }
        self
    }

    /// Runs this up to `attempts` times in all on errors other than `bad_input`, waiting 100 ms,
    /// then twice as long each time ([`Node::Retry`]'s other settings through [`Node::retry_with`]).
    pub fn retry(self, attempts: u32) -> Node {
        self.retry_with(Retry {
            body: Box::new(Node::Seq { steps: vec![] }),
            attempts,
            base_ms: 100,
            rate: 2.0,
            cap_ms: None,
            jitter: false,
            kinds: vec![],
        })
    }

    /// Runs this again as `settings` say (its `body` is replaced by this node).
    pub fn retry_with(self, mut settings: Retry) -> Node {
        settings.body = Box::new(self);
        Node::Retry(settings)
    }

    /// This, and on an error of one of `kinds` (every error when empty), `handler`.
    pub fn catch(self, kinds: impl IntoIterator<Item = ErrorKind>, handler: Node) -> Node {
        let c = Catch { kinds: kinds.into_iter().collect(), error_types: vec![], handler };
        match self {
            Node::Try { body, mut catch, finally } => {
                catch.push(c);
                Node::Try { body, catch, finally }
            }
            other => Node::Try { body: Box::new(other), catch: vec![c], finally: None },
        }
    }

    /// This, then `node` whatever happened.
    pub fn finally(self, node: Node) -> Node {
        match self {
            Node::Try { body, catch, finally: None } => Node::Try { body, catch, finally: Some(Box::new(node)) },
            other => Node::Try { body: Box::new(other), catch: vec![], finally: Some(Box::new(node)) },
        }
    }

    /// For `parallel` and `map`: fail at the first error.
    pub fn fail_fast(mut self) -> Node {
        if let Node::Parallel { fail_fast, .. } | Node::Map { fail_fast, .. } = &mut self {
            *fail_fast = true;
        }
        self
    }

    /// For `map`: at most `n` items in flight.
    pub fn max_concurrency(mut self, n: u32) -> Node {
        if let Node::Map { max_concurrency, .. } = &mut self {
            *max_concurrency = Some(n);
        }
        self
    }
}
