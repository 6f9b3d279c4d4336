//! Portable state: `cx.state()`, one key–value API on every backend.
//!
//! A function's state is a set of keys of its app, each holding bytes (or JSON, with the typed
//! helpers) and a [`Version`] that changes on every write. [`State::set_if`] writes only if the key
//! is still at the version a read returned (or still absent), so a read–modify–write loop never
//! loses an update: a write that lost the race fails with [`ErrorKind::Conflict`] (409), its message
//! naming the current version ([`conflict_version`] reads it back). Keys may expire
//! ([`SetOptions::ttl`]) and can be listed by prefix, a page at a time.
//!
//! The store behind it is a [`StateStore`]: on a backend, the event gateway's state service,
//! reached through the address and per-app token the runner puts in the function's environment;
//! in a unit test, [`MemoryState`], which keeps the same rules in memory.
//!
//! ```
//! use std::sync::Arc;
//! use faas_api::state::{MemoryState, State};
//! use faas_api::{Context, ErrorKind};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), faas_api::Error> {
//! let cx = Context::builder("counter").state(Arc::new(MemoryState::default())).build();
//! let state: State = cx.state();
//! // A counter that never loses an increment, however many invocations race on it.
//! let next = loop {
//!     let current = state.get_json::<u64>("visits").await?;
//!     let (n, version) = current.map_or((0, None), |c| (c.value, Some(c.version)));
//!     match state.set_json_if("visits", &(n + 1), version).await {
//!         Ok(_) => break n + 1,
//!         Err(e) if e.kind() == ErrorKind::Conflict => continue, // someone else wrote first: read again
//!         Err(e) => return Err(e),
//!     }
//! };
//! assert_eq!(next, 1);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{Error, ErrorKind};

/// Longest key, in bytes (the service keeps each app's keys under a prefix of its own, within
/// the store's own limit).
pub const MAX_KEY_BYTES: usize = 512;

/// Largest value, in bytes: what every planned store takes in one item (DynamoDB's 400 KB is the
/// smallest of them), so state written here can move to a native store unchanged.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// Most keys in one page of [`State::list`].
pub const MAX_PAGE: usize = 1000;

/// Longest time-to-live: a year.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The state service's URL for a function's app (`http://127.0.0.1:8090/state/v1/shop`), in the
/// function's environment.
pub const ENV_STATE_URL: &str = "FAAS_STATE_URL";
/// The app's state token ([`app_token`]), in the function's environment.
pub const ENV_STATE_TOKEN: &str = "FAAS_STATE_TOKEN";
/// The environment variable [`bind`] takes the gateway's management token from when the profile
/// has no `state_token`.
pub const ENV_GATEWAY_TOKEN: &str = "FAAS_GATEWAY_TOKEN";

/// The state service's header with a key's version: on a read, after a write, and on a conflict
/// (the current one, `none` for an absent key).
pub const VERSION_HEADER: &str = "faas-state-version";
/// The state service's header with when a key with a time-to-live expires (Unix epoch ms).
pub const EXPIRES_HEADER: &str = "faas-state-expires-ms";
/// The state service's header with a write's time-to-live, in milliseconds.
pub const TTL_HEADER: &str = "faas-state-ttl-ms";

/// The settings every backend profile takes, whatever its kind: `state`, the event gateway whose
/// state service its functions use (`http://127.0.0.1:8090`), and `state_token`, a secret
/// reference (`env:NAME` or `file:PATH`) to that gateway's management token (default: the
/// `FAAS_GATEWAY_TOKEN` environment variable). See [`bind`].
pub const PROFILE_KEYS: [&str; 2] = ["state", "state_token"];

/// App `app`'s state token: HMAC-SHA256 of `faas-state/v1:<app>` under the gateway's management
/// token, in hex. Whoever holds the management token (the `faas` command deploying the app) can
/// give a function its app's token; the gateway checks it the same way, so a token opens that one
/// app's keys, and changing the management token changes every app's.
///
/// ```
/// let a = faas_api::state::app_token("s3cret", "shop");
/// assert_eq!(a.len(), 64);
/// assert_ne!(a, faas_api::state::app_token("s3cret", "blog"));
/// assert_ne!(a, faas_api::state::app_token("other", "shop"));
/// ```
pub fn app_token(management_token: &str, app: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(management_token.as_bytes()).expect("HMAC takes any key");
    mac.update(b"faas-state/v1:");
    mac.update(app.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives every function of `app` the state service `profile` names (its `state` and
/// `state_token` keys, see [`PROFILE_KEYS`]): [`ENV_STATE_URL`] and [`ENV_STATE_TOKEN`] in each
/// function's environment, which every runner applies and every host reads, so `cx.state()`
/// works the same on each backend. A function whose faas.toml `env` already sets them keeps its
/// own. Returns whether the profile names a state service; without one, nothing changes (and
/// `cx.state()` says how to give it one). `env` looks up `FAAS_GATEWAY_TOKEN`.
///
/// ```
/// use faas_api::{AppSpec, BackendProfile, FunctionSpec};
/// use faas_api::state::{bind, app_token, ENV_STATE_TOKEN, ENV_STATE_URL};
/// let mut app = AppSpec { app: "shop".into(), binary: "shop".into(), manifest: faas_api::App::new().manifest(),
///     functions: vec![FunctionSpec::new("cart")] };
/// let profile = BackendProfile::new("emu", "lambda").with("state", "http://127.0.0.1:8090/");
/// let env = |k: &str| (k == "FAAS_GATEWAY_TOKEN").then(|| "s3cret".to_string());
/// assert!(bind(&mut app, &profile, &env).unwrap());
/// let vars = &app.functions[0].env;
/// assert_eq!(vars[ENV_STATE_URL], "http://127.0.0.1:8090/state/v1/shop");
/// assert_eq!(vars[ENV_STATE_TOKEN], app_token("s3cret", "shop"));
///
/// let err = bind(&mut app, &profile, &|_| None).unwrap_err();
/// assert!(err.message().contains("backends.emu.state_token"), "{err}");
/// let bad = BackendProfile::new("emu", "lambda").with("state", "127.0.0.1:8090");
/// assert!(bind(&mut app, &bad, &env).unwrap_err().message().contains("not an http:// or https:// URL"));
/// assert!(!bind(&mut app, &BackendProfile::new("dev", "local"), &env).unwrap());
/// ```
pub fn bind(
    app: &mut crate::AppSpec,
    profile: &crate::BackendProfile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, Error> {
    let key_error = |key: &str, why: String| {
        Error::bad_input(format!("{}: key `backends.{}.{key}`: {why}", profile.origin, profile.name))
            .with_type("InvalidConfig")
    };
    let Some(url) = profile.str("state")?.filter(|u| !u.trim().is_empty()) else {
        if profile.settings.contains_key("state_token") {
            return Err(key_error("state_token", "is set without `state` (the event gateway's URL)".into()));
        }
        return Ok(false);
    };
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(key_error("state", format!("`{url}` is not an http:// or https:// URL")));
    }
    let token = match profile.secret("state_token")? {
        Some(t) => t,
        None => env(ENV_GATEWAY_TOKEN).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            key_error(
                "state_token",
                format!(
                    "the gateway's management token is needed to give the app its state token: set                      `state_token = \"env:NAME\"` (or `file:PATH`), or {ENV_GATEWAY_TOKEN}"
                ),
            )
        })?,
    };
    let (base, token) = (format!("{url}/state/v1/{}", app.app), app_token(token.trim(), &app.app));
    for f in &mut app.functions {
        if !f.env.contains_key(ENV_STATE_URL) {
            f.env.insert(ENV_STATE_URL.to_string(), base.clone());
            f.env.insert(ENV_STATE_TOKEN.to_string(), token.clone());
        }
    }
    Ok(true)
}

/// The version of a key's value: it changes on every write (and never comes back, even for a key
/// deleted and written again), so [`State::set_if`] can tell whether anything was written since a
/// read. Compare versions for equality only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u64);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A value as read, with its version and, for a key written with a time-to-live, when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The version to pass to [`State::set_if`] or [`State::delete_if`].
    pub version: Version,
    /// When the key stops being readable, if it was written with a time-to-live.
    pub expires_at: Option<SystemTime>,
}

/// The condition a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Whatever the key holds.
    #[default]
    Any,
    /// Only if the key is absent (never written, deleted or expired).
    Absent,
    /// Only if the key is at this version.
    Version(Version),
}

impl Expect {
    /// The condition "still as read": at `version`, or absent when the read found nothing.
    ///
    /// ```
    /// use faas_api::state::{Expect, Version};
    /// assert_eq!(Expect::read(None), Expect::Absent);
    /// assert_eq!(Expect::read(Some(Version(4))), Expect::Version(Version(4)));
    /// ```
    pub fn read(version: Option<Version>) -> Expect {
        version.map_or(Expect::Absent, Expect::Version)
    }

    /// Whether a key now at `current` (`None`: absent) meets it.
    pub fn met_by(self, current: Option<Version>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// How to write: under a condition, with a time-to-live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetOptions {
    /// The condition ([`Expect::Any`] by default).
    pub expect: Expect,
    /// The key reads as absent once this much time has passed (at most [`MAX_TTL`]); `None`: it
    /// lasts until deleted.
    pub ttl: Option<Duration>,
}

/// One page of [`State::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The keys and their values, in ascending byte order of the key.
    pub entries: Vec<(String, Versioned<Bytes>)>,
    /// When more keys follow: pass it as `after` for the next page.
    pub next: Option<String>,
}

/// Where a function's state is kept: what [`State`] calls. Implementations keep the rules of the
/// [module documentation](self): versions that change on every write and never repeat,
/// conditions decided against the latest write of the key (linearizable per key), expired keys
/// absent, keys and values checked with [`check_key`] and [`check_value`].
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The key's value, or `None` if it is absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Versioned<Bytes>>, Error>;
    /// Writes `value` under `key` if `options.expect` holds; the new version. A condition that
    /// does not hold is [`ErrorKind::Conflict`], naming the current version ([`conflict`]).
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<Version, Error>;
    /// Deletes `key` if `expect` holds; whether it existed.
    async fn delete(&self, key: &str, expect: Expect) -> Result<bool, Error>;
    /// Up to `limit` (1 to [`MAX_PAGE`]) live keys starting with `prefix`, after `after`.
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, Error>;
}

/// A function's state (see the [module documentation](self)); `cx.state()` gives it.
#[derive(Clone)]
pub struct State {
    store: std::sync::Arc<dyn StateStore>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl State {
    /// State kept in `store`.
    pub fn new(store: std::sync::Arc<dyn StateStore>) -> State {
        State { store }
    }

    /// The key's value and version, or `None` when it is absent (or expired).
    pub async fn get(&self, key: &str) -> Result<Option<Versioned<Bytes>>, Error> {
        check_key(key)?;
        self.store.get(key).await
    }

    /// The key's value read as JSON of type `T`; a value that is not is `bad_input` naming the key.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, Error> {
        let Some(read) = self.get(key).await? else { return Ok(None) };
        let value = serde_json::from_slice(&read.value)
            .map_err(|e| Error::bad_input(format!("state key `{key}` does not hold the JSON expected: {e}")))?;
        Ok(Some(Versioned { value, version: read.version, expires_at: read.expires_at }))
    }

    /// Writes `value` under `key`, whatever it held; the new version.
    pub async fn set(&self, key: &str, value: impl Into<Bytes>) -> Result<Version, Error> {
        self.set_with(key, value, SetOptions::default()).await
    }

    /// Writes `value` under `key` only if it is still at `version` (`None`: only if it is still
    /// absent), as a read returned it; otherwise [`ErrorKind::Conflict`] with the current version.
    pub async fn set_if(&self, key: &str, value: impl Into<Bytes>, version: Option<Version>) -> Result<Version, Error> {
        self.set_with(key, value, SetOptions { expect: Expect::read(version), ttl: None }).await
    }

    /// Writes `value` under `key` with `options` (a condition, a time-to-live).
    pub async fn set_with(&self, key: &str, value: impl Into<Bytes>, options: SetOptions) -> Result<Version, Error> {
        let value = value.into();
        check_key(key)?;
        check_value(key, value.len())?;
        if let Some(ttl) = options.ttl {
            check_ttl(key, ttl)?;
        }
        self.store.set(key, value, options).await
    }

    /// [`State::set`] of `value` as JSON.
    pub async fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Version, Error> {
        self.set(key, json_bytes(key, value)?).await
    }

    /// [`State::set_if`] of `value` as JSON.
    pub async fn set_json_if<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        version: Option<Version>,
    ) -> Result<Version, Error> {
        self.set_if(key, json_bytes(key, value)?, version).await
    }

    /// Deletes `key`; whether it existed. Deleting an absent key is not an error.
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        self.store.delete(key, Expect::Any).await
    }

    /// Deletes `key` only if it is still at `version`; otherwise [`ErrorKind::Conflict`].
    pub async fn delete_if(&self, key: &str, version: Version) -> Result<bool, Error> {
        check_key(key)?;
        self.store.delete(key, Expect::Version(version)).await
    }

    /// Up to `limit` (1 to [`MAX_PAGE`]) keys starting with `prefix` (empty: all), in byte order,
    /// after the key `after` (the previous page's `next`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use faas_api::state::{MemoryState, State};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), faas_api::Error> {
    /// let state = State::new(Arc::new(MemoryState::default()));
    /// for k in ["cart/1", "cart/2", "cart/3", "user/1"] {
    ///     state.set(k, "x").await?;
    /// }
    /// let first = state.list("cart/", None, 2).await?;
    /// assert_eq!(first.entries.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["cart/1", "cart/2"]);
    /// let rest = state.list("cart/", first.next.as_deref(), 2).await?;
    /// assert_eq!((rest.entries.len(), rest.next), (1, None));
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, Error> {
        if !prefix.is_empty() {
            check_chars(prefix, "prefix")?;
        }
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::bad_input(format!("a state list takes 1 to {MAX_PAGE} keys a page, not {limit}")));
        }
        self.store.list(prefix, after, limit).await
    }
}

fn json_bytes<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::bad_input(format!("state key `{key}`: the value is not JSON: {e}")))
}

/// Checks a state key, naming the problem: 1 to [`MAX_KEY_BYTES`] bytes of UTF-8 without control
/// characters, in `/`-separated segments none of which is empty or `.` or `..`.
///
/// ```
/// use faas_api::state::check_key;
/// assert!(check_key("carts/ada/items").is_ok());
/// assert!(check_key("").unwrap_err().message().contains("empty"));
/// assert!(check_key("a//b").unwrap_err().message().contains("empty segment"));
/// assert!(check_key("a/../b").unwrap_err().message().contains("`..`"));
/// assert!(check_key("tab\there").unwrap_err().message().contains("control character"));
/// assert!(check_key(&"k".repeat(513)).unwrap_err().message().contains("512"));
/// ```
pub fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::bad_input("a state key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::bad_input(format!(
            "state key `{}…` is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.chars().take(40).collect::<String>(),
            key.len()
        )));
    }
    check_chars(key, "key")?;
    for segment in key.split('/') {
        match segment {
            "" => {
                return Err(Error::bad_input(format!(
                    "state key `{key}` has an empty segment (a leading, trailing or doubled `/`)"
                )));
            }
            "." | ".." => return Err(Error::bad_input(format!("state key `{key}` has a `{segment}` segment"))),
            _ => {}
        }
    }
    Ok(())
}

fn check_chars(text: &str, what: &str) -> Result<(), Error> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => {
            Err(Error::bad_input(format!("state {what} `{}` holds a control character ({c:?})", text.escape_debug())))
        }
        None => Ok(()),
    }
}

/// Checks a value's size against [`MAX_VALUE_BYTES`], naming the key.
pub fn check_value(key: &str, len: usize) -> Result<(), Error> {
    if len > MAX_VALUE_BYTES {
        return Err(Error::payload_too_large(format!(
            "the value for state key `{key}` is {len} bytes; the limit is {MAX_VALUE_BYTES}"
        )));
    }
    Ok(())
}

fn check_ttl(key: &str, ttl: Duration) -> Result<(), Error> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(Error::bad_input(format!(
            "the time-to-live for state key `{key}` is {ttl:?}; give 1 ms to a year"
        )));
    }
    Ok(())
}

/// The [`ErrorKind::Conflict`] error of a write whose condition did not hold; the message names
/// the key's current version (or that it is absent) so [`conflict_version`] can read it back.
///
/// ```
/// use faas_api::state::{conflict, conflict_version, Version};
/// let e = conflict("visits", Some(Version(8)));
/// assert_eq!(e.message(), "state key `visits` was written since it was read (current version: 8)");
/// assert_eq!(conflict_version(&e), Some(Some(Version(8))));
/// assert_eq!(conflict_version(&conflict("visits", None)), Some(None));
/// ```
pub fn conflict(key: &str, current: Option<Version>) -> Error {
    let (what, version) = match current {
        Some(v) => ("was written since it was read", v.to_string()),
        None => ("is absent", "none".to_string()),
    };
    Error::conflict(format!("state key `{key}` {what} (current version: {version})")).with_type("StateConflict")
}

/// The current version a state conflict names: `Some(None)` when the key is absent, `None` when
/// `e` is not such a conflict.
pub fn conflict_version(e: &Error) -> Option<Option<Version>> {
    if e.kind() != ErrorKind::Conflict {
        return None;
    }
    let rest = e.message().rsplit_once("(current version: ")?.1.strip_suffix(')')?;
    match rest {
        "none" => Some(None),
        n => n.parse().ok().map(|n| Some(Version(n))),
    }
}

/// State in memory, with the rules of a real store: for unit tests of a function, and what a
/// context built without a store uses ([`StateStore`] docs list the rules).
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// use faas_api::state::{MemoryState, SetOptions, State};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), faas_api::Error> {
/// let state = State::new(Arc::new(MemoryState::default()));
/// let v1 = state.set("k", "one").await?;
/// let v2 = state.set_if("k", "two", Some(v1)).await?;
/// assert_ne!(v1, v2);
/// let lost = state.set_if("k", "three", Some(v1)).await.unwrap_err(); // v1 is stale now
/// assert_eq!(lost.kind(), faas_api::ErrorKind::Conflict);
/// assert_eq!(&state.get("k").await?.unwrap().value[..], b"two");
/// state.set_with("brief", "x", SetOptions { ttl: Some(Duration::from_millis(20)), ..Default::default() }).await?;
/// tokio::time::sleep(Duration::from_millis(40)).await;
/// assert!(state.get("brief").await?.is_none()); // expired
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryState {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    keys: BTreeMap<String, (Bytes, Version, Option<SystemTime>)>,
    last: u64,
}

impl Memory {
    fn live(&mut self, key: &str, now: SystemTime) -> Option<&(Bytes, Version, Option<SystemTime>)> {
        if self.keys.get(key).is_some_and(|(_, _, exp)| exp.is_some_and(|t| t <= now)) {
            self.keys.remove(key);
        }
        self.keys.get(key)
    }
}

#[async_trait]
impl StateStore for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Bytes>>, Error> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(m.live(key, SystemTime::now()).map(|(value, version, expires_at)| Versioned {
            value: value.clone(),
            version: *version,
            expires_at: *expires_at,
        }))
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<Version, Error> {
        let now = SystemTime::now();
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let current = m.live(key, now).map(|(_, v, _)| *v);
        if !options.expect.met_by(current) {
            return Err(conflict(key, current));
        }
        m.last += 1;
        let version = Version(m.last);
        m.keys.insert(key.to_string(), (value, version, options.ttl.map(|t| now + t)));
        Ok(version)
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool, Error> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let current = m.live(key, SystemTime::now()).map(|(_, v, _)| *v);
        if !expect.met_by(current) {
            return Err(conflict(key, current));
        }
        if current.is_some() {
            m.last += 1; // a delete is a write: the key's next version is a new one
        }
        Ok(m.keys.remove(key).is_some())
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, Error> {
        let now = SystemTime::now();
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = Vec::new();
        let mut next = None;
        let live = m
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .filter(|(_, (_, _, exp))| exp.is_none_or(|t| t > now));
        for (k, (value, version, expires_at)) in live {
            if entries.len() == limit {
                next = entries.last().map(|(k, _): &(String, _)| k.clone());
                break;
            }
            entries.push((k.clone(), Versioned { value: value.clone(), version: *version, expires_at: *expires_at }));
        }
        Ok(Page { entries, next })
    }
}

/// The store of a context built without one: every operation is refused with
/// `backend_unavailable`, saying how to give the function a state service.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoState;

impl NoState {
    fn refuse(key: &str) -> Error {
        Error::unavailable(format!(
            "cannot use state key `{key}`: this function has no state service (give its backend profile a \
             `state` key naming the event gateway, or build the context with `.state(...)` in a test)"
        ))
    }
}

#[async_trait]
impl StateStore for NoState {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Bytes>>, Error> {
        Err(NoState::refuse(key))
    }
    async fn set(&self, key: &str, _: Bytes, _: SetOptions) -> Result<Version, Error> {
        Err(NoState::refuse(key))
    }
    async fn delete(&self, key: &str, _: Expect) -> Result<bool, Error> {
        Err(NoState::refuse(key))
    }
    async fn list(&self, prefix: &str, _: Option<&str>, _: usize) -> Result<Page, Error> {
        Err(NoState::refuse(prefix))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn state() -> State {
        State::new(Arc::new(MemoryState::default()))
    }

    #[tokio::test]
    async fn a_version_never_comes_back_after_a_delete() {
        let s = state();
        let v1 = s.set("k", "a").await.unwrap();
        assert!(s.delete("k").await.unwrap());
        let v2 = s.set("k", "b").await.unwrap();
        assert_ne!(v1, v2);
        let e = s.set_if("k", "c", Some(v1)).await.unwrap_err();
        assert_eq!(conflict_version(&e), Some(Some(v2)));
        // Absent: only an absent condition holds.
        assert!(s.delete_if("k", v2).await.unwrap());
        assert_eq!(conflict_version(&s.delete_if("k", v2).await.unwrap_err()), Some(None));
        s.set_if("k", "d", None).await.unwrap();
        assert_eq!(s.set_if("k", "e", None).await.unwrap_err().kind(), ErrorKind::Conflict);
    }

    #[tokio::test]
    async fn bad_keys_values_and_pages_are_refused_before_the_store() {
        let s = State::new(Arc::new(NoState));
        assert_eq!(s.get("/lead").await.unwrap_err().kind(), ErrorKind::BadInput);
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        let e = s.set("k", big).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PayloadTooLarge);
        assert!(e.message().contains("state key `k`"), "{e}");
        let ttl = SetOptions { ttl: Some(Duration::ZERO), ..Default::default() };
        assert_eq!(s.set_with("k", "v", ttl).await.unwrap_err().kind(), ErrorKind::BadInput);
        assert_eq!(s.list("", None, 0).await.unwrap_err().kind(), ErrorKind::BadInput);
        // A valid request reaches the store, which here refuses it as unavailable.
        let e = s.get("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BackendUnavailable);
        assert!(e.message().contains("no state service"), "{e}");
    }

    #[tokio::test]
    async fn typed_values_round_trip_and_a_wrong_type_names_the_key() {
        let s = state();
        s.set_json("cart", &serde_json::json!({"items": 2})).await.unwrap();
        let read = s.get_json::<serde_json::Value>("cart").await.unwrap().unwrap();
        assert_eq!(read.value["items"], 2);
        let e = s.get_json::<u64>("cart").await.unwrap_err();
        assert!(e.message().contains("state key `cart`"), "{e}");
    }

    #[tokio::test]
    async fn fifty_racing_increments_end_at_fifty() {
        let s = state();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    loop {
                        let read = s.get_json::<u64>("n").await.unwrap();
                        let (n, v) = read.map_or((0, None), |r| (r.value, Some(r.version)));
                        tokio::task::yield_now().await; // let the others race
                        match s.set_json_if("n", &(n + 1), v).await {
                            Ok(_) => return,
                            Err(e) if e.kind() == ErrorKind::Conflict => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.get_json::<u64>("n").await.unwrap().unwrap().value, 50);
    }
}
