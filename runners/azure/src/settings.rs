//! The settings of an `azure` backend profile, parsed and checked key by key.
//!
//! ```toml
//! [backends.az]
//! kind = "azure"
//! subscription = "0b1f6471-1bf0-4dda-aec3-cb9272f09590" # required without `endpoint`
//! resource_group = "shop-rg"                   # required without `endpoint`
//! app = "shop-fn"                              # the function app (site) name; default: the faas app's name
//! region = "westeurope"                        # where a new function app is created; default westeurope
//! plan = "/subscriptions/.../serverfarms/shop-plan" # the App Service plan of a new function app
//! storage = "env:AZURE_STORAGE_CONNECTION_STRING"   # AzureWebJobsStorage, as a secret reference
//! auth_level = "function"                      # function (default) | anonymous | admin: the HTTP triggers' authLevel
//! http_forwarding = false                      # true: enableForwardingHttpRequest for HTTP functions
//! endpoint = "http://127.0.0.1:7071"           # a local Functions host (`faas dev --emulate azure`)
//! libc = "musl"                                # gnu (default) | musl: the build's C library
//! arch = "x86_64"                              # the only one
//! events = "https://gateway.example.com/events" # the event gateway `cx.emit` posts to
//! ```
//!
//! Without `endpoint`, requests go to Azure Resource Manager (`management.azure.com`) and the
//! function app's Kudu site, with the standard Azure credential chain: a service principal in the
//! environment (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE`), a managed identity (`IDENTITY_ENDPOINT`), then the Azure CLI's
//! token (`az login`). With `endpoint`, everything goes there with a development token, and
//! `subscription`, `resource_group` default to the local host's own.
//!
//! The C library: Azure's Linux function apps run on Debian-based images; a `gnu` build made on a
//! system with a newer glibc may not start there, `libc = "musl"` (a static binary) always does.

use faas_api::{BackendProfile, Error};
use faas_packaging::{Arch, Libc};

/// The keys an `azure` profile takes.
pub const PROFILE_KEYS: &[&str] = &[
    "subscription",
    "resource_group",
    "app",
    "region",
    "plan",
    "storage",
    "auth_level",
    "http_forwarding",
    "endpoint",
    "libc",
    "arch",
    "events",
];

/// The region when the profile names none.
pub const DEFAULT_REGION: &str = "westeurope";
/// The subscription of a profile with an `endpoint` and none of its own.
pub const LOCAL_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";
/// The resource group of a profile with an `endpoint` and none of its own.
pub const LOCAL_RESOURCE_GROUP: &str = "local";
/// Azure Resource Manager.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";
/// The ARM API version of the `Microsoft.Web` calls.
pub const API_VERSION: &str = "2024-04-01";
/// The storage connection a local Functions host is given when the profile names none
/// (Azurite's well-known account).
pub const DEVELOPMENT_STORAGE: &str = "UseDevelopmentStorage=true";

/// The HTTP triggers' `authLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLevel {
    /// No key.
    Anonymous,
    /// A function key (or the master key).
    Function,
    /// The master key.
    Admin,
}

impl AuthLevel {
    /// The `authLevel` text of function.json.
    ///
    /// ```
    /// assert_eq!(faas_runner_azure::settings::AuthLevel::Function.as_str(), "function");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AuthLevel::Anonymous => "anonymous",
            AuthLevel::Function => "function",
            AuthLevel::Admin => "admin",
        }
    }
}

/// A parsed `azure` profile.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureSettings {
    /// The subscription id.
    pub subscription: String,
    /// The resource group of the function app.
    pub resource_group: String,
    /// The function app (site) name, when the profile gives one.
    pub app: Option<String>,
    /// Where a new function app is created.
    pub region: String,
    /// The App Service plan (`serverFarmId`) of a new function app.
    pub plan: Option<String>,
    /// The `AzureWebJobsStorage` connection string (a secret; never logged).
    pub storage: Option<String>,
    /// The HTTP triggers' `authLevel`.
    pub auth_level: AuthLevel,
    /// `enableForwardingHttpRequest`.
    pub http_forwarding: bool,
    /// The local Functions host's URL (without a trailing `/`), when there is one.
    pub endpoint: Option<String>,
    /// The build's C library.
    pub libc: Libc,
    /// The build's architecture (x86_64).
    pub arch: Arch,
    /// The event gateway's ingress URL.
    pub events: Option<String>,
}

impl std::fmt::Debug for AzureSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSettings")
            .field("subscription", &self.subscription)
            .field("resource_group", &self.resource_group)
            .field("app", &self.app)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("storage", &self.storage.as_ref().map(|_| "<secret>"))
            .finish_non_exhaustive()
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether `s` is a function app name: 2–60 letters, digits and hyphens, not starting or ending
/// with a hyphen (it becomes the host name `<app>.azurewebsites.net`).
///
/// ```
/// use faas_runner_azure::settings::valid_app_name;
/// assert!(valid_app_name("shop-fn") && !valid_app_name("-shop") && !valid_app_name("shop_fn"));
/// ```
pub fn valid_app_name(s: &str) -> bool {
    (2..=60).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn valid_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn valid_resource_group(s: &str) -> bool {
    (1..=90).contains(&s.len())
        && !s.ends_with('.')
        && s.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

impl AzureSettings {
    /// Parses `profile`.
    ///
    /// ```
    /// use faas_api::BackendProfile;
    /// use faas_runner_azure::settings::AzureSettings;
    /// let local = BackendProfile::new("az", "azure").with("endpoint", "http://127.0.0.1:7071/");
    /// let s = AzureSettings::from_profile(&local).unwrap();
    /// assert_eq!((s.resource_group.as_str(), s.arm_endpoint()), ("local", "http://127.0.0.1:7071"));
    /// let e = AzureSettings::from_profile(&BackendProfile::new("az", "azure")).unwrap_err();
    /// assert!(e.message().contains("backends.az.subscription"), "{e}");
    /// ```
    pub fn from_profile(profile: &BackendProfile) -> Result<AzureSettings, Error> {
        profile.deny_unknown(PROFILE_KEYS)?;
        let key = |k: &str, why: String| {
            Error::bad_input(format!("{}: key `backends.{}.{k}`: {why}", profile.origin, profile.name))
                .with_type("InvalidConfig")
        };
        let text = |k: &str| -> Result<Option<String>, Error> {
            Ok(profile.str(k)?.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
        };
        let endpoint = match text("endpoint")? {
            Some(e) if is_url(&e) => Some(e.trim_end_matches('/').to_string()),
            Some(e) => return Err(key("endpoint", format!("`{e}` is not an http:// or https:// URL"))),
            None => None,
        };
        let local = endpoint.is_some();
        let required = |k: &str, what: &str| {
            key(k, format!("required: {what} (or give `endpoint`, a local Functions host: `faas dev --emulate azure`)"))
        };
        let subscription = match text("subscription")? {
            Some(s) if valid_guid(&s) => s,
            Some(s) => return Err(key("subscription", format!("`{s}` is not a subscription id (a GUID)"))),
            None if local => LOCAL_SUBSCRIPTION.to_string(),
            None => return Err(required("subscription", "the Azure subscription id")),
        };
        let resource_group = match text("resource_group")? {
            Some(g) if valid_resource_group(&g) => g,
            Some(g) => {
                return Err(key(
                    "resource_group",
                    format!(
                        "`{g}` is not a resource group name (1–90 letters, digits, `-`, `_`, `.`, `(`, `)`, not \
                         ending with `.`)"
                    ),
                ))
            }
            None if local => LOCAL_RESOURCE_GROUP.to_string(),
            None => return Err(required("resource_group", "the resource group of the function app")),
        };
        let app = match text("app")? {
            Some(a) if valid_app_name(&a) => Some(a),
            Some(a) => {
                return Err(key(
                    "app",
                    format!(
                        "`{a}` is not a function app name (2–60 letters, digits and hyphens, not starting or \
                         ending with a hyphen)"
                    ),
                ))
            }
            None => None,
        };
        let region = text("region")?.unwrap_or_else(|| DEFAULT_REGION.to_string());
        if !region.chars().all(|c| c.is_ascii_alphanumeric()) || region.len() > 40 {
            return Err(key("region", format!("`{region}` is not an Azure region name (such as `westeurope`)")));
        }
        let plan = text("plan")?;
        if let Some(p) = &plan {
            if !p.to_ascii_lowercase().contains("/providers/microsoft.web/serverfarms/") {
                return Err(key(
                    "plan",
                    format!(
                        "`{p}` is not an App Service plan's resource id (…/providers/Microsoft.Web/serverfarms/NAME)"
                    ),
                ));
            }
        }
        let storage = profile.secret("storage")?;
        let auth_level = match text("auth_level")?.as_deref() {
            None | Some("function") => AuthLevel::Function,
            Some("anonymous") => AuthLevel::Anonymous,
            Some("admin") => AuthLevel::Admin,
            Some(other) => {
                return Err(key("auth_level", format!("`{other}`: use `function`, `anonymous` or `admin`")));
            }
        };
        let http_forwarding = profile.bool("http_forwarding")?.unwrap_or(false);
        let arch = match text("arch")? {
            Some(a) => Arch::parse(&a).map_err(|e| key("arch", e.to_string()))?,
            None => Arch::X86_64,
        };
        if arch != Arch::X86_64 {
            return Err(key("arch", format!("`{arch}`: faas deploys Azure Functions on Linux x86_64 only")));
        }
        let libc = match text("libc")? {
            Some(l) => Libc::parse(&l).map_err(|e| key("libc", e.to_string()))?,
            None => Libc::Gnu,
        };
        let events = text("events")?;
        if let Some(e) = &events {
            if !is_url(e) {
                return Err(key("events", format!("`{e}` is not an http:// or https:// URL")));
            }
        }
        Ok(AzureSettings {
            subscription,
            resource_group,
            app,
            region,
            plan,
            storage,
            auth_level,
            http_forwarding,
            endpoint,
            libc,
            arch,
            events,
        })
    }

    /// The settings packaging needs, for `faas build`, which needs no subscription: the local
    /// ones fill in what is missing.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("az", "azure").with("libc", "musl");
    /// let s = faas_runner_azure::settings::AzureSettings::for_packaging(&p).unwrap();
    /// assert_eq!(s.libc, faas_packaging::Libc::Musl);
    /// ```
    pub fn for_packaging(profile: &BackendProfile) -> Result<AzureSettings, Error> {
        let mut p = profile.clone();
        if !p.settings.contains_key("endpoint") {
            if !p.settings.contains_key("subscription") {
                p = p.with("subscription", LOCAL_SUBSCRIPTION);
            }
            if !p.settings.contains_key("resource_group") {
                p = p.with("resource_group", LOCAL_RESOURCE_GROUP);
            }
        }
        AzureSettings::from_profile(&p)
    }

    /// Whether requests go to a local Functions host.
    pub fn is_local(&self) -> bool {
        self.endpoint.is_some()
    }

    /// Azure Resource Manager's base URL (the local host answers it too).
    pub fn arm_endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(ARM_ENDPOINT)
    }

    /// The ARM id of the function app `app`.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("az", "azure").with("endpoint", "http://127.0.0.1:7071");
    /// let s = faas_runner_azure::settings::AzureSettings::from_profile(&p).unwrap();
    /// assert_eq!(s.site_id("shop"),
    ///     "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.Web/sites/shop");
    /// ```
    pub fn site_id(&self, app: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Web/sites/{app}",
            self.subscription, self.resource_group
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_explicit_keys() {
        std::env::set_var("FAAS_TEST_AZURE_STORAGE", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k");
        let p = BackendProfile::new("az", "azure")
            .with("subscription", "0b1f6471-1bf0-4dda-aec3-cb9272f09590")
            .with("resource_group", "shop-rg")
            .with("app", "shop-fn")
            .with("storage", "env:FAAS_TEST_AZURE_STORAGE")
            .with("auth_level", "anonymous")
            .with("http_forwarding", true)
            .with("libc", "musl");
        let s = AzureSettings::from_profile(&p).unwrap();
        assert_eq!(s.arm_endpoint(), ARM_ENDPOINT);
        assert_eq!((s.app.as_deref(), s.region.as_str()), (Some("shop-fn"), DEFAULT_REGION));
        assert_eq!((s.auth_level, s.http_forwarding, s.libc), (AuthLevel::Anonymous, true, Libc::Musl));
        assert!(s.storage.as_deref().unwrap().contains("AccountName=a"));
        assert!(!format!("{s:?}").contains("AccountKey"), "the storage secret is never printed");
        assert!(!s.is_local());
    }

    #[test]
    fn bad_keys_are_refused_by_name() {
        let base = || {
            BackendProfile::new("az", "azure")
                .with("subscription", "0b1f6471-1bf0-4dda-aec3-cb9272f09590")
                .with("resource_group", "rg")
        };
        for (p, needle) in [
            (base().with("endpoint", "localhost:7071"), "backends.az.endpoint"),
            (base().with("subscription", "my-sub"), "backends.az.subscription"),
            (base().with("resource_group", "bad/rg"), "backends.az.resource_group"),
            (base().with("app", "shop_fn"), "backends.az.app"),
            (base().with("region", "West Europe"), "backends.az.region"),
            (base().with("plan", "my-plan"), "backends.az.plan"),
            (base().with("storage", "AccountKey=inline"), "backends.az.storage"),
            (base().with("auth_level", "system"), "backends.az.auth_level"),
            (base().with("http_forwarding", "yes"), "http_forwarding"),
            (base().with("arch", "arm64"), "backends.az.arch"),
            (base().with("events", "gw:80"), "backends.az.events"),
            (base().with("namespace", "x"), "namespace"),
            (BackendProfile::new("az", "azure").with("subscription", LOCAL_SUBSCRIPTION), "resource_group"),
        ] {
            let e = AzureSettings::from_profile(&p).unwrap_err();
            assert!(e.message().contains(needle), "{needle}: {e}");
            assert!(!e.message().contains("inline\""), "{e}");
        }
        let packaging = AzureSettings::for_packaging(&BackendProfile::new("az", "azure")).unwrap();
        assert_eq!(packaging.resource_group, LOCAL_RESOURCE_GROUP);
    }
}
