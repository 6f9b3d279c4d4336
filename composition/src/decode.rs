//! Reading the JSON form: every member checked where it stands, so an error names its JSON path
//! (`/program/steps/2/function`) and what is wrong there, and nothing is half-read.

use std::collections::{BTreeMap, BTreeSet};

use faas_api::{ErrorKind, EventFilter};
use serde_json::{Map, Value};

use crate::CompositionError;
use crate::ast::*;

/// Largest JSON form read, in bytes.
pub const MAX_JSON_BYTES: usize = 1 << 20;
/// Deepest nesting of JSON in a program (nodes, conditions, expressions and their members).
pub const MAX_DEPTH: usize = 64;
/// Most nodes in one program.
pub const MAX_NODES: usize = 10_000;
/// Most runs of `retry`, of items in flight in `map`, and of `parallel` branches.
pub const MAX_FAN: u32 = 1_000;
/// Longest `wait`, `await_event` timeout and retry wait: a year.
pub const MAX_WAIT_MS: u64 = 365 * 24 * 3600 * 1000;
/// Longest variable name.
pub const MAX_VAR_NAME: usize = 64;

/// Where the reader is: the JSON path, the depth, the count of nodes and the variables in scope.
struct Reader {
    path: Vec<String>,
    nodes: usize,
    scopes: Vec<Scope>,
}

/// One `let` (its names) or one `mask` (a wall: nothing outside is visible past it).
enum Scope {
    Vars(BTreeSet<String>),
    Mask,
}

type Result<T> = std::result::Result<T, CompositionError>;

impl Reader {
    fn pointer(&self) -> String {
        self.path.iter().map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect()
    }

    fn error(&self, message: impl Into<String>) -> CompositionError {
        CompositionError { path: self.pointer(), message: message.into() }
    }

    fn at<T>(&mut self, segment: impl ToString, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.path.push(segment.to_string());
        if self.path.len() > MAX_DEPTH {
            let e = self.error(format!("nested too deeply (at most {MAX_DEPTH} levels)"));
            self.path.pop();
            return Err(e);
        }
        let out = f(self);
        self.path.pop();
        out
    }

    fn object<'v>(&self, v: &'v Value, what: &str) -> Result<&'v Map<String, Value>> {
        v.as_object().ok_or_else(|| self.error(format!("{what} must be a JSON object, not {}", faas_api::json_kind(v))))
    }

    /// Refuses members other than `known`.
    fn only(&self, obj: &Map<String, Value>, known: &[&str], what: &str) -> Result<()> {
        match obj.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(CompositionError {
                path: format!("{}/{}", self.pointer(), k.replace('~', "~0").replace('/', "~1")),
                message: format!("unknown member `{k}` of {what}; it takes {}", list(known)),
            }),
            None => Ok(()),
        }
    }

    fn required<'v>(&self, obj: &'v Map<String, Value>, key: &str, what: &str) -> Result<&'v Value> {
        obj.get(key).ok_or_else(|| self.error(format!("{what} needs `{key}`")))
    }

    fn string(&mut self, v: &Value, key: &str) -> Result<String> {
        self.at(key, |r| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| r.error(format!("must be a string, not {}", faas_api::json_kind(v))))
        })
    }

    fn uint(&mut self, v: &Value, key: &str, min: u64, max: u64) -> Result<u64> {
        self.at(key, |r| match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(r.error(format!("must be an integer from {min} to {max}, not {}", shown(v)))),
        })
    }

    fn bool(&mut self, v: &Value, key: &str) -> Result<bool> {
        self.at(key, |r| {
            v.as_bool().ok_or_else(|| r.error(format!("must be true or false, not {}", faas_api::json_kind(v))))
        })
    }

    fn json_pointer(&mut self, v: &Value, key: &str) -> Result<String> {
        let p = self.string(v, key)?;
        self.at(key, |r| check_pointer(&p).map_err(|why| r.error(why)))?;
        Ok(p)
    }

    fn function_name(&mut self, v: &Value) -> Result<String> {
        let name = self.string(v, "function")?;
        self.at("function", |r| faas_api::validate_function_name(&name).map_err(|e| r.error(e.message())))?;
        Ok(name)
    }

    fn kinds(&mut self, v: &Value) -> Result<Vec<ErrorKind>> {
        self.at("kinds", |r| {
            let items = v
                .as_array()
                .ok_or_else(|| r.error(format!("must be an array of error kinds, not {}", faas_api::json_kind(v))))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let k = item.as_str().and_then(ErrorKind::parse).ok_or_else(|| {
                    let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
                    CompositionError {
                        path: format!("{}/{i}", r.pointer()),
                        message: format!("{} is not an error kind; the kinds are {}", shown(item), list(&names)),
                    }
                })?;
                out.push(k);
            }
            Ok(out)
        })
    }

    fn visible(&self, name: &str) -> bool {
        for scope in self.scopes.iter().rev() {
            match scope {
                Scope::Vars(names) if names.contains(name) => return true,
                Scope::Vars(_) => {}
                Scope::Mask => return false,
            }
        }
        false
    }

    fn node(&mut self, v: &Value) -> Result<Node> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error(format!("the program has more than {MAX_NODES} nodes")));
        }
        let obj = self.object(v, "a program node")?;
        let op = match obj.get("op") {
            Some(Value::String(op)) => op.as_str(),
            Some(other) => {
                return Err(
                    self.at("op", |r| Err(r.error(format!("must be a string, not {}", faas_api::json_kind(other)))))?
                );
            }
            None => return Err(self.error(format!("a program node needs `op`, one of {}", list(OPS)))),
        };
        let what = format!("`{op}`");
        let child = |r: &mut Self, key: &str| -> Result<Box<Node>> {
            let v = r.required(obj, key, &what)?;
            r.at(key, |r| r.node(v)).map(Box::new)
        };
        let node = match op {
            "call" => {
                self.only(obj, &["op", "function", "input", "output"], &what)?;
                Node::Call(self.call(obj, &what)?)
            }
            "seq" => {
                self.only(obj, &["op", "steps"], &what)?;
                Node::Seq { steps: self.nodes_at(self.required(obj, "steps", &what)?, "steps")? }
            }
            "if" => {
                self.only(obj, &["op", "test", "then", "else"], &what)?;
                let test = self.required(obj, "test", &what)?;
                let test = self.at("test", |r| r.cond(test))?;
                let then = child(self, "then")?;
                let otherwise = match obj.get("else") {
                    Some(v) => Some(Box::new(self.at("else", |r| r.node(v))?)),
                    None => None,
                };
                Node::If { test, then, otherwise }
            }
            "while" | "do_while" => {
                self.only(obj, &["op", "test", "body"], &what)?;
                let test = self.required(obj, "test", &what)?;
                let test = self.at("test", |r| r.cond(test))?;
                let body = child(self, "body")?;
                if op == "while" { Node::While { test, body } } else { Node::DoWhile { body, test } }
            }
            "repeat" => {
                self.only(obj, &["op", "times", "body"], &what)?;
                let times = self.uint(self.required(obj, "times", &what)?, "times", 0, u32::MAX as u64)? as u32;
                Node::Repeat { times, body: child(self, "body")? }
            }
            "try" => {
                self.only(obj, &["op", "body", "catch", "finally"], &what)?;
                let body = child(self, "body")?;
                let catch = match obj.get("catch") {
                    Some(v) => self.at("catch", |r| r.catches(v))?,
                    None => Vec::new(),
                };
                let finally = match obj.get("finally") {
                    Some(v) => Some(Box::new(self.at("finally", |r| r.node(v))?)),
                    None => None,
                };
                if catch.is_empty() && finally.is_none() {
                    return Err(self.error("`try` needs `catch` handlers, `finally`, or both"));
                }
                Node::Try { body, catch, finally }
            }
            "retry" => {
                self.only(obj, &["op", "body", "attempts", "base_ms", "rate", "cap_ms", "jitter", "kinds"], &what)?;
                let attempts = self.uint(self.required(obj, "attempts", &what)?, "attempts", 1, MAX_FAN as u64)? as u32;
                let base_ms = match obj.get("base_ms") {
                    Some(v) => self.uint(v, "base_ms", 0, MAX_WAIT_MS)?,
                    None => 100,
                };
                let rate = match obj.get("rate") {
                    Some(v) => self.at("rate", |r| match v.as_f64() {
                        Some(x) if (1.0..=10.0).contains(&x) => Ok(x),
                        _ => Err(r.error(format!("must be a number from 1 to 10, not {}", shown(v)))),
                    })?,
                    None => 2.0,
                };
                let cap_ms = match obj.get("cap_ms") {
                    Some(v) => Some(self.uint(v, "cap_ms", base_ms, MAX_WAIT_MS)?),
                    None => None,
                };
                let jitter = match obj.get("jitter") {
                    Some(v) => self.bool(v, "jitter")?,
                    None => false,
                };
                let kinds = match obj.get("kinds") {
                    Some(v) => self.kinds(v)?,
                    None => Vec::new(),
                };
                Node::Retry(Retry { body: child(self, "body")?, attempts, base_ms, rate, cap_ms, jitter, kinds })
            }
            "let" => {
                self.only(obj, &["op", "vars", "body"], &what)?;
                let vars_v = self.required(obj, "vars", &what)?;
                let vars = self.at("vars", |r| {
                    let m = r.object(vars_v, "`vars`")?;
                    let mut vars = BTreeMap::new();
                    for (name, e) in m {
                        r.at(name, |r| {
                            check_var_name(name).map_err(|why| r.error(why))?;
                            vars.insert(name.clone(), r.expr(e)?);
                            Ok(())
                        })?;
                    }
                    Ok(vars)
                })?;
                self.scopes.push(Scope::Vars(vars.keys().cloned().collect()));
                let body = child(self, "body");
                self.scopes.pop();
                Node::Let { vars, body: body? }
            }
            "mask" => {
                self.only(obj, &["op", "body"], &what)?;
                self.scopes.push(Scope::Mask);
                let body = child(self, "body");
                self.scopes.pop();
                Node::Mask { body: body? }
            }
            "value" => {
                self.only(obj, &["op", "value"], &what)?;
                let v = self.required(obj, "value", &what)?;
                Node::Value { value: self.at("value", |r| r.expr(v))? }
            }
            "parallel" => {
                self.only(obj, &["op", "branches", "fail_fast"], &what)?;
                let branches = self.nodes_at(self.required(obj, "branches", &what)?, "branches")?;
                if branches.is_empty() || branches.len() > MAX_FAN as usize {
                    return Err(self.at("branches", |r| {
                        Err(r.error(format!("must hold 1 to {MAX_FAN} branches, not {}", branches.len())))
                    })?);
                }
                let fail_fast = match obj.get("fail_fast") {
                    Some(v) => self.bool(v, "fail_fast")?,
                    None => false,
                };
                Node::Parallel { branches, fail_fast }
            }
            "map" => {
                self.only(obj, &["op", "items", "body", "max_concurrency", "fail_fast"], &what)?;
                let items = match obj.get("items") {
                    Some(v) => self.json_pointer(v, "items")?,
                    None => String::new(),
                };
                let max_concurrency = match obj.get("max_concurrency") {
                    Some(v) => Some(self.uint(v, "max_concurrency", 1, MAX_FAN as u64)? as u32),
                    None => None,
                };
                let fail_fast = match obj.get("fail_fast") {
                    Some(v) => self.bool(v, "fail_fast")?,
                    None => false,
                };
                Node::Map { items, body: child(self, "body")?, max_concurrency, fail_fast }
            }
            "wait" => {
                self.only(obj, &["op", "ms"], &what)?;
                Node::Wait { ms: self.uint(self.required(obj, "ms", &what)?, "ms", 0, MAX_WAIT_MS)? }
            }
            "await_event" => {
                self.only(obj, &["op", "filter", "timeout_ms"], &what)?;
                let f = self.required(obj, "filter", &what)?;
                let filter = self.at("filter", |r| {
                    serde_json::from_value::<EventFilter>(f.clone())
                        .map_err(|e| r.error(format!("must be an event filter (`type`, `source`, `subject`): {e}")))
                })?;
                let timeout_ms = self.uint(self.required(obj, "timeout_ms", &what)?, "timeout_ms", 1, MAX_WAIT_MS)?;
                Node::AwaitEvent { filter, timeout_ms }
            }
            other => {
                return Err(self.at("op", |r| {
                    Err(r.error(format!("unknown combinator `{other}`; the combinators are {}", list(OPS))))
                })?);
            }
        };
        Ok(node)
    }

    fn nodes_at(&mut self, v: &Value, key: &str) -> Result<Vec<Node>> {
        self.at(key, |r| {
            let items = v
                .as_array()
                .ok_or_else(|| r.error(format!("must be an array of program nodes, not {}", faas_api::json_kind(v))))?;
            let mut out = Vec::with_capacity(items.len().min(MAX_NODES));
            for (i, item) in items.iter().enumerate() {
                out.push(r.at(i, |r| r.node(item))?);
            }
            Ok(out)
        })
    }

    fn call(&mut self, obj: &Map<String, Value>, what: &str) -> Result<Call> {
        let function = self.function_name(self.required(obj, "function", what)?)?;
        let input = match obj.get("input") {
            Some(v) => Some(self.at("input", |r| r.expr(v))?),
            None => None,
        };
        let output = match obj.get("output") {
            Some(v) => Some(self.json_pointer(v, "output")?),
            None => None,
        };
        Ok(Call { function, input, output })
    }

    fn catches(&mut self, v: &Value) -> Result<Vec<Catch>> {
        let items = v
            .as_array()
            .ok_or_else(|| self.error(format!("must be an array of handlers, not {}", faas_api::json_kind(v))))?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.at(i, |r| {
                let obj = r.object(item, "a `catch` handler")?;
                r.only(obj, &["kinds", "error_types", "handler"], "a `catch` handler")?;
                let kinds = match obj.get("kinds") {
                    Some(v) => r.kinds(v)?,
                    None => Vec::new(),
                };
                let error_types = match obj.get("error_types") {
                    Some(v) => r.at("error_types", |r| {
                        let items = v.as_array().ok_or_else(|| {
                            r.error(format!("must be an array of strings, not {}", faas_api::json_kind(v)))
                        })?;
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, t)| {
                                t.as_str().filter(|s| !s.is_empty()).map(str::to_string).ok_or_else(|| {
                                    CompositionError {
                                        path: format!("{}/{i}", r.pointer()),
                                        message: format!("must be a non-empty string, not {}", shown(t)),
                                    }
                                })
                            })
                            .collect()
                    })?,
                    None => Vec::new(),
                };
                let handler = r.required(obj, "handler", "a `catch` handler")?;
                let handler = r.at("handler", |r| r.node(handler))?;
                Ok(Catch { kinds, error_types, handler })
            })?);
        }
        Ok(out)
    }

    fn expr(&mut self, v: &Value) -> Result<Expr> {
        const FORMS: &[&str] = &["pointer", "var", "literal", "object"];
        let obj = self.object(v, "an expression")?;
        let [(form, inner)] = obj.iter().collect::<Vec<_>>()[..] else {
            return Err(self.error(format!("an expression has exactly one member, one of {}", list(FORMS))));
        };
        match form.as_str() {
            "pointer" => Ok(Expr::Pointer(self.json_pointer(inner, "pointer")?)),
            "var" => {
                let name = self.string(inner, "var")?;
                if !self.visible(&name) {
                    return Err(self.at("var", |r| {
                        Err(r.error(format!("no variable `{name}` is in scope here (declare it with an enclosing `let`, outside any `mask`)")))
                    })?);
                }
                Ok(Expr::Var(name))
            }
            "literal" => Ok(Expr::Literal(inner.clone())),
            "object" => self.at("object", |r| {
                let m = r.object(inner, "`object`")?;
                let mut out = BTreeMap::new();
                for (k, e) in m {
                    out.insert(k.clone(), r.at(k, |r| r.expr(e))?);
                }
                Ok(Expr::Object(out))
            }),
            other => Err(CompositionError {
                path: format!("{}/{}", self.pointer(), other.replace('~', "~0").replace('/', "~1")),
                message: format!("unknown expression `{other}`; the expressions are {}", list(FORMS)),
            }),
        }
    }

    fn cond(&mut self, v: &Value) -> Result<Cond> {
        const FORMS: &[&str] = &["compare", "exists", "truthy", "not", "all", "any", "call"];
        let obj = self.object(v, "a condition")?;
        let [(form, inner)] = obj.iter().collect::<Vec<_>>()[..] else {
            return Err(self.error(format!("a condition has exactly one member, one of {}", list(FORMS))));
        };
        match form.as_str() {
            "compare" => self.at("compare", |r| {
                let c = r.object(inner, "`compare`")?;
                r.only(c, &["pointer", "op", "value"], "`compare`")?;
                let pointer = r.required(c, "pointer", "`compare`")?;
                let pointer = r.json_pointer(pointer, "pointer")?;
                let op_v = r.required(c, "op", "`compare`")?;
                let op = r.at("op", |r| {
                    let names: Vec<&str> = CompareOp::ALL.iter().map(|o| o.as_str()).collect();
                    op_v.as_str().and_then(|s| CompareOp::ALL.into_iter().find(|o| o.as_str() == s)).ok_or_else(|| {
                        r.error(format!("{} is not a comparison; they are {}", shown(op_v), list(&names)))
                    })
                })?;
                let value = r.required(c, "value", "`compare`")?.clone();
                Ok(Cond::Compare { pointer, op, value })
            }),
            "exists" => Ok(Cond::Exists(self.json_pointer(inner, "exists")?)),
            "truthy" => Ok(Cond::Truthy(self.json_pointer(inner, "truthy")?)),
            "not" => Ok(Cond::Not(Box::new(self.at("not", |r| r.cond(inner))?))),
            "all" | "any" => self.at(form, |r| {
                let items = inner.as_array().ok_or_else(|| {
                    r.error(format!("must be an array of conditions, not {}", faas_api::json_kind(inner)))
                })?;
                let mut out = Vec::with_capacity(items.len());
                for (i, c) in items.iter().enumerate() {
                    out.push(r.at(i, |r| r.cond(c))?);
                }
                Ok(if form == "all" { Cond::All(out) } else { Cond::Any(out) })
            }),
            "call" => self.at("call", |r| {
                let c = r.object(inner, "`call`")?;
                r.only(c, &["function", "input"], "a condition's `call`")?;
                let call = r.call(c, "a condition's `call`")?;
                Ok(Cond::Call(call))
            }),
            other => Err(CompositionError {
                path: format!("{}/{}", self.pointer(), other.replace('~', "~0").replace('/', "~1")),
                message: format!("unknown condition `{other}`; the conditions are {}", list(FORMS)),
            }),
        }
    }
}

const OPS: &[&str] = &[
    "call",
    "seq",
    "if",
    "while",
    "do_while",
    "repeat",
    "try",
    "retry",
    "let",
    "mask",
    "value",
    "parallel",
    "map",
    "wait",
    "await_event",
];

/// Whether `p` is a JSON Pointer (RFC 6901): empty, or `/`-separated tokens where `~` is only
/// `~0` or `~1`.
pub(crate) fn check_pointer(p: &str) -> std::result::Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!("{} is not a JSON Pointer: it must be empty or start with `/`", shown_str(p)));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("{} is not a JSON Pointer: `~` must be followed by `0` or `1`", shown_str(p)));
        }
    }
    Ok(())
}

fn check_var_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > MAX_VAR_NAME {
        return Err(format!(
            "{} is not a variable name (a letter or `_`, then letters, digits or `_`; at most {MAX_VAR_NAME})",
            shown_str(name)
        ));
    }
    Ok(())
}

/// A value for an error message, cut to a readable length.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => shown_str(s),
        Value::Array(_) | Value::Object(_) => faas_api::json_kind(v).to_string(),
        other => format!("`{other}`"),
    }
}

fn shown_str(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("`{}{more}`", cut.escape_debug())
}

fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Reads the JSON form from bytes.
pub(crate) fn composition(bytes: &[u8]) -> Result<Composition> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(CompositionError {
            path: String::new(),
            message: format!("the composition is {} bytes; the limit is {MAX_JSON_BYTES}", bytes.len()),
        });
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| CompositionError { path: String::new(), message: format!("not JSON: {e}") })?;
    from_value(&v)
}

/// Reads the JSON form from a parsed value.
pub(crate) fn from_value(v: &Value) -> Result<Composition> {
    let mut r = Reader { path: Vec::new(), nodes: 0, scopes: Vec::new() };
    let obj = r.object(v, "a composition")?;
    r.only(obj, &["faas", "description", "program"], "a composition")?;
    match obj.get("faas") {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(other) => {
            return Err(r.at("faas", |r| Err(r.error(format!("must be `{FORMAT}`, not {}", shown(other)))))?);
        }
        None => return Err(r.error(format!("a composition needs `\"faas\": \"{FORMAT}\"`"))),
    }
    let description = match obj.get("description") {
        Some(v) => Some(r.string(v, "description")?),
        None => None,
    };
    let program = r.required(obj, "program", "a composition")?;
    let program = r.at("program", |r| r.node(program))?;
    Ok(Composition { faas: FORMAT, description, program })
}
