//! The program compiled to one pure state machine: [`advance`] takes a run's continuation and
//! what just happened (the run started, a step answered, a timer fired) and gives the next
//! continuation and the one thing to do (invoke a function, sleep, wait for an event, finish).
//! It runs no user code and does no I/O, so every way of running a composition (the durable
//! conductor, express mode, a test) drives the same machine.
//!
//! The continuation ([`State`]) is a stack of frames over the compiled program plus the current
//! value and the `let` variables: its size follows the program's nesting, not the number of
//! steps run, so a loop of 10,000 iterations ends with the continuation it had at the tenth.
//!
//! ```
//! use faas_composition::machine::{drive, Program};
//! use faas_composition::*;
//! use serde_json::json;
//! let program = Program::compile(&seq([call("double"), when(at("").gt(10), call("double"))]));
//! let out = drive(&program, json!(3), |f, input| {
//!     assert_eq!(f, "double");
//!     Ok(json!(input.as_i64().unwrap() * 2))
//! });
//! assert_eq!(out.result.unwrap(), json!(6)); // 3 → 6; 6 is not above 10
//! assert_eq!(out.invocations, ["double"]);
//! ```

use std::collections::BTreeMap;

use faas_api::{Error, ErrorKind, EventFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ast::{Call, CompareOp, Cond, Expr, Node, Retry};

/// Most operations one [`advance`] runs without handing out an action.
pub const MAX_PURE_OPS: u32 = 100_000;

/// Index of an operation in a compiled [`Program`].
pub type OpId = u32;

/// One node of the program, its children replaced by their indices.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Call(Call),
    Seq(Vec<OpId>),
    If { test: Cond, then: OpId, otherwise: Option<OpId> },
    While { test: Cond, body: OpId, test_first: bool },
    Repeat { times: u32, body: OpId },
    Try { body: OpId, catch: Vec<(Vec<ErrorKind>, Vec<String>, OpId)>, finally: Option<OpId> },
    Retry { body: OpId, settings: Retry },
    Let { vars: BTreeMap<String, Expr>, body: OpId },
    Mask { body: OpId },
    Value(Expr),
    Parallel { branches: Vec<OpId>, fail_fast: bool },
    Map { items: String, body: OpId, fail_fast: bool },
    Wait(u64),
    AwaitEvent { filter: EventFilter, timeout_ms: u64 },
}

/// A program compiled for [`advance`]: its nodes in one array, the root first.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    ops: Vec<Op>,
}

impl Program {
    /// Compiles a program (one already read by [`crate::Composition::from_json`], or built with
    /// the DSL).
    pub fn compile(root: &Node) -> Program {
        let mut program = Program { ops: Vec::new() };
        program.add(root);
        program
    }

    fn add(&mut self, node: &Node) -> OpId {
        let id = self.ops.len() as OpId;
        self.ops.push(Op::Seq(Vec::new())); // reserved, filled below
        let op = match node {
            Node::Call(c) => Op::Call(c.clone()),
            Node::Seq { steps } => Op::Seq(steps.iter().map(|s| self.add(s)).collect()),
            Node::If { test, then, otherwise } => {
                let then = self.add(then);
                let otherwise = otherwise.as_deref().map(|o| self.add(o));
                Op::If { test: test.clone(), then, otherwise }
            }
            Node::While { test, body } => Op::While { test: test.clone(), body: self.add(body), test_first: true },
            Node::DoWhile { body, test } => Op::While { test: test.clone(), body: self.add(body), test_first: false },
            Node::Repeat { times, body } => Op::Repeat { times: *times, body: self.add(body) },
            Node::Try { body, catch, finally } => {
                let body = self.add(body);
                let catch =
                    catch.iter().map(|c| (c.kinds.clone(), c.error_types.clone(), self.add(&c.handler))).collect();
                let finally = finally.as_deref().map(|f| self.add(f));
                Op::Try { body, catch, finally }
            }
            Node::Retry(r) => {
                let body = self.add(&r.body);
                let settings = Retry { body: Box::new(Node::Seq { steps: vec![] }), ..r.clone() };
                Op::Retry { body, settings }
            }
            Node::Let { vars, body } => Op::Let { vars: vars.clone(), body: self.add(body) },
            Node::Mask { body } => Op::Mask { body: self.add(body) },
            Node::Value { value } => Op::Value(value.clone()),
            Node::Parallel { branches, fail_fast } => {
                Op::Parallel { branches: branches.iter().map(|b| self.add(b)).collect(), fail_fast: *fail_fast }
            }
            Node::Map { items, body, fail_fast, .. } => {
                Op::Map { items: items.clone(), body: self.add(body), fail_fast: *fail_fast }
            }
            Node::Wait { ms } => Op::Wait(*ms),
            Node::AwaitEvent { filter, timeout_ms } => {
                Op::AwaitEvent { filter: filter.clone(), timeout_ms: *timeout_ms }
            }
        };
        self.ops[id as usize] = op;
        id
    }

    fn op(&self, id: OpId) -> &Op {
        &self.ops[id as usize]
    }
}

/// What happened to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run starts with this input. `seed` makes retry jitter reproducible (the run's id
    /// hashed, for one).
    Start {
        /// The composition's input.
        input: Value,
        /// The jitter seed.
        seed: u64,
    },
    /// The invocation or the awaited event asked for answered (an awaited event that did not
    /// come is a `timeout` error).
    Answer(Result<Value, Error>),
    /// The sleep asked for is over.
    Timer,
}

/// The one thing to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Invoke `function` with `input`; answer with [`Event::Answer`].
    Invoke {
        /// The function's logical name.
        function: String,
        /// What to send it.
        input: Value,
    },
    /// Sleep `ms` milliseconds (a durable timer); answer with [`Event::Timer`].
    Sleep {
        /// How long.
        ms: u64,
    },
    /// Wait for an event matching `filter`; answer with [`Event::Answer`] (the event as JSON), or
    /// a `timeout` error after `timeout_ms`.
    AwaitEvent {
        /// The event to wait for.
        filter: EventFilter,
        /// How long.
        timeout_ms: u64,
    },
    /// The run is over with this result.
    Finish(Result<Value, Error>),
}

/// A run's continuation: everything [`advance`] needs to go on, and nothing else.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    frames: Vec<Frame>,
    value: Value,
    scopes: Vec<Scope>,
    seed: u64,
    /// Invocations asked for so far (for ids that stay unique across a run, `exec/<run>/<seq>`).
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Scope {
    Vars(BTreeMap<String, Value>),
    Mask,
}

/// What a frame waits for, and what it does with the outcome of its child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Frame {
    /// A call's answer.
    Call { op: OpId },
    /// Step `next` of a seq comes after the current one.
    Seq { op: OpId, next: u32 },
    /// The calls of a condition, answered one after another (`done` of them so far).
    Test { op: OpId, answers: Vec<bool> },
    /// The branch of an `if` runs; its outcome is the `if`'s.
    Branch,
    /// A loop's body runs (`count` runs so far).
    Loop { op: OpId, count: u32 },
    /// The body (`stage` 0), a handler (1) or the finally block (2) of a `try`; `outcome` is
    /// what the finally block hands on.
    Try { op: OpId, stage: u8, outcome: Option<Outcome> },
    /// The body of a `retry`, on attempt `attempt`, with the input it started from.
    Retry { op: OpId, attempt: u32, input: Value, sleeping: bool },
    /// A `let` or `mask` body; its scope is dropped at the end.
    Scope,
    /// Branches or items run one after another; `results` so far, `errors` held for the end.
    Fan { op: OpId, inputs: Vec<Value>, results: Vec<Value>, error: Option<Error> },
    /// A `wait`'s timer or an awaited event.
    Pause { event: bool },
}

type Outcome = Result<Value, Error>;

/// Where the interpreter is between two frames.
enum Flow {
    Enter(OpId),
    Return(Outcome),
}

/// The next continuation and action for `event`. A run starts with [`Event::Start`] on a
/// default [`State`]; each later event answers the action the previous call gave.
///
/// An event that answers nothing asked for (an answer while no step runs, a timer while none is
/// set) is refused with a `bad_input` error and changes nothing.
pub fn advance(program: &Program, state: State, event: Event) -> Result<(State, Action), Error> {
    check(program, &state)?;
    let mut m = Machine { program, state };
    let flow = match event {
        Event::Start { input, seed } => {
            if !m.state.frames.is_empty() {
                return Err(Error::bad_input("composition: the run has already started"));
            }
            m.state = State { value: input, seed, ..State::default() };
            Flow::Enter(0)
        }
        Event::Answer(answer) => match m.state.frames.last() {
            Some(Frame::Call { .. } | Frame::Test { .. } | Frame::Pause { event: true }) => match m.answered(answer) {
                Ok(flow) => flow,
                Err(action) => return Ok((m.state, action)),
            },
            _ => return Err(Error::bad_input("composition: an answer came while the run waits for none")),
        },
        Event::Timer => match m.state.frames.last() {
            Some(Frame::Pause { event: false }) => {
                m.state.frames.pop();
                Flow::Return(Ok(m.state.value.clone()))
            }
            Some(Frame::Retry { sleeping: true, .. }) => m.retry_again(),
            _ => return Err(Error::bad_input("composition: a timer fired while the run waits for none")),
        },
    };
    let action = m.run(flow);
    Ok((m.state, action))
}

/// Whether `state` can be a continuation of `program`: every frame on an operation of its kind,
/// its counters in range, one scope per scope frame. A continuation read back from a store may be
/// damaged or belong to another version of the program; it is refused, never trusted.
fn check(program: &Program, state: &State) -> Result<(), Error> {
    let op = |id: OpId| program.ops.get(id as usize);
    let ok = state.frames.iter().all(|frame| match frame {
        Frame::Call { op: id } => matches!(op(*id), Some(Op::Call(_))),
        Frame::Seq { op: id, next } => matches!(op(*id), Some(Op::Seq(steps)) if (*next as usize) <= steps.len()),
        Frame::Test { op: id, answers } => match op(*id) {
            Some(Op::If { test, .. } | Op::While { test, .. }) => answers.len() < calls_of(test).len(),
            _ => false,
        },
        Frame::Loop { op: id, .. } => matches!(op(*id), Some(Op::While { .. } | Op::Repeat { .. })),
        Frame::Try { op: id, stage, outcome } => {
            matches!(op(*id), Some(Op::Try { .. })) && *stage <= 2 && (*stage == 2) == outcome.is_some()
        }
        Frame::Retry { op: id, .. } => matches!(op(*id), Some(Op::Retry { .. })),
        Frame::Fan { op: id, inputs, results, .. } => {
            results.len() < inputs.len()
                && match op(*id) {
                    Some(Op::Parallel { branches, .. }) => branches.len() == inputs.len(),
                    Some(Op::Map { .. }) => true,
                    _ => false,
                }
        }
        Frame::Branch | Frame::Scope | Frame::Pause { .. } => true,
    });
    let scope_frames = state.frames.iter().filter(|f| matches!(f, Frame::Scope)).count();
    if ok && scope_frames == state.scopes.len() {
        Ok(())
    } else {
        Err(Error::bad_input(
            "composition: the continuation does not belong to this program (damaged, or from another version of it)",
        ))
    }
}

struct Machine<'p> {
    program: &'p Program,
    state: State,
}

impl Machine<'_> {
    /// Runs until the machine needs the outside world, or fails the run when it has gone
    /// [`MAX_PURE_OPS`] operations without needing it (a loop with no step in it never ends).
    fn run(&mut self, mut flow: Flow) -> Action {
        let mut budget = MAX_PURE_OPS;
        loop {
            budget -= 1;
            if budget == 0 {
                self.state.frames.clear();
                self.state.scopes.clear();
                return Action::Finish(Err(Error::bad_input(format!(
                    "composition: {MAX_PURE_OPS} operations ran without a step, a timer or an event; \
                     a loop with none of those in its body never ends"
                ))));
            }
            flow = match flow {
                Flow::Enter(op) => match self.enter(op) {
                    Ok(next) => next,
                    Err(action) => return action,
                },
                Flow::Return(outcome) => match self.state.frames.pop() {
                    None => return Action::Finish(outcome),
                    Some(frame) => match self.resume(frame, outcome) {
                        Ok(next) => next,
                        Err(action) => return action,
                    },
                },
            };
        }
    }

    fn value(&self) -> &Value {
        &self.state.value
    }

    fn invoke(&mut self, function: &str, input: Value) -> Action {
        self.state.seq += 1;
        Action::Invoke { function: function.to_string(), input }
    }

    /// Starts `op` on the current value: the next flow, or the action to hand out. The value is
    /// copied only where an operation keeps a copy (a value can be megabytes of JSON).
    fn enter(&mut self, id: OpId) -> Result<Flow, Action> {
        let program = self.program;
        match program.op(id) {
            Op::Call(call) => match self.input(call, self.value()) {
                Ok(input) => {
                    self.state.frames.push(Frame::Call { op: id });
                    Err(self.invoke(&call.function, input))
                }
                Err(e) => Ok(Flow::Return(Err(e))),
            },
            Op::Seq(steps) => match steps.first() {
                None => Ok(Flow::Return(Ok(self.value().clone()))),
                Some(first) => {
                    self.state.frames.push(Frame::Seq { op: id, next: 1 });
                    Ok(Flow::Enter(*first))
                }
            },
            Op::If { .. } | Op::While { test_first: true, .. } => self.test(id, Vec::new()),
            Op::While { body, test_first: false, .. } => {
                self.state.frames.push(Frame::Loop { op: id, count: 0 });
                Ok(Flow::Enter(*body))
            }
            Op::Repeat { times, body } => {
                if *times == 0 {
                    return Ok(Flow::Return(Ok(self.value().clone())));
                }
                self.state.frames.push(Frame::Loop { op: id, count: 0 });
                Ok(Flow::Enter(*body))
            }
            Op::Try { body, .. } => {
                self.state.frames.push(Frame::Try { op: id, stage: 0, outcome: None });
                Ok(Flow::Enter(*body))
            }
            Op::Retry { body, .. } => {
                let input = self.value().clone();
                self.state.frames.push(Frame::Retry { op: id, attempt: 1, input, sleeping: false });
                Ok(Flow::Enter(*body))
            }
            Op::Let { vars, body } => {
                let mut values = BTreeMap::new();
                for (name, e) in vars {
                    match self.eval(e, self.value()) {
                        Ok(v) => {
                            values.insert(name.clone(), v);
                        }
                        Err(e) => return Ok(Flow::Return(Err(e))),
                    }
                }
                self.state.scopes.push(Scope::Vars(values));
                self.state.frames.push(Frame::Scope);
                Ok(Flow::Enter(*body))
            }
            Op::Mask { body } => {
                self.state.scopes.push(Scope::Mask);
                self.state.frames.push(Frame::Scope);
                Ok(Flow::Enter(*body))
            }
            Op::Value(e) => Ok(Flow::Return(self.eval(e, self.value()))),
            Op::Parallel { branches, .. } => {
                let inputs = vec![self.value().clone(); branches.len()];
                self.fan(id, inputs)
            }
            Op::Map { items, .. } => match self.at(items, self.value(), "items") {
                Ok(Value::Array(inputs)) => self.fan(id, inputs),
                Ok(other) => Ok(Flow::Return(Err(Error::bad_input(format!(
                    "composition: `map` items at `{items}` must be an array, not {}",
                    faas_api::json_kind(&other)
                ))))),
                Err(e) => Ok(Flow::Return(Err(e))),
            },
            Op::Wait(ms) => {
                self.state.frames.push(Frame::Pause { event: false });
                Err(Action::Sleep { ms: *ms })
            }
            Op::AwaitEvent { filter, timeout_ms } => {
                self.state.frames.push(Frame::Pause { event: true });
                Err(Action::AwaitEvent { filter: filter.clone(), timeout_ms: *timeout_ms })
            }
        }
    }

    /// Continues `frame` with the outcome of its child.
    fn resume(&mut self, frame: Frame, outcome: Outcome) -> Result<Flow, Action> {
        let program = self.program;
        // A `seq` going on to its next step keeps the value only as the current one: moved.
        if let (Frame::Seq { op, next }, Ok(_)) = (&frame, &outcome) {
            let Op::Seq(steps) = program.op(*op) else { unreachable!("a seq frame on a seq") };
            if let Some(step) = steps.get(*next as usize) {
                let (op, next, step) = (*op, *next, *step);
                if let Ok(v) = outcome {
                    self.state.value = v;
                }
                self.state.frames.push(Frame::Seq { op, next: next + 1 });
                return Ok(Flow::Enter(step));
            }
        }
        if let Ok(v) = &outcome {
            self.state.value = v.clone();
        }
        match frame {
            Frame::Call { .. } | Frame::Test { .. } | Frame::Pause { .. } => {
                unreachable!("answered frames are resumed by `answered`")
            }
            Frame::Branch => Ok(Flow::Return(outcome)),
            Frame::Seq { op, next } => {
                let Op::Seq(steps) = self.program.op(op) else { unreachable!("a seq frame on a seq") };
                match (outcome, steps.get(next as usize)) {
                    (Err(e), _) => Ok(Flow::Return(Err(e))),
                    (Ok(v), None) => Ok(Flow::Return(Ok(v))),
                    (Ok(_), Some(step)) => {
                        let step = *step;
                        self.state.frames.push(Frame::Seq { op, next: next + 1 });
                        Ok(Flow::Enter(step))
                    }
                }
            }
            Frame::Loop { op, count } => {
                if outcome.is_err() {
                    return Ok(Flow::Return(outcome));
                }
                let count = count.saturating_add(1);
                match program.op(op) {
                    Op::Repeat { times, body } if count < *times => {
                        self.state.frames.push(Frame::Loop { op, count });
                        Ok(Flow::Enter(*body))
                    }
                    Op::Repeat { .. } => Ok(Flow::Return(outcome)),
                    Op::While { .. } => self.test(op, Vec::new()),
                    _ => unreachable!("a loop frame on a loop"),
                }
            }
            Frame::Try { op, stage, outcome: held } => {
                let Op::Try { catch, finally, .. } = program.op(op) else { unreachable!("a try frame") };
                match stage {
                    0 | 1 => {
                        if let (0, Err(e)) = (stage, &outcome) {
                            let handler = catch.iter().find(|(kinds, types, _)| {
                                (kinds.is_empty() && types.is_empty())
                                    || kinds.contains(&e.kind())
                                    || types.iter().any(|t| t == e.error_type())
                            });
                            if let Some((_, _, handler)) = handler {
                                self.state.value = error_json(e);
                                self.state.frames.push(Frame::Try { op, stage: 1, outcome: None });
                                return Ok(Flow::Enter(*handler));
                            }
                        }
                        match finally {
                            Some(f) => {
                                self.state.value = match &outcome {
                                    Ok(v) => v.clone(),
                                    Err(e) => error_json(e),
                                };
                                self.state.frames.push(Frame::Try { op, stage: 2, outcome: Some(outcome) });
                                Ok(Flow::Enter(*f))
                            }
                            None => Ok(Flow::Return(outcome)),
                        }
                    }
                    _ => {
                        // After the finally block: its error wins, its value does not.
                        let held = held.expect("the finally stage holds the outcome");
                        let next = match outcome {
                            Err(e) => Err(e),
                            Ok(_) => held,
                        };
                        if let Ok(v) = &next {
                            self.state.value = v.clone();
                        }
                        Ok(Flow::Return(next))
                    }
                }
            }
            Frame::Retry { op, attempt, input, .. } => {
                let Op::Retry { settings, .. } = program.op(op) else { unreachable!("a retry frame") };
                let Err(e) = &outcome else { return Ok(Flow::Return(outcome)) };
                let retried = if settings.kinds.is_empty() {
                    e.kind() != ErrorKind::BadInput
                } else {
                    settings.kinds.contains(&e.kind())
                };
                if !retried || attempt >= settings.attempts {
                    return Ok(Flow::Return(outcome));
                }
                let ms = backoff(settings, attempt, self.state.seed);
                self.state.frames.push(Frame::Retry { op, attempt: attempt + 1, input, sleeping: true });
                Err(Action::Sleep { ms })
            }
            Frame::Scope => {
                self.state.scopes.pop();
                Ok(Flow::Return(outcome))
            }
            Frame::Fan { op, inputs, mut results, mut error } => {
                let fail_fast = match self.program.op(op) {
                    Op::Parallel { fail_fast, .. } | Op::Map { fail_fast, .. } => *fail_fast,
                    _ => unreachable!("a fan frame"),
                };
                match outcome {
                    Ok(v) => results.push(v),
                    Err(e) if fail_fast => return Ok(Flow::Return(Err(e))),
                    Err(e) => {
                        results.push(Value::Null);
                        error.get_or_insert(e);
                    }
                }
                self.next_of_fan(op, inputs, results, error)
            }
        }
    }

    /// The answer to the call, condition call or awaited event on top of the stack.
    fn answered(&mut self, answer: Outcome) -> Result<Flow, Action> {
        Ok(match self.state.frames.pop().expect("checked by advance") {
            Frame::Call { op } => {
                let Op::Call(call) = self.program.op(op) else { unreachable!("a call frame") };
                match (answer, &call.output) {
                    (Err(e), _) => Flow::Return(Err(e)),
                    (Ok(v), None) => Flow::Return(Ok(v)),
                    (Ok(v), Some(p)) => Flow::Return(place(self.value().clone(), p, v)),
                }
            }
            Frame::Test { op, mut answers } => match answer {
                Err(e) => Flow::Return(Err(e)),
                Ok(v) => match v.get("value").and_then(Value::as_bool) {
                    Some(b) => {
                        answers.push(b);
                        return self.test(op, answers);
                    }
                    None => Flow::Return(Err(Error::bad_input(format!(
                        "composition: a condition's function must answer {{\"value\": true|false}}, not {}",
                        cut(&v.to_string())
                    )))),
                },
            },
            Frame::Pause { .. } => Flow::Return(answer),
            _ => unreachable!("checked by advance"),
        })
    }

    /// Evaluates the test of `op` once every call in it has answered (`answers`, in order).
    fn test(&mut self, op: OpId, answers: Vec<bool>) -> Result<Flow, Action> {
        let program = self.program;
        let test = match program.op(op) {
            Op::If { test, .. } | Op::While { test, .. } => test,
            _ => unreachable!("a test on a test"),
        };
        let calls = calls_of(test);
        if let Some(call) = calls.get(answers.len()) {
            let value = self.value().clone();
            let input = match self.input(call, &value) {
                Ok(i) => i,
                Err(e) => return Ok(Flow::Return(Err(e))),
            };
            let function = call.function.clone();
            self.state.frames.push(Frame::Test { op, answers });
            return Err(self.invoke(&function, input));
        }
        let holds = holds(test, self.value(), &mut answers.into_iter());
        Ok(match program.op(op) {
            Op::If { then, otherwise, .. } => match (holds, otherwise) {
                (true, _) => {
                    self.state.frames.push(Frame::Branch);
                    Flow::Enter(*then)
                }
                (false, Some(o)) => {
                    self.state.frames.push(Frame::Branch);
                    Flow::Enter(*o)
                }
                (false, None) => Flow::Return(Ok(self.value().clone())),
            },
            Op::While { body, .. } if holds => {
                self.state.frames.push(Frame::Loop { op, count: 0 });
                Flow::Enter(*body)
            }
            _ => Flow::Return(Ok(self.value().clone())),
        })
    }

    fn retry_again(&mut self) -> Flow {
        let Some(Frame::Retry { op, attempt, input, .. }) = self.state.frames.pop() else { unreachable!("checked") };
        let Op::Retry { body, .. } = self.program.op(op) else { unreachable!("a retry frame") };
        let body = *body;
        self.state.value = input.clone();
        self.state.frames.push(Frame::Retry { op, attempt, input, sleeping: false });
        Flow::Enter(body)
    }

    fn fan(&mut self, op: OpId, inputs: Vec<Value>) -> Result<Flow, Action> {
        self.next_of_fan(op, inputs, Vec::new(), None)
    }

    /// Runs the next branch or item, or ends the fan with the array of results.
    fn next_of_fan(
        &mut self,
        op: OpId,
        inputs: Vec<Value>,
        results: Vec<Value>,
        error: Option<Error>,
    ) -> Result<Flow, Action> {
        let i = results.len();
        if i == inputs.len() {
            return Ok(Flow::Return(match error {
                Some(e) => Err(e),
                None => Ok(Value::Array(results)),
            }));
        }
        let child = match self.program.op(op) {
            Op::Parallel { branches, .. } => branches[i],
            Op::Map { body, .. } => *body,
            _ => unreachable!("a fan"),
        };
        self.state.value = inputs[i].clone();
        self.state.frames.push(Frame::Fan { op, inputs, results, error });
        Ok(Flow::Enter(child))
    }

    /// A call's input: its expression on the current value, or the value itself.
    fn input(&self, call: &Call, value: &Value) -> Result<Value, Error> {
        match &call.input {
            Some(e) => self.eval(e, value),
            None => Ok(value.clone()),
        }
    }

    fn eval(&self, e: &Expr, value: &Value) -> Result<Value, Error> {
        match e {
            Expr::Pointer(p) => self.at(p, value, "pointer"),
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Var(name) => self
                .var(name)
                .cloned()
                .ok_or_else(|| Error::bad_input(format!("composition: no variable `{name}` is in scope"))),
            Expr::Object(members) => {
                let mut out = serde_json::Map::new();
                for (k, e) in members {
                    out.insert(k.clone(), self.eval(e, value)?);
                }
                Ok(Value::Object(out))
            }
        }
    }

    fn at(&self, p: &str, value: &Value, what: &str) -> Result<Value, Error> {
        value.pointer(p).cloned().ok_or_else(|| {
            Error::bad_input(format!("composition: no value at `{p}` ({what}) in {}", cut(&value.to_string())))
        })
    }

    fn var(&self, name: &str) -> Option<&Value> {
        for scope in self.state.scopes.iter().rev() {
            match scope {
                Scope::Vars(vars) => {
                    if let Some(v) = vars.get(name) {
                        return Some(v);
                    }
                }
                Scope::Mask => return None,
            }
        }
        None
    }
}

/// The calls of a condition, left to right: each runs, in this order, before it is evaluated.
fn calls_of(c: &Cond) -> Vec<&Call> {
    match c {
        Cond::Call(call) => vec![call],
        Cond::Not(inner) => calls_of(inner),
        Cond::All(cs) | Cond::Any(cs) => cs.iter().flat_map(calls_of).collect(),
        Cond::Compare { .. } | Cond::Exists(_) | Cond::Truthy(_) => Vec::new(),
    }
}

fn holds(c: &Cond, value: &Value, answers: &mut std::vec::IntoIter<bool>) -> bool {
    match c {
        Cond::Call(_) => answers.next().unwrap_or(false),
        Cond::Not(inner) => !holds(inner, value, answers),
        // Every sub-condition is evaluated (no short cut), so the answers are taken in order.
        Cond::All(cs) => cs.iter().map(|c| holds(c, value, answers)).collect::<Vec<_>>().into_iter().all(|b| b),
        Cond::Any(cs) => cs.iter().map(|c| holds(c, value, answers)).collect::<Vec<_>>().into_iter().any(|b| b),
        Cond::Exists(p) => value.pointer(p).is_some(),
        Cond::Truthy(p) => value.pointer(p).is_some_and(truthy),
        Cond::Compare { pointer, op, value: right } => match value.pointer(pointer) {
            None => *op == CompareOp::Ne,
            Some(left) => compare(left, *op, right),
        },
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare(left: &Value, op: CompareOp, right: &Value) -> bool {
    use std::cmp::Ordering;
    let order = match (left, right) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64().zip(b.as_f64()).and_then(|(x, y)| x.partial_cmp(&y)),
        },
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        CompareOp::Eq => order.map_or(left == right, |o| o == Ordering::Equal),
        CompareOp::Ne => order.map_or(left != right, |o| o != Ordering::Equal),
        CompareOp::Gt => order == Some(Ordering::Greater),
        CompareOp::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
        CompareOp::Lt => order == Some(Ordering::Less),
        CompareOp::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
    }
}

/// `result` put at `pointer` in `value`; the parent must exist (an object, or an array where
/// the last token is an index or `-`).
fn place(mut value: Value, pointer: &str, result: Value) -> Outcome {
    if pointer.is_empty() {
        return Ok(result);
    }
    let missing = || Error::bad_input(format!("composition: the output `{pointer}` has no parent in the value"));
    // The JSON form only takes pointers starting with `/`; a program built with the DSL is not
    // checked, so anything else is refused here rather than trusted.
    let Some((parent, last)) = pointer.rsplit_once('/').filter(|_| pointer.starts_with('/')) else {
        return Err(missing());
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, result);
        }
        Value::Array(a) if last == "-" => a.push(result),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => a[i] = result,
            _ => return Err(missing()),
        },
        _ => return Err(missing()),
    }
    Ok(value)
}

/// The wait before attempt `attempt + 1`: `base · rate^(attempt-1)`, at most `cap`, scaled by a
/// reproducible fraction of `seed` with jitter.
fn backoff(r: &Retry, attempt: u32, seed: u64) -> u64 {
    let raw = r.base_ms as f64 * r.rate.powi(attempt.saturating_sub(1) as i32);
    let capped = raw.min(r.cap_ms.unwrap_or(crate::MAX_WAIT_MS) as f64).min(crate::MAX_WAIT_MS as f64);
    let ms = if r.jitter {
        // splitmix64 of the seed and the attempt: the same run waits the same, runs differ.
        let mut z = seed.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        capped * ((z >> 11) as f64 / (1u64 << 53) as f64)
    } else {
        capped
    };
    ms as u64
}

/// A portable error as the JSON a `catch` handler or a finally block receives.
fn error_json(e: &Error) -> Value {
    serde_json::from_slice(&e.to_json()).expect("an error is JSON")
}

fn cut(s: &str) -> String {
    if s.chars().count() <= 80 { s.to_string() } else { format!("{}…", s.chars().take(80).collect::<String>()) }
}

/// What [`drive`] saw: the result, the functions invoked in order, the sleeps asked for, and the
/// largest continuation (its JSON size in bytes).
#[derive(Debug)]
pub struct Driven {
    /// The run's result.
    pub result: Result<Value, Error>,
    /// Each invocation's function, in order.
    pub invocations: Vec<String>,
    /// Each sleep, in milliseconds.
    pub sleeps: Vec<u64>,
    /// The largest continuation seen, as JSON bytes.
    pub max_state_bytes: usize,
}

/// Runs `program` to the end on `input`, answering each invocation with `invoke`, firing each
/// timer at once and answering an awaited event with a `timeout` error: the machine's reference
/// driver, for tests and for checking a program by hand.
pub fn drive(program: &Program, input: Value, mut invoke: impl FnMut(&str, Value) -> Result<Value, Error>) -> Driven {
    let mut out = Driven { result: Ok(Value::Null), invocations: Vec::new(), sleeps: Vec::new(), max_state_bytes: 0 };
    let mut event = Event::Start { input, seed: 7 };
    let mut state = State::default();
    loop {
        let (next, action) = advance(program, state, event).expect("the driver answers what was asked");
        out.max_state_bytes = out.max_state_bytes.max(serde_json::to_vec(&next).map_or(0, |b| b.len()));
        state = next;
        event = match action {
            Action::Invoke { function, input } => {
                out.invocations.push(function.clone());
                Event::Answer(invoke(&function, input))
            }
            Action::Sleep { ms } => {
                out.sleeps.push(ms);
                Event::Timer
            }
            Action::AwaitEvent { timeout_ms, .. } => {
                Event::Answer(Err(Error::timeout(format!("no matching event within {timeout_ms} ms"))))
            }
            Action::Finish(result) => {
                out.result = result;
                return out;
            }
        };
    }
}
