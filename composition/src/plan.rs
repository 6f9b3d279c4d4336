//! Where each step of a composition runs: what `faas plan NAME` prints.
//!
//! A composition is deployed as a function of its app, so its app's functions share its artifact
//! and its backend profile: those steps are fused (dispatched inside the composition's own
//! invocation, [`crate::fused`]). A step that is any other function is invoked through the
//! backend while the composition's invocation waits for it; so are the waits of `wait` and of a
//! `retry`'s back-off, which happen inside it. An `await_event` cannot run inside one invocation.
//! The planner lists every step with its JSON path, so each line can be found in the program.
//!
//! ```
//! use faas_composition::plan::{Placement, plan};
//! use faas_composition::*;
//! let program = Composition::new(seq([call("validate"), call("charge").retry(3), call("notify")]));
//! let plan = plan(&program, |f| f != "notify");
//! assert_eq!(plan.steps[0].path, "/program/steps/0");
//! assert_eq!(plan.steps.iter().map(|s| s.placement).collect::<Vec<_>>(), [
//!     Placement::Fused,
//!     Placement::Fused,
//!     Placement::Backoff,
//!     Placement::Invoked,
//! ]);
//! assert!(!plan.one_invocation()); // `notify` is invoked through the backend
//! assert!(plan::plan(&program, |_| true).one_invocation()); // the back-off happens inside it
//! ```

use serde::Serialize;

use crate::Composition;
use crate::ast::{Call, Cond, Node};

/// Where a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// A function of the composition's app: run inside the composition's invocation.
    Fused,
    /// Another function: invoked through the backend while the composition's invocation waits.
    Invoked,
    /// A `wait`, inside the composition's invocation.
    Wait,
    /// A `retry`'s back-off between attempts, inside the composition's invocation.
    Backoff,
    /// An `await_event`: needs the event gateway's conductor; inside one invocation it fails
    /// with `backend_unavailable`.
    AwaitEvent,
}

impl Placement {
    /// Whether a step placed so keeps the composition's invocation running (billed) while
    /// nothing of its own app runs: an invoked step, a wait, an awaited event, a back-off (when
    /// an attempt fails).
    pub fn waits(self) -> bool {
        !matches!(self, Placement::Fused)
    }
}

/// One step of the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Its JSON Pointer in the composition's JSON form (`/program/steps/1`).
    pub path: String,
    /// Where it runs.
    pub placement: Placement,
    /// The function it calls (`call`s and conditions that call), else `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// How long it waits, for a `wait` or a back-off's first wait and an `await_event`'s timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
}

/// Every step of a composition, in the order they appear in the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The steps.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether a run is one invocation of the composition's backend: every call fused, no
    /// awaited event (waits and back-offs, if any, happen inside it).
    pub fn one_invocation(&self) -> bool {
        self.steps.iter().all(|s| !matches!(s.placement, Placement::Invoked | Placement::AwaitEvent))
    }
}

/// What is wrong with an app's compositions before anything is deployed: a step that names a
/// function neither of the app nor in `elsewhere` (the functions already deployed where the
/// app goes), and compositions of the app that call each other in a cycle (which could only
/// end at the nesting bound, [`crate::fused::MAX_NESTING`]). Each problem names the composition,
/// the step's JSON path and the function.
///
/// ```
/// use faas_composition::plan::problems;
/// use faas_composition::*;
/// let app = App::new()
///     .function("validate", |_cx: Context, v: serde_json::Value| async move { Ok::<_, Error>(v) })
///     .composition("checkout", seq([call("validate"), call("chrage")]))
///     .composition("ping", call("pong"))
///     .composition("pong", seq([call("validate"), call("ping")]));
/// let found = problems(&app.manifest(), |f| f == "charge");
/// assert_eq!(found, [
///     "composition `checkout` calls `chrage` (/program/steps/1), which is neither a function of this app nor deployed there",
///     "compositions call each other in a cycle: ping → pong → ping",
/// ]);
/// # use faas_api::{App, Context, Error};
/// ```
pub fn problems(manifest: &faas_api::Manifest, elsewhere: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut calls: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for f in &manifest.functions {
        let Some(json) = &f.composition else { continue };
        let composition = match Composition::from_value(json) {
            Ok(c) => c,
            Err(e) => {
                out.push(format!("composition `{}`: {e}", f.name));
                continue;
            }
        };
        let plan = plan(&composition, |g| manifest.function(g).is_some());
        for step in &plan.steps {
            if let Some(g) = &step.function {
                if step.placement == Placement::Invoked && !elsewhere(g) {
                    out.push(format!(
                        "composition `{}` calls `{g}` ({}), which is neither a function of this app nor deployed there",
                        f.name, step.path
                    ));
                }
                let callee = manifest.function(g);
                if callee.is_some_and(|c| c.composition.is_some()) {
                    calls.entry(f.name.as_str()).or_default().push(g.clone());
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&calls) {
        out.push(format!("compositions call each other in a cycle: {}", cycle.join(" → ")));
    }
    out
}

/// A cycle in the call graph, as the names along it with the first repeated at the end.
fn find_cycle(calls: &std::collections::BTreeMap<&str, Vec<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        calls: &'a std::collections::BTreeMap<&str, Vec<String>>,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in calls.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, calls, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    calls.keys().find_map(|start| visit(start, calls, &mut Vec::new(), &mut done))
}

/// The plan of `composition`, where `in_app` tells which functions belong to its app.
pub fn plan(composition: &Composition, in_app: impl Fn(&str) -> bool) -> Plan {
    let mut walk = Walk { in_app: &in_app, steps: Vec::new() };
    walk.node(&composition.program, "/program".to_string());
    Plan { steps: walk.steps }
}

struct Walk<'a> {
    in_app: &'a dyn Fn(&str) -> bool,
    steps: Vec<Step>,
}

impl Walk<'_> {
    fn push(&mut self, path: String, placement: Placement, function: Option<&str>, ms: Option<u64>) {
        self.steps.push(Step { path, placement, function: function.map(str::to_string), ms });
    }

    fn call(&mut self, call: &Call, path: String) {
        let placement = if (self.in_app)(&call.function) { Placement::Fused } else { Placement::Invoked };
        self.push(path, placement, Some(&call.function), None);
    }

    fn node(&mut self, node: &Node, path: String) {
        match node {
            Node::Call(call) => self.call(call, path),
            Node::Seq { steps } => {
                for (i, step) in steps.iter().enumerate() {
                    self.node(step, format!("{path}/steps/{i}"));
                }
            }
            Node::If { test, then, otherwise } => {
                self.cond(test, format!("{path}/test"));
                self.node(then, format!("{path}/then"));
                if let Some(otherwise) = otherwise {
                    self.node(otherwise, format!("{path}/else"));
                }
            }
            Node::While { test, body } => {
                self.cond(test, format!("{path}/test"));
                self.node(body, format!("{path}/body"));
            }
            Node::DoWhile { body, test } => {
                self.node(body, format!("{path}/body"));
                self.cond(test, format!("{path}/test"));
            }
            Node::Repeat { body, .. } | Node::Let { body, .. } | Node::Mask { body } | Node::Map { body, .. } => {
                self.node(body, format!("{path}/body"))
            }
            Node::Try { body, catch, finally } => {
                self.node(body, format!("{path}/body"));
                for (i, c) in catch.iter().enumerate() {
                    self.node(&c.handler, format!("{path}/catch/{i}/handler"));
                }
                if let Some(finally) = finally {
                    self.node(finally, format!("{path}/finally"));
                }
            }
            Node::Retry(retry) => {
                self.node(&retry.body, format!("{path}/body"));
                if retry.attempts > 1 {
                    self.push(path, Placement::Backoff, None, Some(retry.base_ms));
                }
            }
            Node::Parallel { branches, .. } => {
                for (i, branch) in branches.iter().enumerate() {
                    self.node(branch, format!("{path}/branches/{i}"));
                }
            }
            Node::Value { .. } => {}
            Node::Wait { ms } => self.push(path, Placement::Wait, None, Some(*ms)),
            Node::AwaitEvent { timeout_ms, .. } => self.push(path, Placement::AwaitEvent, None, Some(*timeout_ms)),
        }
    }

    fn cond(&mut self, cond: &Cond, path: String) {
        match cond {
            Cond::Call(call) => self.call(call, format!("{path}/call")),
            Cond::Not(inner) => self.cond(inner, format!("{path}/not")),
            Cond::All(all) => {
                for (i, c) in all.iter().enumerate() {
                    self.cond(c, format!("{path}/all/{i}"));
                }
            }
            Cond::Any(any) => {
                for (i, c) in any.iter().enumerate() {
                    self.cond(c, format!("{path}/any/{i}"));
                }
            }
            Cond::Compare { .. } | Cond::Exists(_) | Cond::Truthy(_) => {}
        }
    }
}
