//! The settings of a `gcf` backend profile, parsed and checked key by key.
//!
//! ```toml
//! [backends.gcp]
//! kind = "gcf"
//! project = "my-project"                       # the Google Cloud project (required without `endpoint`)
//! region = "europe-west1"                      # the functions' location; default us-central1
//! endpoint = "http://127.0.0.1:8070"           # a local Cloud Functions (`faas dev --emulate gcf`)
//! runtime = "python312"                        # the source runtime the binary ships in (python3*)
//! libc = "musl"                                # gnu (default) | musl: the build's C library
//! arch = "x86_64"                              # the only one: Cloud Run runs x86_64
//! events = "https://gateway.example.com/events" # the event gateway `cx.emit` posts to
//! ```
//!
//! Without `endpoint`, requests go to Google (`cloudfunctions.googleapis.com`,
//! `logging.googleapis.com`) with the standard Google credentials chain (Application Default
//! Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the file `gcloud auth application-default
//! login` writes, the metadata server). With `endpoint`, everything goes there, with no
//! credentials at all, and `project` defaults to `local-project`.
//!
//! The C library: the `python312` runtime image is Google's Ubuntu 22.04 base (glibc 2.35). A
//! `gnu` build made on a system with a newer glibc may not start there; `libc = "musl"` (a
//! static binary) is the safe choice for real Google.

use faas_api::{BackendProfile, Error};
use faas_packaging::{Arch, Libc};

/// The keys a `gcf` profile takes.
pub const PROFILE_KEYS: &[&str] = &["project", "region", "endpoint", "runtime", "libc", "arch", "events"];

/// The region when the profile names none.
pub const DEFAULT_REGION: &str = "us-central1";
/// The runtime when the profile names none.
pub const DEFAULT_RUNTIME: &str = "python312";
/// The project of a profile with an `endpoint` and no `project`.
pub const LOCAL_PROJECT: &str = "local-project";
/// Google's Cloud Functions API.
pub const GOOGLE_ENDPOINT: &str = "https://cloudfunctions.googleapis.com";
/// Google's Cloud Logging API.
pub const LOGGING_ENDPOINT: &str = "https://logging.googleapis.com";

/// A parsed `gcf` profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcfSettings {
    /// The project id.
    pub project: String,
    /// The location of the functions.
    pub region: String,
    /// The local Cloud Functions' URL (without a trailing `/`), when there is one; then no
    /// credentials are used.
    pub endpoint: Option<String>,
    /// The runtime of the source archive (`python312`).
    pub runtime: String,
    /// The build's C library.
    pub libc: Libc,
    /// The build's architecture (x86_64).
    pub arch: Arch,
    /// The event gateway's ingress URL.
    pub events: Option<String>,
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether `s` is a Google Cloud project id: 6–30 lowercase letters, digits and hyphens,
/// starting with a letter, not ending with a hyphen (an optional `domain:` prefix is kept).
fn valid_project(s: &str) -> bool {
    let id = s.rsplit_once(':').map_or(s, |(_, id)| id);
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl GcfSettings {
    /// Parses `profile`.
    ///
    /// ```
    /// use faas_api::BackendProfile;
    /// use faas_runner_gcf::settings::GcfSettings;
    /// let local = BackendProfile::new("gcp", "gcf").with("endpoint", "http://127.0.0.1:8090/");
    /// let s = GcfSettings::from_profile(&local).unwrap();
    /// assert_eq!((s.project.as_str(), s.region.as_str()), ("local-project", "us-central1"));
    /// assert_eq!(s.functions_endpoint(), "http://127.0.0.1:8090");
    /// let e = GcfSettings::from_profile(&BackendProfile::new("gcp", "gcf")).unwrap_err();
    /// assert!(e.message().contains("backends.gcp.project"), "{e}");
    /// ```
    pub fn from_profile(profile: &BackendProfile) -> Result<GcfSettings, Error> {
        profile.deny_unknown(PROFILE_KEYS)?;
        let key = |k: &str, why: String| {
            Error::bad_input(format!("{}: key `backends.{}.{k}`: {why}", profile.origin, profile.name))
                .with_type("InvalidConfig")
        };
        let endpoint = match profile.str("endpoint")?.filter(|e| !e.trim().is_empty()) {
            Some(e) if is_url(&e) => Some(e.trim_end_matches('/').to_string()),
            Some(e) => return Err(key("endpoint", format!("`{e}` is not an http:// or https:// URL"))),
            None => None,
        };
        let project = match profile.str("project")?.filter(|p| !p.trim().is_empty()) {
            Some(p) if valid_project(&p) => p,
            Some(p) => {
                return Err(key(
                    "project",
                    format!(
                        "`{p}` is not a Google Cloud project id (6–30 lowercase letters, digits and hyphens, \
                         starting with a letter)"
                    ),
                ))
            }
            None if endpoint.is_some() => LOCAL_PROJECT.to_string(),
            None => {
                return Err(key(
                    "project",
                    "required: the Google Cloud project id (or give `endpoint`, a local Cloud Functions: \
                     `faas dev --emulate gcf`)"
                        .into(),
                ))
            }
        };
        let region = profile.str("region")?.unwrap_or_else(|| DEFAULT_REGION.to_string());
        let region_ok = !region.is_empty()
            && region.len() <= 63
            && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(key("region", format!("`{region}` is not a Google Cloud region (such as `us-central1`)")));
        }
        let runtime = profile.str("runtime")?.unwrap_or_else(|| DEFAULT_RUNTIME.to_string());
        let runtime_ok = runtime.strip_prefix("python3").is_some_and(|v| v.chars().all(|c| c.is_ascii_digit()));
        if !runtime_ok {
            return Err(key(
                "runtime",
                format!(
                    "`{runtime}`: the faas binary ships inside a Python source archive; use a Python 3 runtime \
                     such as `{DEFAULT_RUNTIME}`"
                ),
            ));
        }
        let arch = match profile.str("arch")? {
            Some(a) => Arch::parse(&a).map_err(|e| key("arch", e.to_string()))?,
            None => Arch::X86_64,
        };
        if arch != Arch::X86_64 {
            return Err(key("arch", format!("`{arch}`: Cloud Functions (Cloud Run) runs x86_64 only")));
        }
        let libc = match profile.str("libc")? {
            Some(l) => Libc::parse(&l).map_err(|e| key("libc", e.to_string()))?,
            None => Libc::Gnu,
        };
        let events = profile.str("events")?.filter(|e| !e.trim().is_empty());
        if let Some(e) = &events {
            if !is_url(e) {
                return Err(key("events", format!("`{e}` is not an http:// or https:// URL")));
            }
        }
        Ok(GcfSettings { project, region, endpoint, runtime, libc, arch, events })
    }

    /// The settings packaging needs (`runtime`, `libc`, `arch`), for `faas build`, which needs no
    /// project: it falls back to the local one when not given.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("gcp", "gcf").with("libc", "musl");
    /// let s = faas_runner_gcf::settings::GcfSettings::for_packaging(&p).unwrap();
    /// assert_eq!((s.libc, s.runtime.as_str()), (faas_packaging::Libc::Musl, "python312"));
    /// ```
    pub fn for_packaging(profile: &BackendProfile) -> Result<GcfSettings, Error> {
        let mut p = profile.clone();
        if !p.settings.contains_key("project") && !p.settings.contains_key("endpoint") {
            p = p.with("project", LOCAL_PROJECT);
        }
        GcfSettings::from_profile(&p)
    }

    /// Whether requests go to a local Cloud Functions (no credentials).
    pub fn is_local(&self) -> bool {
        self.endpoint.is_some()
    }

    /// The Cloud Functions API's base URL.
    pub fn functions_endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(GOOGLE_ENDPOINT)
    }

    /// The Cloud Logging API's base URL (the local Cloud Functions answers it too).
    pub fn logging_endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(LOGGING_ENDPOINT)
    }

    /// `projects/{project}/locations/{region}`.
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }

    /// `projects/{project}/locations/{region}/functions/{id}`.
    pub fn function_name(&self, id: &str) -> String {
        format!("{}/functions/{id}", self.parent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_explicit_keys() {
        let p = BackendProfile::new("gcp", "gcf")
            .with("project", "my-project-1")
            .with("region", "europe-west1")
            .with("libc", "musl")
            .with("events", "https://gw.example.com/events");
        let s = GcfSettings::from_profile(&p).unwrap();
        assert_eq!(s.parent(), "projects/my-project-1/locations/europe-west1");
        assert_eq!(s.function_name("hello"), "projects/my-project-1/locations/europe-west1/functions/hello");
        assert_eq!((s.libc, s.arch, s.runtime.as_str()), (Libc::Musl, Arch::X86_64, "python312"));
        assert_eq!((s.functions_endpoint(), s.logging_endpoint()), (GOOGLE_ENDPOINT, LOGGING_ENDPOINT));
        assert!(!s.is_local());
        assert_eq!(s.events.as_deref(), Some("https://gw.example.com/events"));
        let local =
            GcfSettings::from_profile(&BackendProfile::new("e", "gcf").with("endpoint", "http://127.0.0.1:1")).unwrap();
        assert!(local.is_local());
        assert_eq!(local.logging_endpoint(), "http://127.0.0.1:1");
    }

    #[test]
    fn bad_keys_are_refused_by_name() {
        let base = || BackendProfile::new("gcp", "gcf").with("project", "my-project");
        for (p, needle) in [
            (base().with("endpoint", "localhost:8090"), "backends.gcp.endpoint"),
            (base().with("project", "My_Project"), "backends.gcp.project"),
            (base().with("region", "US Central"), "backends.gcp.region"),
            (base().with("runtime", "nodejs20"), "backends.gcp.runtime"),
            (base().with("runtime", "python3x"), "backends.gcp.runtime"),
            (base().with("arch", "arm64"), "backends.gcp.arch"),
            (base().with("libc", "bionic"), "backends.gcp.libc"),
            (base().with("events", "gw:80"), "backends.gcp.events"),
            (base().with("namespace", "x"), "namespace"),
        ] {
            let e = GcfSettings::from_profile(&p).unwrap_err();
            assert!(e.message().contains(needle), "{needle}: {e}");
        }
        assert!(GcfSettings::from_profile(&base().with("runtime", "python311")).is_ok());
        assert_eq!(GcfSettings::for_packaging(&BackendProfile::new("gcp", "gcf")).unwrap().project, LOCAL_PROJECT);
    }
}
