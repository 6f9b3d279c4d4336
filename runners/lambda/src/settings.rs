//! The settings of a `lambda` backend profile (see [`crate::deploy`] for the keys), parsed and
//! checked key by key.

use faas_api::{BackendProfile, Error};
use faas_packaging::{Arch, Libc};

use crate::package::{DEFAULT_ARCH, DEFAULT_LIBC};

/// The execution role used with an `endpoint` (the emulator) when the profile names none.
pub const EMULATOR_ROLE: &str = "arn:aws:iam::123456789012:role/faas-lambda";
/// Settings a `lambda` backend profile accepts.
pub const PROFILE_KEYS: &[&str] = &["region", "endpoint", "role", "arch", "libc", "aws_profile", "prefix", "events"];

/// The settings of a `lambda` backend profile, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaSettings {
    /// AWS region.
    pub region: String,
    /// Endpoint override (the emulator's URL).
    pub endpoint: Option<String>,
    /// Execution role ARN.
    pub role: String,
    /// Architecture of the functions.
    pub arch: Arch,
    /// C library the build links against (used by the build step, not by the runner).
    pub libc: Libc,
    /// Named AWS profile for credentials and settings.
    pub aws_profile: Option<String>,
    /// Lambda function name prefix.
    pub prefix: String,
    /// The event gateway's ingress URL that `cx.emit` posts to (`FAAS_EVENTS_URL` of every
    /// function).
    pub events: Option<String>,
}

impl LambdaSettings {
    /// Parses and checks a profile, naming the offending key on error.
    ///
    /// ```
    /// use faas_api::BackendProfile;
    /// use faas_runner_lambda::deploy::LambdaSettings;
    /// let p = BackendProfile::new("emu", "lambda").with("region", "us-east-1").with("endpoint", "http://127.0.0.1:9001");
    /// let s = LambdaSettings::from_profile(&p).unwrap();
    /// assert_eq!(s.role, "arn:aws:iam::123456789012:role/faas-lambda");
    /// let err = LambdaSettings::from_profile(&BackendProfile::new("prod", "lambda").with("region", "eu-west-1")).unwrap_err();
    /// assert!(err.message().contains("backends.prod.role"), "{}", err.message());
    /// ```
    pub fn from_profile(profile: &BackendProfile) -> Result<LambdaSettings, Error> {
        profile.deny_unknown(PROFILE_KEYS)?;
        let key = |k: &str, why: String| {
            Error::bad_input(format!("{}: key `backends.{}.{k}`: {why}", profile.origin, profile.name))
                .with_type("InvalidConfig")
        };
        let region = profile
            .str("region")?
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| key("region", "required for a `lambda` backend (e.g. \"us-east-1\")".into()))?;
        let endpoint = profile.str("endpoint")?.filter(|e| !e.trim().is_empty());
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(key("endpoint", format!("`{e}` is not an http:// or https:// URL")));
            }
        }
        let role = match (profile.str("role")?, &endpoint) {
            (Some(r), _) if r.starts_with("arn:") => r,
            (Some(r), _) => {
                return Err(key("role", format!("`{r}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")))
            }
            (None, Some(_)) => EMULATOR_ROLE.to_string(),
            (None, None) => {
                return Err(key(
                    "role",
                    "required: the ARN of the functions' execution role (arn:aws:iam::ACCOUNT:role/NAME)".into(),
                ))
            }
        };
        let arch = match profile.str("arch")? {
            Some(a) => Arch::parse(&a).map_err(|e| key("arch", e.to_string()))?,
            None => DEFAULT_ARCH,
        };
        let libc = match profile.str("libc")? {
            Some(l) => Libc::parse(&l).map_err(|e| key("libc", e.to_string()))?,
            None => DEFAULT_LIBC,
        };
        let prefix = profile.str("prefix")?.unwrap_or_default();
        if let Some(c) = prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(key(
                "prefix",
                format!("`{prefix}` contains `{c}`; Lambda names allow letters, digits, - and _"),
            ));
        }
        let events = profile.str("events")?.filter(|e| !e.trim().is_empty());
        if let Some(e) = &events {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(key(
                    "events",
                    format!("`{e}` is not an http:// or https:// URL (the event gateway's ingress)"),
                ));
            }
        }
        Ok(LambdaSettings {
            region,
            endpoint,
            role,
            arch,
            libc,
            aws_profile: profile.str("aws_profile")?,
            prefix,
            events,
        })
    }
}

impl LambdaSettings {
    /// The settings `faas build` packages with: building and packaging call no AWS service, so
    /// the `region` and `role` that only calls to Lambda need may be missing (as for `cargo lambda
    /// build`); they are filled with values nothing reads. Every other key is checked as for a
    /// deploy.
    ///
    /// ```
    /// use faas_api::BackendProfile;
    /// use faas_runner_lambda::deploy::LambdaSettings;
    /// let s = LambdaSettings::for_packaging(&BackendProfile::new("prod", "lambda").with("arch", "arm64")).unwrap();
    /// assert_eq!(s.arch, faas_packaging::Arch::Arm64);
    /// assert!(LambdaSettings::for_packaging(&BackendProfile::new("prod", "lambda").with("arch", "sparc")).is_err());
    /// ```
    pub fn for_packaging(profile: &BackendProfile) -> Result<LambdaSettings, Error> {
        let mut p = profile.clone();
        for (key, unused) in [("region", "us-east-1"), ("role", EMULATOR_ROLE)] {
            if !p.settings.contains_key(key) {
                p = p.with(key, unused);
            }
        }
        LambdaSettings::from_profile(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> BackendProfile {
        BackendProfile::new("emu", "lambda").with("region", "us-east-1").with("endpoint", "http://127.0.0.1:1")
    }

    #[test]
    fn profiles_are_checked_key_by_key() {
        let s = LambdaSettings::from_profile(&profile().with("arch", "arm64").with("prefix", "shop-")).unwrap();
        assert_eq!((s.arch, s.prefix.as_str(), s.role.as_str()), (Arch::Arm64, "shop-", EMULATOR_ROLE));
        let msg = |p: BackendProfile| LambdaSettings::from_profile(&p).unwrap_err().message().to_string();
        assert!(msg(BackendProfile::new("p", "lambda")).contains("backends.p.region"));
        assert!(msg(profile().with("arch", "sparc")).contains("backends.emu.arch"));
        assert!(msg(profile().with("role", "admin")).contains("not an IAM role ARN"));
        assert!(msg(profile().with("prefix", "a/b")).contains("backends.emu.prefix"));
        assert!(msg(profile().with("endpoint", "127.0.0.1:9001")).contains("not an http"));
        assert!(msg(profile().with("events", "127.0.0.1:8090")).contains("backends.emu.events"));
        let s = LambdaSettings::from_profile(&profile().with("events", "http://127.0.0.1:8090/")).unwrap();
        assert_eq!(s.events.as_deref(), Some("http://127.0.0.1:8090/"));
        assert!(msg(profile().with("regoin", "x")).contains("unknown setting"));
    }
}
