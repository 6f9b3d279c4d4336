//! The settings of an `openwhisk` backend profile, parsed and checked key by key.
//!
//! ```toml
//! [backends.ow]
//! kind = "openwhisk"
//! endpoint = "https://openwhisk.example.com"   # the API host; else APIHOST of ~/.wskprops
//! namespace = "guest"                          # else NAMESPACE of ~/.wskprops, else `guest`
//! auth = "env:OW_AUTH"                         # a reference (env:NAME or file:PATH) to `uuid:key`
//! package = "shop"                             # deploy the app's actions into this package
//! image = "openwhisk/actionloop-v2"            # the runtime image of the actions
//! libc = "musl"                                # gnu (default) | musl: the build's C library
//! events = "http://127.0.0.1:8980/events"      # the event gateway `cx.emit` posts to
//! ```
//!
//! Like `wsk`, missing keys come from the properties file `$WSK_CONFIG_FILE` (default
//! `~/.wskprops`: `APIHOST=`, `AUTH=`, `NAMESPACE=` lines). With a loopback `endpoint` and no
//! key anywhere, the local OpenWhisk's well-known guest key is used ([`GUEST_AUTH`]), as
//! OpenWhisk's standalone server documents it. The key is never printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use faas_api::backend::is_loopback_url;
use faas_api::{BackendProfile, Error};
use faas_packaging::{Arch, Libc};

/// The keys an `openwhisk` profile takes.
pub const PROFILE_KEYS: &[&str] = &["endpoint", "namespace", "auth", "package", "image", "arch", "libc", "events"];

/// The guest key of OpenWhisk's standalone server and its default deployment
/// (apache/openwhisk `ansible/files/auth.guest`), for namespace `guest`.
pub const GUEST_AUTH: &str =
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// The runtime image faas actions run in by default: OpenWhisk's ActionLoop base image, which
/// starts a prebuilt `exec` from the action's zip once per container.
pub const DEFAULT_IMAGE: &str = "openwhisk/actionloop-v2";

/// The image `wsk action create --native` uses (per-activation processes).
pub const SKELETON_IMAGE: &str = "openwhisk/dockerskeleton";

/// A parsed `openwhisk` profile.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenWhiskSettings {
    /// The API host as a URL, without a trailing `/`.
    pub endpoint: String,
    /// The namespace.
    pub namespace: String,
    /// `uuid:key`.
    pub auth: String,
    /// The package the app's actions go into, if any.
    pub package: Option<String>,
    /// The actions' runtime image.
    pub image: String,
    /// The build's architecture.
    pub arch: Arch,
    /// The build's C library.
    pub libc: Libc,
    /// The event gateway's ingress URL.
    pub events: Option<String>,
}

impl std::fmt::Debug for OpenWhiskSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenWhiskSettings")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field("auth", &"<hidden>")
            .field("package", &self.package)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

/// The `KEY=value` lines of a `wsk` properties file.
///
/// ```
/// let props = faas_runner_openwhisk::settings::parse_wskprops("APIHOST=ow.example.com\n# comment\nAUTH = u:k\n");
/// assert_eq!(props.get("APIHOST").map(String::as_str), Some("ow.example.com"));
/// assert_eq!(props.get("AUTH").map(String::as_str), Some("u:k"));
/// ```
pub fn parse_wskprops(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

/// The properties file `wsk` reads: `$WSK_CONFIG_FILE`, else `~/.wskprops`.
fn wskprops_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("WSK_CONFIG_FILE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".wskprops")))
}

fn valid_name(s: &str) -> bool {
    // OpenWhisk entity names: letters, digits, `_`, `@`, `.`, `-`, spaces inside; not starting
    // with a space; at most 256 characters (apache/openwhisk `docs/reference.md`).
    !s.is_empty()
        && s.len() <= 256
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_@.- ".contains(c))
}

impl OpenWhiskSettings {
    /// Parses `profile`, filling what it leaves out from the `wsk` properties file.
    pub fn from_profile(profile: &BackendProfile) -> Result<OpenWhiskSettings, Error> {
        OpenWhiskSettings::from_profile_with(profile, &|k| std::env::var(k).ok())
    }

    /// [`OpenWhiskSettings::from_profile`] with the environment given by `env`.
    ///
    /// ```
    /// use faas_api::BackendProfile;
    /// use faas_runner_openwhisk::settings::{OpenWhiskSettings, GUEST_AUTH};
    /// let p = BackendProfile::new("ow", "openwhisk").with("endpoint", "http://127.0.0.1:3233");
    /// let s = OpenWhiskSettings::from_profile_with(&p, &|_| None).unwrap();
    /// assert_eq!((s.namespace.as_str(), s.auth.as_str()), ("guest", GUEST_AUTH));
    /// let remote = BackendProfile::new("ow", "openwhisk").with("endpoint", "https://ow.example.com");
    /// let e = OpenWhiskSettings::from_profile_with(&remote, &|_| None).unwrap_err();
    /// assert!(e.message().contains("backends.ow.auth"), "{e}");
    /// ```
    pub fn from_profile_with(
        profile: &BackendProfile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OpenWhiskSettings, Error> {
        profile.deny_unknown(PROFILE_KEYS)?;
        let key = |k: &str, why: String| {
            Error::bad_input(format!("{}: key `backends.{}.{k}`: {why}", profile.origin, profile.name))
                .with_type("InvalidConfig")
        };
        let props = match wskprops_path(env) {
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => parse_wskprops(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(Error::bad_input(format!("cannot read {}: {e}", path.display()))),
            },
            None => BTreeMap::new(),
        };
        let endpoint = match profile.str("endpoint")?.filter(|e| !e.trim().is_empty()) {
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => e.trim_end_matches('/').to_string(),
            Some(e) => return Err(key("endpoint", format!("`{e}` is not an http:// or https:// URL"))),
            None => match props.get("APIHOST") {
                Some(host) => crate::wire::api_base_url(host),
                None => {
                    return Err(key(
                        "endpoint",
                        "required: the OpenWhisk API host (or APIHOST in ~/.wskprops, `wsk property set --apihost`)"
                            .into(),
                    ));
                }
            },
        };
        let namespace = profile
            .str("namespace")?
            .or_else(|| props.get("NAMESPACE").cloned())
            .unwrap_or_else(|| "guest".to_string());
        if namespace != "_" && !valid_name(&namespace) {
            return Err(key("namespace", format!("`{namespace}` is not an OpenWhisk namespace name")));
        }
        let reference = profile.str("auth")?;
        let resolved = reference
            .map(|r| faas_api::config::resolve_secret_with(&r, env).map_err(|why| key("auth", why)))
            .transpose()?;
        let auth = match resolved {
            Some(a) => a,
            None => match props.get("AUTH") {
                Some(a) => a.clone(),
                None if is_loopback_url(&endpoint) => GUEST_AUTH.to_string(),
                None => {
                    return Err(key(
                        "auth",
                        "required: a reference (env:NAME or file:PATH) to the `uuid:key` API key, or AUTH in \
                         ~/.wskprops (`wsk property set --auth`)"
                            .into(),
                    ));
                }
            },
        };
        if !auth.contains(':') {
            return Err(key("auth", "the API key must have the form `uuid:key`".into()));
        }
        let package = profile.str("package")?.filter(|p| !p.is_empty());
        if let Some(p) = &package {
            if !valid_name(p) || p.contains(' ') {
                return Err(key("package", format!("`{p}` is not an OpenWhisk package name")));
            }
        }
        let image = profile.str("image")?.unwrap_or_else(|| DEFAULT_IMAGE.to_string());
        let arch = match profile.str("arch")? {
            Some(a) => Arch::parse(&a).map_err(|e| key("arch", e.to_string()))?,
            None => Arch::X86_64,
        };
        let libc = match profile.str("libc")? {
            Some(l) => Libc::parse(&l).map_err(|e| key("libc", e.to_string()))?,
            None => Libc::Gnu,
        };
        let events = profile.str("events")?.filter(|e| !e.trim().is_empty());
        if let Some(e) = &events {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(key("events", format!("`{e}` is not an http:// or https:// URL")));
            }
        }
        Ok(OpenWhiskSettings { endpoint, namespace, auth, package, image, arch, libc, events })
    }

    /// The settings packaging needs (`arch`, `libc`, `image`, `package`), for `faas build`, which
    /// needs no API host or key: those fall back to the local OpenWhisk's when not given.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("ow", "openwhisk").with("libc", "musl");
    /// let s = faas_runner_openwhisk::settings::OpenWhiskSettings::for_packaging(&p).unwrap();
    /// assert_eq!(s.libc, faas_packaging::Libc::Musl);
    /// ```
    pub fn for_packaging(profile: &BackendProfile) -> Result<OpenWhiskSettings, Error> {
        let mut local = profile.clone().with("endpoint", "http://127.0.0.1:3233");
        local.settings.remove("auth");
        OpenWhiskSettings::from_profile_with(&local, &|_| None)
    }

    /// The OpenWhisk name of the faas function `function`: `[package/]function`.
    pub fn action_name(&self, function: &str) -> String {
        match &self.package {
            Some(p) => format!("{p}/{function}"),
            None => function.to_string(),
        }
    }

    /// `<endpoint>/api/v1/namespaces/<namespace>`.
    pub fn namespace_url(&self) -> String {
        format!("{}/api/v1/namespaces/{}", self.endpoint, crate::wire::url_path(&self.namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_come_from_the_wsk_properties_file() {
        let dir = tempfile::tempdir().unwrap();
        let props = dir.path().join("props");
        std::fs::write(&props, "APIHOST=ow.example.com\nAUTH=u1:k1\nNAMESPACE=shop_dev\n").unwrap();
        let path = props.display().to_string();
        let env = move |k: &str| (k == "WSK_CONFIG_FILE").then(|| path.clone());
        let s = OpenWhiskSettings::from_profile_with(&BackendProfile::new("ow", "openwhisk"), &env).unwrap();
        assert_eq!(
            (s.endpoint.as_str(), s.auth.as_str(), s.namespace.as_str()),
            ("https://ow.example.com", "u1:k1", "shop_dev")
        );
        assert!(!format!("{s:?}").contains("k1"), "the key is never printed");
        let explicit = BackendProfile::new("ow", "openwhisk").with("namespace", "other").with("package", "shop");
        let s = OpenWhiskSettings::from_profile_with(&explicit, &env).unwrap();
        assert_eq!((s.namespace.as_str(), s.action_name("hello")), ("other", "shop/hello".to_string()));
    }

    #[test]
    fn bad_keys_are_refused_by_name() {
        let base = || BackendProfile::new("ow", "openwhisk").with("endpoint", "http://127.0.0.1:3233");
        for (p, needle) in [
            (base().with("endpoint", "ow.example.com"), "backends.ow.endpoint"),
            (base().with("namespace", "no/slash"), "backends.ow.namespace"),
            (base().with("package", "a b"), "backends.ow.package"),
            (base().with("libc", "bionic"), "backends.ow.libc"),
            (base().with("region", "x"), "region"),
        ] {
            let e = OpenWhiskSettings::from_profile_with(&p, &|_| None).unwrap_err();
            assert!(e.message().contains(needle), "{needle}: {e}");
        }
        let e = OpenWhiskSettings::from_profile_with(&BackendProfile::new("ow", "openwhisk"), &|_| None).unwrap_err();
        assert!(e.message().contains("backends.ow.endpoint") && e.message().contains("wskprops"), "{e}");
    }
}
