//! Function keys as the host keeps them: a master key (Admin), host-level function keys, and
//! each function's own keys; stored in `keys.json` of the site.

use std::collections::BTreeMap;
use std::path::Path;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// An HTTP trigger's `authLevel`, and what a key grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AuthLevel {
    Anonymous,
    Function,
    System,
    Admin,
}

impl AuthLevel {
    /// Parses function.json's `authLevel` (any case; `user` counts as `function`).
    pub fn parse(text: &str) -> Option<AuthLevel> {
        match text.to_ascii_lowercase().as_str() {
            "anonymous" => Some(AuthLevel::Anonymous),
            "function" | "user" => Some(AuthLevel::Function),
            "system" => Some(AuthLevel::System),
            "admin" => Some(AuthLevel::Admin),
            _ => None,
        }
    }

    /// The claim value the host gives (`AuthorizationLevel.ToString()`).
    pub fn claim(self) -> &'static str {
        match self {
            AuthLevel::Anonymous => "Anonymous",
            AuthLevel::Function => "Function",
            AuthLevel::System => "System",
            AuthLevel::Admin => "Admin",
        }
    }

    /// Whether a caller with `granted` may call something that needs `self`.
    pub fn allows(self, granted: AuthLevel) -> bool {
        match self {
            AuthLevel::Anonymous => true,
            AuthLevel::Function => granted >= AuthLevel::Function,
            AuthLevel::System => granted >= AuthLevel::System,
            AuthLevel::Admin => granted == AuthLevel::Admin,
        }
    }
}

/// The name the master key goes by in claims.
pub(crate) const MASTER_KEY_NAME: &str = "_master";

/// A site's keys, as `keys.json` holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Keys {
    #[serde(rename = "masterKey")]
    pub master: String,
    #[serde(rename = "functionKeys")]
    pub function_keys: BTreeMap<String, String>,
    #[serde(rename = "systemKeys")]
    pub system_keys: BTreeMap<String, String>,
    /// Each function's own keys, by function name.
    #[serde(default)]
    pub functions: BTreeMap<String, BTreeMap<String, String>>,
}

/// A new key in the shape of the host's (`SecretGenerator`): 56 characters of URL-safe base64
/// with the `AzFu` signature and `==` padding (our keys carry no valid Marvin checksum).
///
/// ```text
/// let k = new_key();
/// assert_eq!(k.len(), 56);
/// assert_eq!(&k[44..48], "AzFu");
/// ```
pub(crate) fn new_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    let mut pick = |n: usize| -> String { (0..n).map(|_| ALPHABET[rng.gen_range(0..64)] as char).collect() };
    format!("{}AzFu{}==", pick(44), pick(6))
}

impl Keys {
    /// A new set: a master key and the host-level function key `default`.
    pub fn generate() -> Keys {
        Keys {
            master: new_key(),
            function_keys: BTreeMap::from([("default".to_string(), new_key())]),
            system_keys: BTreeMap::new(),
            functions: BTreeMap::new(),
        }
    }

    /// Reads `keys.json`, or `None` when it does not exist or cannot be read.
    pub fn load(path: &Path) -> Option<Keys> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Writes `keys.json`.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::site::write_atomic(path, &serde_json::to_vec_pretty(self).unwrap_or_default())
    }

    /// Gives every function in `names` a `default` key of its own if it has none. Whether any
    /// was added.
    pub fn ensure_functions<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) -> bool {
        let mut changed = false;
        for name in names {
            let keys = self.functions.entry(name.to_string()).or_default();
            if keys.is_empty() {
                keys.insert("default".to_string(), new_key());
                changed = true;
            }
        }
        changed
    }

    /// What `key` grants for `function` (`GetAuthorizationLevelOrNullAsync`): the master key
    /// Admin, a system key System, a host-level or the function's own function key Function.
    /// With the key's name.
    pub fn level(&self, key: &str, function: Option<&str>) -> Option<(AuthLevel, String)> {
        if key.is_empty() {
            return None;
        }
        if key == self.master {
            return Some((AuthLevel::Admin, MASTER_KEY_NAME.to_string()));
        }
        if let Some((name, _)) = self.system_keys.iter().find(|(_, v)| *v == key) {
            return Some((AuthLevel::System, name.clone()));
        }
        if let Some((name, _)) = self.function_keys.iter().find(|(_, v)| *v == key) {
            return Some((AuthLevel::Function, name.clone()));
        }
        let own = function.and_then(|f| self.functions.iter().find(|(n, _)| n.eq_ignore_ascii_case(f)));
        if let Some((_, keys)) = own {
            if let Some((name, _)) = keys.iter().find(|(_, v)| *v == key) {
                return Some((AuthLevel::Function, name.clone()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_the_hosts_and_grant_their_levels() {
        let mut keys = Keys::generate();
        assert_eq!(keys.master.len(), 56);
        assert_eq!(&keys.master[44..48], "AzFu");
        assert!(keys.master.ends_with("=="));
        assert!(keys.ensure_functions(["hello"]));
        assert!(!keys.ensure_functions(["hello"]));
        let own = keys.functions["hello"]["default"].clone();
        assert_eq!(keys.level(&keys.master.clone(), None), Some((AuthLevel::Admin, "_master".into())));
        assert_eq!(keys.level(&own, Some("hello")), Some((AuthLevel::Function, "default".into())));
        assert_eq!(keys.level(&own, Some("other")), None);
        let host = keys.function_keys["default"].clone();
        assert_eq!(keys.level(&host, Some("other")).unwrap().0, AuthLevel::Function);
        assert_eq!(keys.level("wrong", Some("hello")), None);
        assert!(AuthLevel::Function.allows(AuthLevel::Admin));
        assert!(!AuthLevel::Admin.allows(AuthLevel::Function));
        assert!(AuthLevel::Anonymous.allows(AuthLevel::Anonymous));
    }
}
