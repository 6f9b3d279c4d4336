//! The gateway's registry of functions and subscriptions.
//!
//! Two kinds of entries live here:
//! - **declared** ones, from `faas.toml` (`[gateway.functions.NAME]`, `[[gateway.subscriptions]]`), reported
//!   with `"origin": "config"`. They are never written to the store and the management API may not update
//!   or delete them (409 naming the `faas.toml` entry): change `faas.toml` and restart instead. A declared
//!   entry wins over a saved one with the same id or name (the saved one is kept, hidden, in the store).
//! - **API** ones, created through the management API, reported with `"origin": "api"`, saved as one JSON
//!   document through [`EventStore::save_registry`] and so shared by every replica using the same store.
//!
//! Every change is write-then-swap: the change is validated against the freshly loaded document, the new
//! document saved, and only then does the in-memory view change; a failed save changes nothing. Replicas
//! pick up each other's changes on their next write or [`RegistryHandle::refresh`]. Two replicas changing
//! the registry at the same instant may race (the last save wins); the management API is meant for
//! occasional human or CI use, not for concurrent writers.
//!
//! Cross references are kept valid: a subscription whose sink or dead-letter sink is `function:NAME` needs
//! that function registered (400 otherwise), and a function used by a subscription cannot be deleted (409).
//!
//! [`RegistryHandle::matching`] is called for every ingress event: subscriptions are indexed by type, so
//! only the subscriptions that accept the event's type (or every type) are evaluated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use cloudevents::{AttributesReader, Event};
use faas_gateway_store::{EventStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::subscription::{ApiError, Sink, Subscription, SubscriptionRequest};

/// Most functions, and most subscriptions, the registry holds.
pub const MAX_ENTRIES: usize = 10_000;
/// Version of the saved document format.
const DOCUMENT_VERSION: u32 = 1;

/// A logical function name the gateway can deliver to (`function:NAME` sinks): a backend profile from
/// `faas.toml` and the function's name on that backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRoute {
    /// The logical name used in sinks.
    pub name: String,
    /// A backend profile name from `faas.toml` (`[backends.NAME]`, or `local`).
    pub backend: String,
    /// The function's name on the backend (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The body of `POST /functions` and `PUT /functions/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionRequest {
    /// Required on create; on update, must equal the name in the path if given.
    #[serde(default)]
    pub name: Option<String>,
    /// Required: a backend profile name.
    #[serde(default)]
    pub backend: Option<String>,
    /// The function's name on the backend (default: `name`).
    #[serde(default)]
    pub target: Option<String>,
    /// Read-only (`"api"` or `"config"`); accepted and ignored.
    #[serde(default)]
    pub origin: Option<String>,
}

impl FunctionRequest {
    /// Validates the request as the function `name`, with `backends` the known backend profile names.
    ///
    /// ```
    /// use faas_gateway::registry::FunctionRequest;
    /// let backends = ["dev".to_string()].into_iter().collect();
    /// let req = FunctionRequest { backend: Some("prod".into()), ..Default::default() };
    /// let err = req.validate("billing", &backends).unwrap_err();
    /// assert_eq!(err.to_string(), "backend: unknown backend profile `prod`; known profiles: dev");
    /// ```
    pub fn validate(self, name: &str, backends: &BTreeSet<String>) -> Result<FunctionRoute, ApiError> {
        faas_api::validate_function_name(name).map_err(|e| ApiError::invalid("name", e.message()))?;
        if let Some(n) = &self.name {
            if n != name {
                return Err(ApiError::invalid("name", format!("`{n}` differs from the name in the path, `{name}`")));
            }
        }
        let backend =
            self.backend.ok_or_else(|| ApiError::invalid("backend", "is required: a backend profile name"))?;
        if !backends.contains(&backend) {
            return Err(ApiError::invalid(
                "backend",
                format!(
                    "unknown backend profile `{backend}`; known profiles: {}",
                    if backends.is_empty() {
                        "none".to_string()
                    } else {
                        backends.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        }
        if let Some(t) = &self.target {
            faas_api::validate_function_name(t).map_err(|e| ApiError::invalid("target", e.message()))?;
        }
        Ok(FunctionRoute { name: name.to_string(), backend, target: self.target })
    }
}

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Created through the management API (saved in the store).
    Api,
    /// Declared in `faas.toml` (read-only through the API).
    Config,
}

impl Origin {
    /// `"api"` or `"config"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Config => "config",
        }
    }
}

/// What `faas.toml` declares, and the backend profiles function routes may name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    /// Known backend profile names (the `[backends]` keys, plus `local` if the caller supports it).
    pub backends: BTreeSet<String>,
    /// `[gateway.functions.NAME]` entries.
    pub functions: Vec<FunctionRoute>,
    /// `[[gateway.subscriptions]]` entries, validated.
    pub subscriptions: Vec<Subscription>,
    /// Where they were declared (e.g. `faas.toml`), for messages.
    pub file: String,
}

/// Errors opening or refreshing the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The saved document cannot be read.
    #[error("the saved gateway registry is damaged: {0}")]
    Corrupt(String),
    /// The declared entries are inconsistent (unknown backend, unknown function in a sink, ...).
    #[error("{0}")]
    Invalid(String),
}

/// The saved document: API-created entries only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    #[serde(default)]
    functions: BTreeMap<String, FunctionRoute>,
    #[serde(default)]
    subscriptions: BTreeMap<String, Subscription>,
}

/// The effective view: declared entries over saved ones, with the matching index.
#[derive(Debug, Default)]
struct Snapshot {
    functions: BTreeMap<String, (FunctionRoute, Origin)>,
    subscriptions: BTreeMap<String, (Subscription, Origin)>,
    /// Subscriptions in id order.
    ordered: Vec<Arc<Subscription>>,
    /// Type → indexes into `ordered` (ascending) of the subscriptions listing that type.
    by_type: HashMap<String, Vec<usize>>,
    /// Indexes into `ordered` (ascending) of the subscriptions with no type restriction.
    any_type: Vec<usize>,
}

impl Snapshot {
    fn build(doc: &Document, declared: &Declared) -> Snapshot {
        let mut functions: BTreeMap<String, (FunctionRoute, Origin)> =
            doc.functions.iter().map(|(k, v)| (k.clone(), (v.clone(), Origin::Api))).collect();
        for f in &declared.functions {
            functions.insert(f.name.clone(), (f.clone(), Origin::Config));
        }
        let mut subscriptions: BTreeMap<String, (Subscription, Origin)> =
            doc.subscriptions.iter().map(|(k, v)| (k.clone(), (v.clone(), Origin::Api))).collect();
        for s in &declared.subscriptions {
            subscriptions.insert(s.id.clone(), (s.clone(), Origin::Config));
        }
        let ordered: Vec<Arc<Subscription>> = subscriptions.values().map(|(s, _)| Arc::new(s.clone())).collect();
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_type = Vec::new();
        for (i, s) in ordered.iter().enumerate() {
            if s.types.is_empty() {
                any_type.push(i);
            }
            for t in s.types.iter().collect::<BTreeSet<_>>() {
                by_type.entry(t.clone()).or_default().push(i);
            }
        }
        Snapshot { functions, subscriptions, ordered, by_type, any_type }
    }

    /// Function names a subscription's sinks refer to that are not registered.
    fn missing_function(&self, s: &Subscription) -> Option<(String, &'static str)> {
        let deadletter = s.delivery.as_ref().and_then(|d| d.deadletter.as_deref());
        [(Some(s.sink.as_str()), "sink"), (deadletter, "delivery.deadletter")].into_iter().find_map(|(sink, field)| {
            match Sink::parse(sink?) {
                Ok(Sink::Function(name)) if !self.functions.contains_key(&name) => Some((name, field)),
                _ => None,
            }
        })
    }

    fn users_of(&self, function: &str) -> Vec<String> {
        let target = format!("function:{function}");
        self.subscriptions
            .values()
            .filter(|(s, _)| {
                s.sink == target || s.delivery.as_ref().and_then(|d| d.deadletter.as_deref()) == Some(target.as_str())
            })
            .map(|(s, _)| s.id.clone())
            .collect()
    }
}

struct Inner {
    store: Arc<dyn EventStore>,
    declared: Declared,
    view: RwLock<Arc<Snapshot>>,
    write: tokio::sync::Mutex<()>,
}

/// The registry, shared by ingress (matching), delivery (lookups) and the management API (changes).
/// Cheap to clone.
#[derive(Clone)]
pub struct RegistryHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let view = self.view();
        f.debug_struct("RegistryHandle")
            .field("functions", &view.functions.len())
            .field("subscriptions", &view.subscriptions.len())
            .finish()
    }
}

fn parse_document(bytes: Option<Bytes>) -> Result<Document, RegistryError> {
    let Some(bytes) = bytes else { return Ok(Document { version: DOCUMENT_VERSION, ..Default::default() }) };
    let doc: Document = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
    if doc.version != DOCUMENT_VERSION {
        return Err(RegistryError::Corrupt(format!(
            "document version {} is not supported (this gateway reads version {DOCUMENT_VERSION})",
            doc.version
        )));
    }
    Ok(doc)
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::unavailable(format!("the gateway's store failed; nothing was changed: {e}"))
}

impl RegistryHandle {
    /// Loads the saved registry from `store` and merges the `declared` entries (declared ones win).
    /// Fails if the saved document is damaged, or if a declared function names an unknown backend or a
    /// declared subscription's sink names a function that is not registered.
    pub async fn open(store: Arc<dyn EventStore>, declared: Declared) -> Result<RegistryHandle, RegistryError> {
        let file = if declared.file.is_empty() { "faas.toml" } else { declared.file.as_str() };
        let mut names = BTreeSet::new();
        for f in &declared.functions {
            if !names.insert(f.name.clone()) {
                return Err(RegistryError::Invalid(format!("{file}: function `{}` is declared twice", f.name)));
            }
            let request = FunctionRequest {
                name: None,
                backend: Some(f.backend.clone()),
                target: f.target.clone(),
                origin: None,
            };
            request
                .validate(&f.name, &declared.backends)
                .map_err(|e| RegistryError::Invalid(format!("{file}: [gateway.functions.{}]: {e}", f.name)))?;
        }
        let mut ids = BTreeSet::new();
        for s in &declared.subscriptions {
            if !ids.insert(s.id.clone()) {
                return Err(RegistryError::Invalid(format!("{file}: subscription id `{}` is declared twice", s.id)));
            }
        }
        let doc = parse_document(store.load_registry().await?)?;
        let snapshot = Snapshot::build(&doc, &declared);
        for s in &declared.subscriptions {
            if let Some((name, field)) = snapshot.missing_function(s) {
                return Err(RegistryError::Invalid(format!(
                    "{file}: subscription `{}`: {field} names function `{name}`, which is not registered \
                     (declare it under [gateway.functions.{name}])",
                    s.id
                )));
            }
        }
        for (name, f) in &doc.functions {
            if !declared.backends.contains(&f.backend) {
                tracing::warn!(function = %name, backend = %f.backend, "a saved function route names a backend profile faas.toml no longer defines");
            }
        }
        Ok(RegistryHandle {
            inner: Arc::new(Inner {
                store,
                declared,
                view: RwLock::new(Arc::new(snapshot)),
                write: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn view(&self) -> Arc<Snapshot> {
        self.inner.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn swap(&self, snapshot: Snapshot) {
        *self.inner.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }

    /// The known backend profile names.
    pub fn backends(&self) -> &BTreeSet<String> {
        &self.inner.declared.backends
    }

    /// Ids of the subscriptions `event` matches, sorted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use cloudevents::EventBuilder;
    /// use faas_gateway::registry::{Declared, RegistryHandle};
    /// use faas_gateway::subscription::SubscriptionRequest;
    /// use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    /// let registry = RegistryHandle::open(store, Declared::default()).await.unwrap();
    /// let req: SubscriptionRequest =
    ///     serde_json::from_str(r#"{"types": ["com.example.a"], "sink": "http://127.0.0.1:9/"}"#).unwrap();
    /// let sub = registry.create_subscription(req).await.unwrap();
    /// let event = cloudevents::EventBuilderV10::new().id("1").source("/s").ty("com.example.a").build().unwrap();
    /// assert_eq!(registry.matching(&event), vec![sub.id]);
    /// # });
    /// ```
    pub fn matching(&self, event: &Event) -> Vec<String> {
        let view = self.view();
        let typed: &[usize] = view.by_type.get(event.ty()).map(Vec::as_slice).unwrap_or(&[]);
        let untyped: &[usize] = &view.any_type;
        let mut out = Vec::new();
        // Both index lists are ascending and `ordered` is in id order: merging them yields sorted ids.
        let (mut i, mut j) = (0, 0);
        while i < typed.len() || j < untyped.len() {
            let next = match (typed.get(i), untyped.get(j)) {
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (Some(&a), Some(&b)) if a > b => {
                    j += 1;
                    b
                }
                (Some(&a), Some(_)) => {
                    i += 1;
                    j += 1;
                    a
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, Some(&b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            let sub = &view.ordered[next];
            if sub.matches(event) {
                out.push(sub.id.clone());
            }
        }
        out
    }

    /// The subscription `id`.
    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        self.view().subscriptions.get(id).map(|(s, _)| s.clone())
    }

    /// The subscription `id` and where it comes from.
    pub fn subscription_entry(&self, id: &str) -> Option<(Subscription, Origin)> {
        self.view().subscriptions.get(id).cloned()
    }

    /// Every subscription, in id order.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.view().subscriptions.values().map(|(s, _)| s.clone()).collect()
    }

    /// Every subscription with its origin, in id order.
    pub fn subscription_entries(&self) -> Vec<(Subscription, Origin)> {
        self.view().subscriptions.values().cloned().collect()
    }

    /// The function route `name`.
    pub fn function(&self, name: &str) -> Option<FunctionRoute> {
        self.view().functions.get(name).map(|(f, _)| f.clone())
    }

    /// The function route `name` and where it comes from.
    pub fn function_entry(&self, name: &str) -> Option<(FunctionRoute, Origin)> {
        self.view().functions.get(name).cloned()
    }

    /// Every function route, in name order.
    pub fn functions(&self) -> Vec<FunctionRoute> {
        self.view().functions.values().map(|(f, _)| f.clone()).collect()
    }

    /// Every function route with its origin, in name order.
    pub fn function_entries(&self) -> Vec<(FunctionRoute, Origin)> {
        self.view().functions.values().cloned().collect()
    }

    fn file(&self) -> &str {
        if self.inner.declared.file.is_empty() {
            "faas.toml"
        } else {
            &self.inner.declared.file
        }
    }

    /// Runs one change: loads the latest document, applies `change` (which validates against the fresh view),
    /// saves, then swaps the in-memory view. Nothing changes if any step fails.
    async fn change<T>(
        &self,
        change: impl FnOnce(&mut Document, &Snapshot) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _guard = self.inner.write.lock().await;
        let mut doc = parse_document(self.inner.store.load_registry().await.map_err(store_error)?)
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let before = Snapshot::build(&doc, &self.inner.declared);
        let out = change(&mut doc, &before)?;
        let after = Snapshot::build(&doc, &self.inner.declared);
        let bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|e| ApiError::unavailable(format!("cannot encode the registry: {e}")))?;
        self.inner.store.save_registry(Bytes::from(bytes)).await.map_err(store_error)?;
        self.swap(after);
        Ok(out)
    }

    fn check_subscription(&self, view: &Snapshot, s: &Subscription) -> Result<(), ApiError> {
        if let Some((name, field)) = view.missing_function(s) {
            let known = view.functions.keys().cloned().collect::<Vec<_>>();
            return Err(ApiError::invalid(
                field,
                format!(
                    "function `{name}` is not registered with the gateway; registered functions: {}",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            ));
        }
        Ok(())
    }

    fn declared_subscription(&self, id: &str) -> ApiError {
        ApiError::conflict(format!(
            "subscription `{id}` is declared in {} ([[gateway.subscriptions]] with id = \"{id}\"); \
             change it there, not through the API",
            self.file()
        ))
    }

    fn declared_function(&self, name: &str) -> ApiError {
        ApiError::conflict(format!(
            "function `{name}` is declared in {} ([gateway.functions.{name}]); change it there, not through the API",
            self.file()
        ))
    }

    /// Validates `request`, gives it a new UUID v4 id and saves it.
    pub async fn create_subscription(&self, request: SubscriptionRequest) -> Result<Subscription, ApiError> {
        let sub = request.validate(uuid::Uuid::new_v4().to_string())?;
        self.change(|doc, view| {
            self.check_subscription(view, &sub)?;
            if view.subscriptions.len() >= MAX_ENTRIES {
                return Err(ApiError::conflict(format!("the registry already holds {MAX_ENTRIES} subscriptions")));
            }
            doc.subscriptions.insert(sub.id.clone(), sub.clone());
            Ok(sub)
        })
        .await
    }

    /// Replaces the API-created subscription `id` with `request` (404 if unknown, 409 if declared in
    /// `faas.toml`, 400 if `request.id` names another subscription).
    pub async fn update_subscription(&self, id: &str, request: SubscriptionRequest) -> Result<Subscription, ApiError> {
        if self.inner.declared.subscriptions.iter().any(|s| s.id == id) {
            return Err(self.declared_subscription(id));
        }
        if let Some(other) = request.id.as_deref().filter(|other| *other != id) {
            return Err(ApiError::invalid("id", format!("`{other}` differs from the id in the path, `{id}`")));
        }
        let sub = request.validate(id.to_string())?;
        self.change(|doc, view| {
            match view.subscriptions.get(id) {
                None => return Err(ApiError::not_found(format!("no subscription `{id}`"))),
                Some((_, Origin::Config)) => return Err(self.declared_subscription(id)),
                Some((_, Origin::Api)) => {}
            }
            self.check_subscription(view, &sub)?;
            doc.subscriptions.insert(sub.id.clone(), sub.clone());
            Ok(sub)
        })
        .await
    }

    /// Deletes the API-created subscription `id` (404 if unknown, 409 if declared in `faas.toml`).
    /// Deliveries already stored for it are dropped by the delivery workers.
    pub async fn delete_subscription(&self, id: &str) -> Result<(), ApiError> {
        self.change(|doc, view| {
            match view.subscriptions.get(id) {
                None => return Err(ApiError::not_found(format!("no subscription `{id}`"))),
                Some((_, Origin::Config)) => return Err(self.declared_subscription(id)),
                Some((_, Origin::Api)) => {}
            }
            doc.subscriptions.remove(id);
            Ok(())
        })
        .await
    }

    /// Registers a function route (409 if the name is taken).
    pub async fn create_function(&self, request: FunctionRequest) -> Result<FunctionRoute, ApiError> {
        let name = request.name.clone().ok_or_else(|| ApiError::invalid("name", "is required"))?;
        let route = request.validate(&name, &self.inner.declared.backends)?;
        self.change(|doc, view| {
            match view.functions.get(&name) {
                Some((_, Origin::Config)) => return Err(self.declared_function(&name)),
                Some((_, Origin::Api)) => {
                    return Err(ApiError::conflict(format!(
                        "function `{name}` already exists; update it with PUT /functions/{name}"
                    )))
                }
                None => {}
            }
            if view.functions.len() >= MAX_ENTRIES {
                return Err(ApiError::conflict(format!("the registry already holds {MAX_ENTRIES} functions")));
            }
            doc.functions.insert(name.clone(), route.clone());
            Ok(route)
        })
        .await
    }

    /// Replaces the API-created function route `name` (404 if unknown, 409 if declared in `faas.toml`).
    pub async fn update_function(&self, name: &str, request: FunctionRequest) -> Result<FunctionRoute, ApiError> {
        if self.inner.declared.functions.iter().any(|f| f.name == name) {
            return Err(self.declared_function(name));
        }
        let route = request.validate(name, &self.inner.declared.backends)?;
        self.change(|doc, view| {
            match view.functions.get(name) {
                None => return Err(ApiError::not_found(format!("no function `{name}`"))),
                Some((_, Origin::Config)) => return Err(self.declared_function(name)),
                Some((_, Origin::Api)) => {}
            }
            doc.functions.insert(name.to_string(), route.clone());
            Ok(route)
        })
        .await
    }

    /// Deletes the API-created function route `name` (404 if unknown, 409 if declared in `faas.toml` or used
    /// by a subscription).
    pub async fn delete_function(&self, name: &str) -> Result<(), ApiError> {
        self.change(|doc, view| {
            match view.functions.get(name) {
                None => return Err(ApiError::not_found(format!("no function `{name}`"))),
                Some((_, Origin::Config)) => return Err(self.declared_function(name)),
                Some((_, Origin::Api)) => {}
            }
            let users = view.users_of(name);
            if !users.is_empty() {
                return Err(ApiError::conflict(format!(
                    "function `{name}` is the sink of subscription(s) {}; delete or change them first",
                    users.join(", ")
                )));
            }
            doc.functions.remove(name);
            Ok(())
        })
        .await
    }

    /// Reloads the saved document (changes made by other replicas). On error the current view stays.
    pub async fn refresh(&self) -> Result<(), RegistryError> {
        let _guard = self.inner.write.lock().await;
        let doc = parse_document(self.inner.store.load_registry().await?)?;
        self.swap(Snapshot::build(&doc, &self.inner.declared));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::EventBuilder;
    use faas_gateway_store::{Appended, Delivery, DeliveryKey, NewEvent, StoreStats};
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, SystemTime};

    /// A store that keeps only the registry document, and can be told to fail saves.
    #[derive(Default)]
    struct DocStore {
        doc: Mutex<Option<Bytes>>,
        fail: AtomicBool,
    }

    #[async_trait::async_trait]
    impl EventStore for DocStore {
        async fn append(&self, _: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
            Err(StoreError::Unavailable("registry-only test store".into()))
        }
        async fn claim(&self, _: usize, _: Duration, _: Duration) -> Result<Vec<Delivery>, StoreError> {
            Ok(vec![])
        }
        async fn ack(&self, key: &DeliveryKey) -> Result<(), StoreError> {
            Err(StoreError::UnknownDelivery(key.clone()))
        }
        async fn retry_at(&self, key: &DeliveryKey, _: SystemTime) -> Result<(), StoreError> {
            Err(StoreError::UnknownDelivery(key.clone()))
        }
        async fn stats(&self) -> Result<StoreStats, StoreError> {
            Ok(StoreStats::default())
        }
        async fn load_registry(&self) -> Result<Option<Bytes>, StoreError> {
            Ok(self.doc.lock().unwrap().clone())
        }
        async fn save_registry(&self, document: Bytes) -> Result<(), StoreError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("disk on fire".into()));
            }
            *self.doc.lock().unwrap() = Some(document);
            Ok(())
        }
    }

    fn req(v: serde_json::Value) -> SubscriptionRequest {
        serde_json::from_value(v).unwrap()
    }

    fn declared() -> Declared {
        Declared {
            backends: ["local".to_string(), "prod".to_string()].into_iter().collect(),
            functions: vec![FunctionRoute { name: "billing".into(), backend: "prod".into(), target: None }],
            subscriptions: vec![req(json!({"types": ["order"], "sink": "function:billing"}))
                .validate("orders-to-billing".into())
                .unwrap()],
            file: "faas.toml".into(),
        }
    }

    fn event(ty: &str) -> Event {
        cloudevents::EventBuilderV10::new().id("1").source("/s").ty(ty).build().unwrap()
    }

    async fn open(store: &Arc<DocStore>) -> RegistryHandle {
        RegistryHandle::open(store.clone(), declared()).await.unwrap()
    }

    #[tokio::test]
    async fn matching_uses_types_and_filters_and_sorts_ids() {
        let store = Arc::new(DocStore::default());
        let r = open(&store).await;
        let any = r.create_subscription(req(json!({"sink": "http://127.0.0.1:9/"}))).await.unwrap();
        let typed = r
            .create_subscription(req(json!({"types": ["order", "refund"], "sink": "function:billing"})))
            .await
            .unwrap();
        let filtered = r
            .create_subscription(req(
                json!({"filters": [{"exact": {"type": "refund"}}], "sink": "http://127.0.0.1:9/"}),
            ))
            .await
            .unwrap();
        let mut want = vec![any.id.clone(), typed.id.clone(), "orders-to-billing".to_string()];
        want.sort();
        assert_eq!(r.matching(&event("order")), want);
        let mut want = vec![any.id.clone(), typed.id.clone(), filtered.id.clone()];
        want.sort();
        assert_eq!(r.matching(&event("refund")), want);
        assert_eq!(r.matching(&event("other")), vec![any.id.clone()]);
    }

    #[tokio::test]
    async fn changes_persist_and_declared_entries_are_read_only() {
        let store = Arc::new(DocStore::default());
        let r = open(&store).await;
        assert_eq!(r.subscription_entry("orders-to-billing").unwrap().1, Origin::Config);
        let e = r.delete_subscription("orders-to-billing").await.unwrap_err();
        assert_eq!(e.status, http::StatusCode::CONFLICT);
        assert!(e.message.contains("declared in faas.toml"), "{e}");
        let e = r.update_function("billing", FunctionRequest { backend: Some("local".into()), ..Default::default() });
        assert_eq!(e.await.unwrap_err().status, http::StatusCode::CONFLICT);

        let f = r
            .create_function(FunctionRequest {
                name: Some("audit".into()),
                backend: Some("local".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let s = r.create_subscription(req(json!({"sink": "function:audit"}))).await.unwrap();
        let reopened = open(&store).await;
        assert_eq!(reopened.function("audit"), Some(f));
        assert_eq!(reopened.subscription_entry(&s.id), Some((s.clone(), Origin::Api)));
        let saved: serde_json::Value = serde_json::from_slice(&store.doc.lock().unwrap().clone().unwrap()).unwrap();
        assert!(saved["subscriptions"].get("orders-to-billing").is_none(), "declared entries are not saved");

        let e = r.delete_function("audit").await.unwrap_err();
        assert_eq!(e.status, http::StatusCode::CONFLICT);
        assert!(e.message.contains(&s.id), "{e}");
        r.delete_subscription(&s.id).await.unwrap();
        r.delete_function("audit").await.unwrap();
        assert_eq!(r.delete_function("audit").await.unwrap_err().status, http::StatusCode::NOT_FOUND);
        assert_eq!(r.delete_subscription(&s.id).await.unwrap_err().status, http::StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_failed_save_changes_nothing() {
        let store = Arc::new(DocStore::default());
        let r = open(&store).await;
        store.fail.store(true, Ordering::SeqCst);
        let e = r.create_subscription(req(json!({"sink": "http://127.0.0.1:9/"}))).await.unwrap_err();
        assert_eq!(e.status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("disk on fire"));
        assert_eq!(r.subscriptions().len(), 1);
        assert_eq!(r.matching(&event("x")), Vec::<String>::new());
    }

    #[tokio::test]
    async fn unknown_functions_and_backends_are_refused() {
        let store = Arc::new(DocStore::default());
        let r = open(&store).await;
        let e = r.create_subscription(req(json!({"sink": "function:nope"}))).await.unwrap_err();
        assert_eq!(e.field.as_deref(), Some("sink"));
        assert!(e.message.contains("function `nope` is not registered"), "{e}");
        let e = r
            .create_subscription(req(json!({"sink": "function:billing", "delivery": {"deadletter": "function:dlq"}})))
            .await
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("delivery.deadletter"));
        let e = r
            .create_function(FunctionRequest {
                name: Some("x".into()),
                backend: Some("azure".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "backend: unknown backend profile `azure`; known profiles: local, prod");
        let e = r.create_function(FunctionRequest {
            name: Some("billing".into()),
            backend: Some("local".into()),
            ..Default::default()
        });
        assert_eq!(e.await.unwrap_err().status, http::StatusCode::CONFLICT);

        let mut bad = declared();
        bad.functions[0].backend = "gcp".into();
        let e = RegistryHandle::open(store.clone(), bad).await.unwrap_err();
        assert!(e.to_string().contains("[gateway.functions.billing]: backend: unknown backend profile `gcp`"), "{e}");
        let mut bad = declared();
        bad.functions.clear();
        let e = RegistryHandle::open(store.clone(), bad).await.unwrap_err();
        assert!(e.to_string().contains("names function `billing`, which is not registered"), "{e}");
    }

    #[tokio::test]
    async fn update_replaces_and_checks_the_id() {
        let store = Arc::new(DocStore::default());
        let r = open(&store).await;
        let s = r.create_subscription(req(json!({"types": ["a"], "sink": "http://127.0.0.1:9/"}))).await.unwrap();
        let u =
            r.update_subscription(&s.id, req(json!({"types": ["b"], "sink": "http://127.0.0.1:9/"}))).await.unwrap();
        assert_eq!(u.id, s.id);
        assert_eq!(r.matching(&event("a")), Vec::<String>::new());
        assert_eq!(r.matching(&event("b")), vec![s.id.clone()]);
        let e = r.update_subscription(&s.id, req(json!({"id": "other", "sink": "http://127.0.0.1:9/"}))).await;
        assert_eq!(e.unwrap_err().field.as_deref(), Some("id"));
        let e = r.update_subscription("nope", req(json!({"sink": "http://127.0.0.1:9/"}))).await;
        assert_eq!(e.unwrap_err().status, http::StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn refresh_sees_other_replicas_and_a_damaged_document_is_reported() {
        let store = Arc::new(DocStore::default());
        let a = open(&store).await;
        let b = open(&store).await;
        let s = a.create_subscription(req(json!({"sink": "http://127.0.0.1:9/"}))).await.unwrap();
        assert!(b.subscription(&s.id).is_none());
        b.refresh().await.unwrap();
        assert!(b.subscription(&s.id).is_some());

        *store.doc.lock().unwrap() = Some(Bytes::from_static(b"{not json"));
        assert!(matches!(b.refresh().await.unwrap_err(), RegistryError::Corrupt(_)));
        assert!(b.subscription(&s.id).is_some(), "a failed refresh keeps the current view");
        assert!(matches!(
            RegistryHandle::open(store.clone(), declared()).await.unwrap_err(),
            RegistryError::Corrupt(_)
        ));
    }
}
