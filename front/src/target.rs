//! Where a `local` backend profile's commands go: the `faas dev` server it names. Shared by the
//! `faas` command and the gateway's function sinks.
//!
//! ```
//! use faas_api::BackendProfile;
//! use faas_front::target::local_target;
//! let profile = BackendProfile::new("dev", "local").with("endpoint", "http://127.0.0.1:9000/");
//! let target = local_target(&profile, None).unwrap();
//! assert_eq!(target.url, "http://127.0.0.1:9000");
//! assert_eq!(target.source, "endpoint");
//! ```

use faas_api::{BackendProfile, Error};
use faas_runner_local::LocalOptions;

/// Where a `local` profile points when nothing says otherwise.
///
/// ```
/// use faas_front::target::{local_target, DEFAULT_DEV_URL};
/// assert_eq!(DEFAULT_DEV_URL, "http://127.0.0.1:8080");
/// let target = local_target(&faas_api::BackendProfile::new("dev", "local"), None).unwrap();
/// assert_eq!((target.url.as_str(), target.source), (DEFAULT_DEV_URL, "default"));
/// ```
pub const DEFAULT_DEV_URL: &str = "http://127.0.0.1:8080";

/// A running dev server the caller already knows of (the `faas` command reads it from the
/// project's `.faas/dev.json`). A profile without `endpoint` or `port` points at it, and uses its
/// token when nothing else gives one.
///
/// ```
/// use faas_api::BackendProfile;
/// use faas_front::target::{local_target, KnownServer};
/// let known = KnownServer { url: "http://127.0.0.1:4567".into(), token: "abc123".into() };
/// let target = local_target(&BackendProfile::new("dev", "local"), Some(known)).unwrap();
/// assert_eq!((target.url.as_str(), target.source), ("http://127.0.0.1:4567", "dev.json"));
/// if std::env::var_os("FAAS_TOKEN").is_none() {
///     assert_eq!(target.token.as_deref(), Some("abc123"));
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownServer {
    /// Its base URL.
    pub url: String,
    /// Its management token.
    pub token: String,
}

/// The server a `local` profile names: the URL, the management token, and where the URL came
/// from (for messages).
///
/// ```
/// use faas_api::BackendProfile;
/// use faas_front::target::{local_target, KnownServer, LocalTarget};
/// let known = KnownServer { url: "http://127.0.0.1:8080".into(), token: "abc123".into() };
/// // The profile names another server: the known server's token is not sent there.
/// let profile = BackendProfile::new("dev", "local").with("port", 9001);
/// let target: LocalTarget = local_target(&profile, Some(known)).unwrap();
/// assert_eq!((target.url.as_str(), target.source), ("http://127.0.0.1:9001", "port"));
/// if std::env::var_os("FAAS_TOKEN").is_none() {
///     assert_eq!(target.token, None);
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    /// Base URL of the `faas dev` server.
    pub url: String,
    /// Management token, if one is known.
    pub token: Option<String>,
    /// Where the URL came from: `endpoint`, `port`, `dev.json` or `default`.
    pub source: &'static str,
}

/// Resolves a `local` profile (its settings checked like [`LocalOptions::from_profile`]): the
/// profile's `endpoint`, else its `port` on 127.0.0.1, else the `known` server, else
/// [`DEFAULT_DEV_URL`]. The token: the profile's `token` (a secret reference), else `FAAS_TOKEN`,
/// else the known server's token when it is the same server.
///
/// ```
/// use faas_api::BackendProfile;
/// use faas_front::target::{local_target, DEFAULT_DEV_URL};
/// let t = local_target(&BackendProfile::new("dev", "local").with("port", 4100), None).unwrap();
/// assert_eq!((t.url.as_str(), t.source), ("http://127.0.0.1:4100", "port"));
/// assert_eq!(local_target(&BackendProfile::new("dev", "local"), None).unwrap().url, DEFAULT_DEV_URL);
/// ```
pub fn local_target(profile: &BackendProfile, known: Option<KnownServer>) -> Result<LocalTarget, Error> {
    LocalOptions::from_profile(profile)?;
    let (url, source) = if let Some(endpoint) = profile.str("endpoint")? {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::bad_input(format!(
                "{}: key `backends.{}.endpoint`: `{endpoint}` is not an http:// URL",
                profile.origin, profile.name
            ))
            .with_type("InvalidConfig"));
        }
        (endpoint.trim_end_matches('/').to_string(), "endpoint")
    } else if let Some(port) = profile.int("port")? {
        let port = u16::try_from(port).map_err(|_| {
            Error::bad_input(format!(
                "{}: key `backends.{}.port`: {port} is not a port number",
                profile.origin, profile.name
            ))
            .with_type("InvalidConfig")
        })?;
        (format!("http://127.0.0.1:{port}"), "port")
    } else if let Some(k) = &known {
        (k.url.clone(), "dev.json")
    } else {
        (DEFAULT_DEV_URL.to_string(), "default")
    };
    let token = match profile.secret("token")? {
        Some(t) => Some(t),
        None => match std::env::var("FAAS_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(t) => Some(t),
            None => known.filter(|k| k.url == url).map(|k| k.token),
        },
    };
    Ok(LocalTarget { url, token, source })
}
