//! The durable conductor: runs compositions step by step on the gateway's store, so a run survives a
//! crash of the gateway (SIGKILL included) and is shared by every replica of a JetStream-backed gateway.
//!
//! A run is two things in the store:
//! - its **record**, the key `runs/<id>` of the key–value side: what the API shows ([`RunRecord`]:
//!   status, the number `seq` of its current continuation, the current step, the last steps' history,
//!   the result), and the continuation itself, kept beside it and never shown: the machine's state
//!   (`faas_composition::machine::State`, constant in size however long the run) and the action it asked
//!   for. Its program is kept once under `programs/<sha256 of its JSON>`.
//! - a **wake-up**, one pending event with id `exec/<run>/<seq>` and the conductor as its only target,
//!   claimed by the delivery workers like any delivery.
//!
//! One transition, by whichever worker claims the wake-up `n`:
//! 1. read the record. A wake-up older than the record (`n` < `seq`) is a transition already done: the
//!    wake-up `seq` is appended again (the store's de-duplication makes that a no-op when it exists) and
//!    `n` is dropped. A run that ended or was cancelled takes no further step: **a run never goes back**;
//! 2. do the action: invoke the step through the runner SPI (the gateway waits, not a billed function),
//!    or, for a timer not yet due, put the wake-up back with `retry_at` (a durable timer);
//! 3. `advance` the machine with the outcome, then, in **one store commit**
//!    ([`GatewayStore::advance`]): write the record with the next continuation (`seq` = `n` + 1) by a
//!    compare-and-set on the revision read in 1, append the wake-up `n + 1`, acknowledge `n`. On the
//!    embedded log that is one write and one fsync; on JetStream the three, confirmed in that order.
//!
//! A crash at any point leaves the wake-up `n` pending unless the whole commit landed (a torn write or
//! a store doing the parts one by one keeps a prefix of them, in that order): it comes back when its
//! lease expires; either the record had not moved (the step runs again: at-least-once, as for
//! deliveries) or it had (step 1 appends the missing wake-up). When two workers race on one run (a lease that expired
//! under a slow step), the compare-and-set lets exactly one of them move the record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use faas_api::runner::CAUSE_OF_RUN;
use faas_api::{Error, ErrorKind, EventFilter, Payload, TraceContext};
use faas_composition::machine::{advance, Action, Event, Program, State};
use faas_composition::Composition;
use faas_gateway_store::kv::Expect;
use faas_gateway_store::{Advance, Appended, Delivery, GatewayStore, NewEvent, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::registry::RegistryHandle;
use crate::sink::{Caused, SinkClient};

/// The delivery target of continuations: claimed by the delivery workers like any delivery, handed to
/// the conductor instead of a subscription. (`$` cannot start a subscription id.)
pub const CONDUCTOR_TARGET: &str = "$conductor";

/// The `source` of continuation events.
const SOURCE: &str = "/faas/conductor";

/// Steps kept in a run record's history (the record stays small however long the run).
pub const HISTORY: usize = 20;

/// Longest run id accepted.
const MAX_RUN_ID: usize = 128;

/// Why a run could not be started, read or changed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The request is invalid (the composition, the id): HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// A run with this id exists already: HTTP 409.
    #[error("run `{0}` exists already")]
    Exists(String),
    /// The store failed or holds something unreadable: HTTP 503.
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> RunError {
        RunError::Store(format!("the gateway store failed: {e}"))
    }
}

/// What a run is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Steps remain.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled through the API.
    Cancelled,
}

impl RunStatus {
    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }
}

/// One step of a run, as its history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The continuation that ran it.
    pub seq: u64,
    /// The function invoked (or `wait` for a timer).
    pub function: String,
    /// `ok`, or the portable error kind it failed with.
    pub outcome: String,
    /// How long the invocation took, in milliseconds.
    pub duration_ms: u64,
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A run, as `GET /runs/{id}` shows it and as the store keeps it under `runs/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: String,
    /// The composition's name.
    pub composition: String,
    /// The key of its program (`programs/<sha256>`).
    pub program: String,
    /// What it is doing.
    pub status: RunStatus,
    /// The number of its latest continuation.
    pub seq: u64,
    /// What the latest continuation does: `invoke <function>` or `wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Steps done so far (invocations and timers).
    pub steps: u64,
    /// The last [`HISTORY`] steps, oldest first.
    pub history: Vec<StepRecord>,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// The result, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error (its portable JSON form), once failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// What a continuation asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
enum Pending {
    Invoke { function: String, input: Value },
    Wait { until_ms: u64 },
    Await { filter: EventFilter, until_ms: u64 },
}

/// What `awaits/<run>` holds while a run waits for an event: which continuation waits, for what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Awaiting {
    n: u64,
    filter: EventFilter,
}

/// How a filter reads in a run's `current` and in errors: `type=order.paid source=/shop`.
fn describe(filter: &EventFilter) -> String {
    let parts: Vec<String> = [("type", &filter.event_type), ("source", &filter.source), ("subject", &filter.subject)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if parts.is_empty() {
        "any event".to_string()
    } else {
        parts.join(" ")
    }
}

fn await_key(run: &str) -> String {
    format!("awaits/{run}")
}

/// What `runs/<id>` holds: the record, and the continuation while the run goes on.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    record: RunRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

/// The body of a wake-up event; `event`: the CloudEvent (structured JSON) that answers the run's
/// `await_event`, appended by ingress in the same batch as the event itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wake {
    run: String,
    n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Value>,
}

/// The durable conductor (see the [module documentation](self)).
pub struct Conductor {
    store: Arc<dyn GatewayStore>,
    registry: RegistryHandle,
    /// Longest a step may run.
    step_timeout: Duration,
    programs: Mutex<HashMap<String, Arc<Program>>>,
    /// Woken whenever a run this process conducts ends (waiters also poll, for runs other replicas end).
    ended: Notify,
    /// The runs waiting for an event: run → (continuation, filter). Filled as this process's runs start
    /// waiting, and from the store's `awaits/` keys by [`Conductor::refresh_awaits`] (other replicas').
    awaits: std::sync::RwLock<HashMap<String, (Awaiting, Option<std::time::Instant>)>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Conductor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conductor").field("step_timeout", &self.step_timeout).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("run records and continuations encode as JSON"))
}

fn error_json(e: &Error) -> Value {
    serde_json::from_slice(&e.to_json()).unwrap_or(Value::Null)
}

/// `bytes` as lowercase hex.
/// The `traceparent` of a call made for durable run `run`: trace id the first 16 bytes of the
/// SHA-256 of the run's id (the same on every replica and after a restart), a new span each time.
fn run_trace(run: &str) -> String {
    let trace = hex(&Sha256::digest(run.as_bytes())[..16]);
    let root = TraceContext::parse(&format!("00-{trace}-0000000000000001-01")).unwrap_or_else(TraceContext::random);
    root.child().traceparent()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run_key(id: &str) -> String {
    format!("runs/{id}")
}

/// Checks a run id given by a client: 1 to 128 letters, digits, `-`, `_` or `.`.
fn check_run_id(id: &str) -> Result<(), RunError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_RUN_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(RunError::Invalid(format!(
            "run id {id:?} is invalid: use 1 to {MAX_RUN_ID} letters, digits, `-`, `_` or `.`, not starting with `.`"
        )))
    }
}

/// A step's input as the payload it is sent: JSON.
fn payload_of(value: &Value) -> Payload {
    Payload::new(serde_json::to_vec(value).unwrap_or_default(), Some("application/json".into()))
}

/// A step's answer as the value the machine goes on with (as a fused run reads it).
fn value_of(payload: &Payload) -> Value {
    faas_composition::fused::value_of(payload)
}

impl Conductor {
    /// A conductor on `store` (both of its sides), invoking steps through the functions of `registry`,
    /// each for at most `step_timeout`, counting runs and transitions in `metrics`.
    pub fn new(
        store: Arc<dyn GatewayStore>,
        registry: RegistryHandle,
        step_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Conductor {
        Conductor {
            store,
            registry,
            step_timeout,
            programs: Mutex::new(HashMap::new()),
            ended: Notify::new(),
            awaits: std::sync::RwLock::new(HashMap::new()),
            metrics,
        }
    }

    fn ended(&self, status: RunStatus) {
        let status = match status {
            RunStatus::Running => return,
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        };
        self.metrics.run_ended(status);
        self.ended.notify_waiters();
    }

    /// Starts a run of `composition` (its portable JSON form) named `name` on `input`. `id`: the run's id
    /// (a fresh one if `None`; an id already used is [`RunError::Exists`]). Returns the run's first record.
    pub async fn start(
        &self,
        name: &str,
        composition: &Value,
        input: Value,
        id: Option<String>,
    ) -> Result<RunRecord, RunError> {
        let parsed = Composition::from_value(composition).map_err(|e| RunError::Invalid(e.to_string()))?;
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        check_run_id(&id)?;
        let text = encode(composition);
        let program_key = format!("programs/{}", hex(&Sha256::digest(&text)));
        if self.store.kv_get(&program_key).await?.is_none() {
            self.store.kv_put(&program_key, text, Expect::Any, None).await?;
        }
        let program = Arc::new(Program::compile(&parsed.program));
        self.programs.lock().unwrap_or_else(|e| e.into_inner()).insert(program_key.clone(), program.clone());
        let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        let (state, action) = advance(&program, State::default(), Event::Start { input, seed })
            .map_err(|e| RunError::Invalid(e.message().to_string()))?;
        let now = now_ms();
        let record = RunRecord {
            id: id.clone(),
            composition: name.to_string(),
            program: program_key,
            status: RunStatus::Running,
            seq: 0,
            current: None,
            steps: 0,
            history: Vec::new(),
            started_at_ms: now,
            updated_at_ms: now,
            result: None,
            error: None,
        };
        let mut stored = Stored { record, state: None, pending: None };
        Self::next(&mut stored, 0, state, action);
        // The record and its first wake-up in one commit.
        let first = Advance {
            key: run_key(&id),
            value: encode(&stored),
            expect: Expect::Absent,
            append: Self::wake_event(&stored).into_iter().collect(),
            ack: None,
        };
        match self.store.advance(first).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => return Err(RunError::Exists(id)),
            Err(StoreError::ValueTooLarge { size, limit, .. }) => {
                return Err(RunError::Invalid(format!(
                    "the run's input makes a continuation of {size} bytes, more than the gateway store's limit of {limit} bytes"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(run = %id, composition = name, "run started");
        self.metrics.run_started();
        if let Some(Pending::Await { filter, .. }) = &stored.pending {
            // A crash before this note leaves it to the first wake-up (see `try_transition`).
            self.note_await(&id, 0, filter).await?;
        }
        self.ended(stored.record.status);
        Ok(stored.record)
    }

    async fn stored(&self, id: &str) -> Result<Option<(Stored, u64)>, RunError> {
        if check_run_id(id).is_err() {
            return Ok(None);
        }
        let Some(entry) = self.store.kv_get(&run_key(id)).await? else { return Ok(None) };
        let stored = serde_json::from_slice(&entry.value)
            .map_err(|e| RunError::Store(format!("the record of run `{id}` is damaged: {e}")))?;
        Ok(Some((stored, entry.revision)))
    }

    /// The run's record, if it exists.
    pub async fn record(&self, id: &str) -> Result<Option<RunRecord>, RunError> {
        Ok(self.stored(id).await?.map(|(s, _)| s.record))
    }

    /// Up to `limit` runs, by id, after `after`; and the id to continue from, if more follow.
    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<(Vec<RunRecord>, Option<String>), RunError> {
        let after = after.map(run_key);
        let page = self.store.kv_list("runs/", after.as_deref(), limit.clamp(1, 1000)).await?;
        let runs = page
            .entries
            .iter()
            .filter_map(|(_, e)| serde_json::from_slice::<Stored>(&e.value).ok())
            .map(|s| s.record)
            .collect();
        Ok((runs, page.next.map(|k| k.trim_start_matches("runs/").to_string())))
    }

    /// Cancels a running run: no step starts after this (a step in progress finishes, and its answer is
    /// dropped). Returns the record; a run already over is returned as it is.
    pub async fn cancel(&self, id: &str) -> Result<Option<RunRecord>, RunError> {
        loop {
            let Some((mut stored, revision)) = self.stored(id).await? else { return Ok(None) };
            if stored.record.status.is_final() {
                return Ok(Some(stored.record));
            }
            stored.record.status = RunStatus::Cancelled;
            stored.record.updated_at_ms = now_ms();
            stored.record.current = None;
            stored.state = None;
            stored.pending = None;
            match self.store.kv_put(&run_key(id), encode(&stored), Expect::Revision(revision), None).await {
                Ok(_) => {
                    tracing::info!(run = id, "run cancelled");
                    self.forget_await(id).await;
                    self.ended(RunStatus::Cancelled);
                    return Ok(Some(stored.record));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits up to `timeout` for the run to end; returns its latest record.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<RunRecord>, RunError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let record = self.record(id).await?;
            match &record {
                Some(r) if !r.status.is_final() && tokio::time::Instant::now() < deadline => {}
                _ => return Ok(record),
            }
            // Runs another replica conducts end without waking this one: poll too.
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Puts what `action` asks for into `stored` as its continuation `n`, or ends the run.
    fn next(stored: &mut Stored, n: u64, state: State, action: Action) {
        let pending = match action {
            Action::Invoke { function, input } => Pending::Invoke { function, input },
            Action::Sleep { ms } => Pending::Wait { until_ms: now_ms().saturating_add(ms) },
            Action::AwaitEvent { filter, timeout_ms } => {
                Pending::Await { filter, until_ms: now_ms().saturating_add(timeout_ms) }
            }
            Action::Finish(outcome) => return Self::end(stored, outcome),
        };
        stored.record.current = Some(match &pending {
            Pending::Invoke { function, .. } => format!("invoke {function}"),
            Pending::Wait { .. } => "wait".to_string(),
            Pending::Await { filter, .. } => format!("await {}", describe(filter)),
        });
        stored.record.seq = n;
        stored.state = Some(state);
        stored.pending = Some(pending);
    }

    fn end(stored: &mut Stored, outcome: Result<Value, Error>) {
        stored.record.current = None;
        stored.state = None;
        stored.pending = None;
        match outcome {
            Ok(value) => {
                stored.record.status = RunStatus::Succeeded;
                stored.record.result = Some(value);
            }
            Err(e) => {
                stored.record.status = RunStatus::Failed;
                stored.record.error = Some(error_json(&e));
            }
        }
    }

    /// The wake-up of the run's current continuation (`None` once the run has ended).
    fn wake_event(stored: &Stored) -> Option<NewEvent> {
        if stored.record.status.is_final() {
            return None;
        }
        let (run, n) = (&stored.record.id, stored.record.seq);
        Some(NewEvent {
            source: SOURCE.to_string(),
            id: format!("exec/{run}/{n}"),
            body: encode(&Wake { run: run.clone(), n, event: None }),
            targets: vec![CONDUCTOR_TARGET.to_string()],
        })
    }

    /// Appends the wake-up of the run's current continuation (a no-op when it exists: de-duplicated).
    async fn wake(&self, stored: &Stored) -> Result<(), RunError> {
        let Some(event) = Self::wake_event(stored) else { return Ok(()) };
        let run = &stored.record.id;
        let n = stored.record.seq;
        if self.store.append(vec![event]).await? == [Appended::Duplicate] {
            tracing::debug!(run = %run, n, "wake-up already appended (a transition done again)");
        }
        Ok(())
    }

    /// Appends the wake-up of every running run (at start: a run whose start or transition crashed
    /// after writing its record and before its wake-up would otherwise wait forever). Returns how many
    /// runs were woken.
    pub async fn recover(&self) -> Result<usize, RunError> {
        let mut after: Option<String> = None;
        let mut woken = 0;
        loop {
            let page = self.store.kv_list("runs/", after.as_deref(), 500).await?;
            for (_, entry) in &page.entries {
                if let Ok(stored) = serde_json::from_slice::<Stored>(&entry.value) {
                    if !stored.record.status.is_final() {
                        self.wake(&stored).await?;
                        woken += 1;
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(woken),
            }
        }
    }

    /// Runs `composition` (its portable JSON form) on `input` in memory, as an *express* run: nothing is
    /// stored, steps are invoked one after another as the durable conductor would, timers are plain
    /// sleeps, and the outcome is answered to the caller. A gateway that stops loses the run (the caller
    /// sees its request fail and may retry: at-least-once, as Step Functions' express workflows). At most
    /// `limit` long; an `await_event` fails (an express run cannot wait for events). Returns the outcome
    /// and the number of steps done.
    pub async fn express(
        &self,
        sinks: &SinkClient,
        composition: &Value,
        input: Value,
        limit: Duration,
    ) -> Result<(Result<Value, Error>, u64), RunError> {
        let parsed = Composition::from_value(composition).map_err(|e| RunError::Invalid(e.to_string()))?;
        let program = Program::compile(&parsed.program);
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or([0; 8]));
        let (state, action) = advance(&program, State::default(), Event::Start { input, seed })
            .map_err(|e| RunError::Invalid(e.message().to_string()))?;
        let mut steps = 0u64;
        let run = async {
            let (mut state, mut action) = (state, action);
            loop {
                let event = match action {
                    Action::Invoke { function, input } => Event::Answer(self.invoke(sinks, None, &function, &input).await),
                    Action::Sleep { ms } => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Event::Timer
                    }
                    Action::AwaitEvent { .. } => Event::Answer(Err(Error::unavailable(
                        "an express run cannot wait for an event: start the run durably (without \"mode\": \"express\")",
                    ))),
                    Action::Finish(outcome) => return outcome,
                };
                steps += 1;
                match advance(&program, state, event) {
                    Ok(next) => (state, action) = next,
                    Err(e) => return Err(e),
                }
            }
        };
        let outcome = match tokio::time::timeout(limit, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::timeout(format!("the express run went past its limit of {} s", limit.as_secs()))),
        };
        Ok((outcome, steps))
    }

    /// Notes, in memory and in the store, that the run waits for an event at continuation `n`, so that
    /// ingress on any replica answers it.
    async fn note_await(&self, run: &str, n: u64, filter: &EventFilter) -> Result<(), RunError> {
        let awaiting = Awaiting { n, filter: filter.clone() };
        self.awaits
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.to_string(), (awaiting.clone(), Some(std::time::Instant::now())));
        self.store.kv_put(&await_key(run), encode(&awaiting), Expect::Any, None).await?;
        Ok(())
    }

    /// The run waits for no event any more.
    async fn forget_await(&self, run: &str) {
        self.awaits.write().unwrap_or_else(|e| e.into_inner()).remove(run);
        if let Err(e) = self.store.kv_delete(&await_key(run), Expect::Any).await {
            // Harmless: an event matching it appends a wake-up that is dropped as stale.
            tracing::warn!(run, error = %e, "removing a finished await from the store failed");
        }
    }

    /// Reloads the runs waiting for an event from the store (those other replicas conduct, and this
    /// one's after a restart); returns how many wait. The gateway calls it every 2 s, with the registry.
    pub async fn refresh_awaits(&self) -> Result<usize, RunError> {
        let mut found = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.kv_list("awaits/", after.as_deref(), 1000).await?;
            for (key, entry) in &page.entries {
                if let Ok(awaiting) = serde_json::from_slice::<Awaiting>(&entry.value) {
                    found.insert(key.trim_start_matches("awaits/").to_string(), (awaiting, None));
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut awaits = self.awaits.write().unwrap_or_else(|e| e.into_inner());
        // What this process noted while the list was read may not be in it yet: keep it a while.
        for (run, (awaiting, noted)) in awaits.drain() {
            if noted.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
                found.entry(run).or_insert((awaiting, noted));
            }
        }
        *awaits = found;
        Ok(awaits.len())
    }

    /// The wake-ups that `event`, arriving at ingress, answers: one for each run waiting for an event
    /// its filter matches, carrying the event (structured JSON). Ingress appends them in the same batch
    /// as the event, so an accepted event is never lost to a waiting run; of several events matching
    /// one wait, the first appended answers it (the wake-ups share an id, so the store drops the rest).
    pub fn answers(&self, event: &cloudevents::Event) -> Vec<NewEvent> {
        let awaits = self.awaits.read().unwrap_or_else(|e| e.into_inner());
        let matching: Vec<(&String, u64)> =
            awaits.iter().filter(|(_, (a, _))| a.filter.matches(event)).map(|(run, (a, _))| (run, a.n)).collect();
        if matching.is_empty() {
            return Vec::new();
        }
        let value = serde_json::to_value(event).unwrap_or(Value::Null);
        matching
            .into_iter()
            .map(|(run, n)| NewEvent {
                source: SOURCE.to_string(),
                id: format!("exec/{run}/{n}/event"),
                body: encode(&Wake { run: run.clone(), n, event: Some(value.clone()) }),
                targets: vec![CONDUCTOR_TARGET.to_string()],
            })
            .collect()
    }

    async fn program(&self, key: &str) -> Result<Arc<Program>, RunError> {
        if let Some(p) = self.programs.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(p.clone());
        }
        let entry = self
            .store
            .kv_get(key)
            .await?
            .ok_or_else(|| RunError::Store(format!("the program {key} of a run is missing from the store")))?;
        let parsed = Composition::from_json(&entry.value)
            .map_err(|e| RunError::Store(format!("the program {key} of a run is damaged: {e}")))?;
        let program = Arc::new(Program::compile(&parsed.program));
        self.programs.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), program.clone());
        Ok(program)
    }

    /// Invokes one step through the gateway's function routes; `run` is the durable run it is a
    /// step of: the callee's activation `cause` is `runs/<id>`, and every step of a run is a
    /// span of one trace, whose id is drawn from the run's (so a restarted gateway keeps it).
    async fn invoke(
        &self,
        sinks: &SinkClient,
        run: Option<&str>,
        function: &str,
        input: &Value,
    ) -> Result<Value, Error> {
        let route = self.registry.function(function).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "step `{function}` is not a function registered with the gateway \
                     (`[gateway.functions]` or POST /functions)"
                ),
            )
        })?;
        let target = route.target.clone().unwrap_or_else(|| route.name.clone());
        let context = match run {
            Some(run) => Caused { traceparent: Some(run_trace(run)), cause: Some(format!("{CAUSE_OF_RUN}{run}")) },
            None => Caused::default(),
        };
        let answer =
            sinks.invoke_function(&route.backend, &target, payload_of(input), context, self.step_timeout).await?;
        Ok(value_of(&answer))
    }

    /// Does one transition for a claimed wake-up, and finishes its delivery.
    pub(crate) async fn transition(&self, sinks: &SinkClient, delivery: Delivery) {
        if let Err(e) = self.try_transition(sinks, &delivery).await {
            // The store failed: leave the wake-up to come back.
            tracing::warn!(error = %e, "a run's transition failed; it is tried again");
            let _ = self.store.retry_at(&delivery.key, SystemTime::now() + Duration::from_secs(1)).await;
        }
    }

    async fn try_transition(&self, sinks: &SinkClient, delivery: &Delivery) -> Result<(), RunError> {
        let wake: Wake = match serde_json::from_slice(&delivery.body) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "a stored wake-up is not readable; dropped");
                return self.ack(delivery).await;
            }
        };
        let Some((mut stored, revision)) = self.stored(&wake.run).await? else {
            tracing::warn!(run = %wake.run, "a wake-up of a run with no record; dropped");
            return self.ack(delivery).await;
        };
        let (Some(state), Some(pending)) = (stored.state.take(), stored.pending.take()) else {
            return self.ack(delivery).await; // ended or cancelled
        };
        if wake.n != stored.record.seq {
            if wake.n < stored.record.seq {
                // Done already; make sure the wake-up of where the run is now exists.
                stored.state = Some(state);
                stored.pending = Some(pending);
                self.wake(&stored).await?;
            }
            tracing::debug!(run = %wake.run, n = wake.n, seq = stored.record.seq, "stale wake-up dropped");
            return self.ack(delivery).await;
        }
        if wake.event.is_some() && !matches!(pending, Pending::Await { .. }) {
            tracing::debug!(run = %wake.run, n = wake.n, "an event for a run that waits for none; dropped");
            return self.ack(delivery).await;
        }
        let program = self.program(&stored.record.program).await?;
        let started = std::time::Instant::now();
        let (event, function, outcome) = match &pending {
            Pending::Invoke { function, input } => {
                let answer = self.invoke(sinks, Some(&wake.run), function, input).await;
                let outcome = match &answer {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.kind().as_str().to_string(),
                };
                (Event::Answer(answer), function.clone(), outcome)
            }
            Pending::Wait { until_ms } => {
                if now_ms() < *until_ms {
                    // Not due yet: the store holds the wake-up until then (a durable timer).
                    let at = UNIX_EPOCH + Duration::from_millis(*until_ms);
                    self.store.retry_at(&delivery.key, at).await?;
                    return Ok(());
                }
                (Event::Timer, "wait".to_string(), "ok".to_string())
            }
            Pending::Await { filter, until_ms } => {
                let answer = match wake.event.clone() {
                    Some(event) => Ok(event),
                    None if now_ms() < *until_ms => {
                        // Not come yet: make sure ingress knows of the wait (a crash may have lost the
                        // note), and hold the wake-up until the timeout.
                        let known = self.awaits.read().unwrap_or_else(|e| e.into_inner()).contains_key(&wake.run);
                        if !known {
                            self.note_await(&wake.run, wake.n, filter).await?;
                        }
                        self.store.retry_at(&delivery.key, UNIX_EPOCH + Duration::from_millis(*until_ms)).await?;
                        return Ok(());
                    }
                    None => Err(Error::timeout(format!(
                        "no event matching {} came within the await's timeout",
                        describe(filter)
                    ))),
                };
                let outcome = match &answer {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.kind().as_str().to_string(),
                };
                (Event::Answer(answer), "await".to_string(), outcome)
            }
        };
        let record = &mut stored.record;
        record.steps += 1;
        record.history.push(StepRecord {
            seq: wake.n,
            function,
            outcome,
            duration_ms: started.elapsed().as_millis() as u64,
            at_ms: now_ms(),
        });
        if record.history.len() > HISTORY {
            let extra = record.history.len() - HISTORY;
            record.history.drain(..extra);
        }
        record.updated_at_ms = now_ms();
        match advance(&program, state, event) {
            Ok((state, action)) => Self::next(&mut stored, wake.n + 1, state, action),
            Err(e) => Self::end(&mut stored, Err(e)),
        }
        // The atomic advance: the record, the next continuation's wake-up and the ack of this one in
        // one store commit (one fsync on the embedded log).
        let step = |stored: &Stored| Advance {
            key: run_key(&wake.run),
            value: encode(stored),
            expect: Expect::Revision(revision),
            append: Self::wake_event(stored).into_iter().collect(),
            ack: Some(delivery.key.clone()),
        };
        let mut written = self.store.advance(step(&stored)).await;
        if let Err(StoreError::ValueTooLarge { size, limit, .. }) = &written {
            let e = Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "the run's state before {} is {size} bytes, more than the gateway store's limit of {limit} bytes",
                    stored.record.current.as_deref().unwrap_or("its end")
                ),
            );
            Self::end(&mut stored, Err(e));
            written = self.store.advance(step(&stored)).await;
        }
        match written {
            Ok(_) => {
                self.metrics.transition(started.elapsed());
                if matches!(pending, Pending::Await { .. }) {
                    self.forget_await(&wake.run).await;
                }
                if let Some(Pending::Await { filter, .. }) = &stored.pending {
                    // A crash before this note leaves it to the next wake-up, which notes it again.
                    self.note_await(&wake.run, stored.record.seq, filter).await?;
                }
                if stored.record.status.is_final() {
                    tracing::info!(run = %wake.run, status = ?stored.record.status, steps = stored.record.steps, "run ended");
                    self.ended(stored.record.status);
                }
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => {
                // Another worker moved the run (or it was cancelled) meanwhile: its record wins.
                tracing::debug!(run = %wake.run, n = wake.n, "the run moved on meanwhile; this transition is dropped");
                self.ack(delivery).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), RunError> {
        match self.store.ack(&delivery.key).await {
            Ok(()) | Err(StoreError::UnknownDelivery(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
