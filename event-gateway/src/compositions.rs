//! Compositions registered with the gateway by name, so that a run can be started by the name alone
//! (`POST /runs {"composition": "checkout", "input": ...}`), as a Step Functions state machine is.
//! `faas deploy` registers an app's compositions here when the project's gateway runs.
//!
//! Each is kept in the store's key–value side under `compositions/<name>` (shared by every replica of a
//! JetStream-backed gateway), in its portable JSON form. Registering one checks it as a deploy does,
//! before anything is saved: the JSON form (the error names its JSON path), and every step it calls must
//! be a function registered with the gateway (`[gateway.functions]` or `POST /functions`), named with the
//! step's JSON path when it is not. Runs already started keep the program they started with (it is kept by
//! its digest), so replacing or deleting a composition changes only the runs started after.
//!
//! Routes (beside the runs API, behind the management token):
//! - `PUT /compositions/{name}` with the JSON form as the body: 201 when new, 200 when replaced;
//! - `GET /compositions` (`{"compositions": [...], "next": NAME?}`, `?after=NAME&limit=N`), and
//!   `GET /compositions/{name}`;
//! - `DELETE /compositions/{name}`: 204.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use faas_composition::Composition;
use faas_gateway_store::kv::{Expect, KvStore};
use faas_gateway_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::RegistryHandle;
use crate::subscription::ApiError;

/// Where compositions live in the key–value side.
const PREFIX: &str = "compositions/";

/// A composition registered with the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredComposition {
    /// Its name (what `POST /runs` names).
    pub name: String,
    /// The functions it calls, sorted.
    pub steps: Vec<String>,
    /// Its portable JSON form (`{"faas": "composition/v1", "program": ...}`).
    pub program: Value,
    /// When it was registered or last replaced, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

/// The registered compositions (see the [module documentation](self)).
#[derive(Clone)]
pub struct Compositions {
    kv: Arc<dyn KvStore>,
    registry: RegistryHandle,
}

impl std::fmt::Debug for Compositions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compositions").finish_non_exhaustive()
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::ValueTooLarge { size, limit, .. } => ApiError::invalid(
            "program",
            format!("the composition is {size} bytes, more than the gateway store's limit of {limit} bytes"),
        ),
        e => ApiError::unavailable(format!("the gateway's store failed; nothing was changed: {e}")),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    faas_api::validate_function_name(name).map_err(|e| ApiError::invalid("name", e.message()))
}

impl Compositions {
    /// The compositions kept in `kv`, whose steps must be functions of `registry`.
    pub fn new(kv: Arc<dyn KvStore>, registry: RegistryHandle) -> Compositions {
        Compositions { kv, registry }
    }

    /// Checks `program` (the JSON form) as the composition `name`, without saving it: the functions it
    /// calls, sorted. The error's field is the JSON path of the problem (`/program/steps/1`).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use faas_gateway::compositions::Compositions;
    /// use faas_gateway::registry::{Declared, RegistryHandle};
    /// use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    /// let registry = RegistryHandle::open(store.clone(), Declared::default()).await.unwrap();
    /// let compositions = Compositions::new(store, registry);
    /// let program = serde_json::json!({"faas": "composition/v1", "program": {"op": "call", "function": "charge"}});
    /// let e = compositions.check("checkout", &program).unwrap_err();
    /// assert_eq!(e.field.as_deref(), Some("/program"));
    /// assert!(e.message.contains("calls `charge`, which is not a function registered with the gateway"), "{e}");
    /// # });
    /// ```
    pub fn check(&self, name: &str, program: &Value) -> Result<Vec<String>, ApiError> {
        check_name(name)?;
        let parsed = Composition::from_value(program).map_err(|e| {
            let path = if e.path.is_empty() { "program".to_string() } else { e.path.clone() };
            ApiError::invalid(path, e.to_string())
        })?;
        let plan = faas_composition::plan::plan(&parsed, |_| true);
        let mut steps = BTreeSet::new();
        for step in &plan.steps {
            let Some(function) = &step.function else { continue };
            if self.registry.function(function).is_none() {
                return Err(ApiError::invalid(
                    step.path.clone(),
                    format!(
                        "composition `{name}` calls `{function}`, which is not a function registered with the gateway \
                         ([gateway.functions.{function}] in faas.toml, or POST /functions)"
                    ),
                ));
            }
            steps.insert(function.clone());
        }
        Ok(steps.into_iter().collect())
    }

    /// Registers (or replaces) the composition `name`; returns it and whether it is new.
    pub async fn put(&self, name: &str, program: Value) -> Result<(RegisteredComposition, bool), ApiError> {
        let steps = self.check(name, &program)?;
        let created = self.kv.kv_get(&key(name)).await.map_err(store_error)?.is_none();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let registered = RegisteredComposition { name: name.to_string(), steps, program, updated_at_ms: now };
        let bytes = serde_json::to_vec(&registered)
            .map_err(|e| ApiError::unavailable(format!("cannot encode the composition: {e}")))?;
        self.kv.kv_put(&key(name), Bytes::from(bytes), Expect::Any, None).await.map_err(store_error)?;
        tracing::info!(composition = name, created, "composition registered");
        Ok((registered, created))
    }

    /// The composition `name`, if registered.
    pub async fn get(&self, name: &str) -> Result<Option<RegisteredComposition>, ApiError> {
        if check_name(name).is_err() {
            return Ok(None);
        }
        let Some(entry) = self.kv.kv_get(&key(name)).await.map_err(store_error)? else { return Ok(None) };
        serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(|e| ApiError::unavailable(format!("the stored composition `{name}` is damaged: {e}")))
    }

    /// Up to `limit` compositions by name after `after`, and the name to continue from if more follow.
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<RegisteredComposition>, Option<String>), ApiError> {
        let after = after.map(key);
        let page = self.kv.kv_list(PREFIX, after.as_deref(), limit.clamp(1, 1000)).await.map_err(store_error)?;
        let found = page.entries.iter().filter_map(|(_, e)| serde_json::from_slice(&e.value).ok()).collect();
        Ok((found, page.next.map(|k| k.trim_start_matches(PREFIX).to_string())))
    }

    /// Deletes the composition `name` (404 if it is not registered). Its running runs go on.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let missing = || ApiError::not_found(format!("no composition `{name}` is registered with the gateway"));
        if check_name(name).is_err() {
            return Err(missing());
        }
        match self.kv.kv_delete(&key(name), Expect::Any).await.map_err(store_error)? {
            true => Ok(()),
            false => Err(missing()),
        }
    }
}
