//! The entities of the namespace (actions, packages, triggers, rules), the checks of their PUT
//! bodies, and their JSON as the controller answers it (apache/openwhisk
//! common/scala/src/main/scala/org/apache/openwhisk/core/entity/WhiskAction.scala, Exec.scala,
//! Limits.scala, WhiskTrigger.scala, WhiskRule.scala; core/controller/.../Actions.scala).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Map, Value};

use faas_packaging::unpack::{Archive, Limits as UnpackLimits, UnpackError};
use faas_supervisor::{Pool, PoolConfig, WhenBusy};

use crate::error::ApiError;
use crate::invoker::Container;
use crate::names::Name;

/// Largest action code (`whisk.exec-size-limit = 48 m`, common/scala/src/main/resources/application.conf).
pub(crate) const MAX_CODE: usize = 48 * 1024 * 1024;
/// Largest attached parameters (`parameter-size-limit = 1 m`).
pub(crate) const MAX_PARAMETERS: usize = 1024 * 1024;
/// Most components of a sequence (`whisk.action-sequence-limit`'s default).
const MAX_SEQUENCE: usize = 50;
/// Most entries of a zip.
const MAX_ENTRIES: usize = 20_000;

/// An action's limits, in the units of the API (ms, MB, MB, activations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub timeout: u64,
    pub memory: u64,
    pub logs: u64,
    pub concurrency: u64,
}

impl Default for Limits {
    /// The `std` values of `time-limit`, `memory`, `log-limit` and `concurrency-limit`.
    fn default() -> Self {
        Limits { timeout: 60_000, memory: 256, logs: 10, concurrency: 1 }
    }
}

impl Limits {
    pub fn json(&self) -> Value {
        json!({ "timeout": self.timeout, "memory": self.memory, "logs": self.logs, "concurrency": self.concurrency })
    }

    /// Applies the members present in `value` (a PUT's `limits`) over `self`, each checked
    /// against its range with the wording of `Messages.*Threshold`.
    pub fn merge(mut self, value: &Value) -> Result<Limits, ApiError> {
        let Some(obj) = value.as_object() else {
            return Err(ApiError::malformed("limits must be an object"));
        };
        let number = |key: &str| -> Result<Option<u64>, ApiError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_i64().map(|_| 0))
                    .map(Some)
                    .ok_or_else(|| ApiError::malformed(format!("limits.{key} must be a whole number"))),
            }
        };
        let range = |field: &str, unit: &str, is: u64, min: u64, max: u64| -> Result<u64, ApiError> {
            if is < min {
                Err(ApiError::malformed(format!("{field} {is} {unit} below allowed threshold of {min} {unit}")))
            } else if is > max {
                Err(ApiError::malformed(format!("{field} {is} {unit} exceeds allowed threshold of {max} {unit}")))
            } else {
                Ok(is)
            }
        };
        if let Some(t) = number("timeout")? {
            self.timeout = range("timeout", "milliseconds", t, 100, 300_000)?;
        }
        if let Some(m) = number("memory")? {
            self.memory = range("memory size", "MB", m, 128, 512)?;
        }
        if let Some(l) = number("logs")? {
            self.logs = range("log size", "MB", l, 0, 10)?;
        }
        if let Some(c) = number("concurrency")? {
            if c < 1 {
                return Err(ApiError::malformed(format!("concurrency {c} below allowed threshold of 1")));
            }
            if c > 500 {
                return Err(ApiError::malformed(format!("concurrency {c} exceeds allowed threshold of 500")));
            }
            self.concurrency = c;
        }
        Ok(self)
    }
}

/// How an action's code is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// openwhisk/dockerskeleton: one `exec` process per activation.
    Skeleton,
    /// The ActionLoop proxy: one long-lived `exec` per container, results on fd 3.
    ActionLoop,
}

/// An action's code.
#[derive(Debug, Clone)]
pub(crate) enum Exec {
    Native {
        kind: String,
        image: Option<String>,
        main: Option<String>,
        /// Whether `code` is base64 (a zip), decided from its shape as `Exec.isBinaryCode` does.
        binary: bool,
        code: Arc<String>,
        protocol: Protocol,
        /// The unpacked code, holding `exec`.
        dir: PathBuf,
    },
    Sequence {
        components: Vec<Name>,
    },
}

impl Exec {
    pub fn kind(&self) -> &str {
        match self {
            Exec::Native { kind, .. } => kind,
            Exec::Sequence { .. } => "sequence",
        }
    }

    fn json(&self, namespace: &str, with_code: bool) -> Value {
        match self {
            Exec::Native { kind, image, main, binary, code, .. } => {
                let mut exec = json!({ "kind": kind, "binary": binary });
                if let Some(image) = image {
                    exec["image"] = json!(image);
                }
                if let Some(main) = main {
                    exec["main"] = json!(main);
                }
                if with_code {
                    exec["code"] = json!(code.as_str());
                }
                exec
            }
            Exec::Sequence { components } => json!({
                "kind": "sequence",
                "components": components.iter().map(|c| c.qualified(namespace)).collect::<Vec<_>>(),
            }),
        }
    }
}

/// An action.
pub(crate) struct Action {
    pub name: Name,
    pub version: String,
    pub publish: bool,
    pub exec: Exec,
    pub parameters: Vec<Value>,
    pub annotations: Vec<Value>,
    pub limits: Limits,
    pub updated: i64,
    /// Its warm containers.
    pub containers: Arc<Pool<Container>>,
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action").field("name", &self.name).field("version", &self.version).finish()
    }
}

impl Action {
    pub fn json(&self, namespace: &str, with_code: bool) -> Value {
        json!({
            "namespace": self.name.namespace_path(namespace),
            "name": self.name.name,
            "version": self.version,
            "publish": self.publish,
            "exec": self.exec.json(namespace, with_code),
            "annotations": self.annotations,
            "parameters": self.parameters,
            "limits": self.limits.json(),
            "updated": self.updated,
        })
    }

    /// A list entry (no code, no parameters).
    pub fn summary(&self, namespace: &str) -> Value {
        json!({
            "namespace": self.name.namespace_path(namespace),
            "name": self.name.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "limits": self.limits.json(),
            "exec": { "binary": matches!(&self.exec, Exec::Native { binary: true, .. }) },
            "updated": self.updated,
        })
    }

    /// The value of annotation `key`, if any.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        annotation(&self.annotations, key)
    }

    /// The attached parameters as one object.
    pub fn parameter_object(&self) -> Map<String, Value> {
        key_values(&self.parameters)
    }

    /// The names of the parameters marked `"init": true`: the invoker passes them to the
    /// container's `/init` as its environment and leaves them out of each run's parameters
    /// (ContainerProxy.scala `partitionArguments`, PrimitiveActions.scala `initParameters`).
    pub fn init_parameter_names(&self) -> std::collections::BTreeSet<String> {
        self.parameters
            .iter()
            .filter(|p| p.get("init").and_then(Value::as_bool) == Some(true))
            .filter_map(|p| p.get("key").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// Whether `provide-api-key` asks for the key (a missing annotation does, as ContainerProxy.scala reads it).
    pub fn provides_api_key(&self) -> bool {
        self.annotation("provide-api-key").is_none_or(truthy)
    }
}

/// OpenWhisk's `isTruthy`: `true`, non-zero numbers, non-empty strings.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Null => false,
        _ => true,
    }
}

pub(crate) fn annotation<'a>(list: &'a [Value], key: &str) -> Option<&'a Value> {
    list.iter().rev().find(|kv| kv["key"] == key).map(|kv| &kv["value"])
}

/// `[{"key", "value"}]` as one object (later keys win).
pub(crate) fn key_values(list: &[Value]) -> Map<String, Value> {
    let mut map = Map::new();
    for kv in list {
        if let Some(key) = kv["key"].as_str() {
            map.insert(key.to_string(), kv.get("value").cloned().unwrap_or(Value::Null));
        }
    }
    map
}

/// Checks a `parameters` / `annotations` member: an array of `{"key": string, "value": any}`.
pub(crate) fn check_key_values(value: &Value, field: &str) -> Result<Vec<Value>, ApiError> {
    let Some(list) = value.as_array() else {
        return Err(ApiError::malformed(format!("{field} must be an array of {{\"key\", \"value\"}} objects")));
    };
    for kv in list {
        if !kv.is_object() || !kv["key"].is_string() {
            return Err(ApiError::malformed(format!(
                "{field} must be an array of {{\"key\", \"value\"}} objects; got {}",
                short(kv)
            )));
        }
    }
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0);
    if size > MAX_PARAMETERS {
        return Err(ApiError::too_big(field, size, MAX_PARAMETERS));
    }
    // `init` marks a parameter for the container's `/init` (Parameter.scala `ParameterValue.init`).
    Ok(list
        .iter()
        .map(|kv| {
            let mut entry = json!({ "key": kv["key"], "value": kv.get("value").cloned().unwrap_or(Value::Null) });
            if kv.get("init").and_then(Value::as_bool) == Some(true) {
                entry["init"] = Value::Bool(true);
            }
            entry
        })
        .collect())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}...", &s[..s.char_indices().nth(77).map(|(i, _)| i).unwrap_or(s.len())])
    } else {
        s
    }
}

/// The patch version after `version` (`SemVer.upPatch`), for an update.
pub(crate) fn up_patch(version: &str) -> String {
    let parts: Vec<u64> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [major, minor, patch] => format!("{major}.{minor}.{}", patch + 1),
        _ => "0.0.1".to_string(),
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new pool of containers for an action.
pub(crate) fn new_pool(concurrent_limit: usize, idle: Option<std::time::Duration>) -> Arc<Pool<Container>> {
    Pool::new(PoolConfig::new(concurrent_limit.max(1), WhenBusy::Reject).idle_timeout(idle))
}

/// What a PUT's `exec` asks for, checked, before the code is unpacked.
#[derive(Debug)]
pub(crate) enum ExecRequest {
    Native {
        kind: String,
        image: Option<String>,
        main: Option<String>,
        protocol: Protocol,
        code: String,
        /// The zip, when the code is base64.
        zip: Option<Vec<u8>>,
    },
    Sequence {
        components: Vec<Name>,
    },
}

/// The images this emulator runs without Docker, by name without tag or registry.
fn image_protocol(image: &str) -> Option<Protocol> {
    let untagged = image.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(image, |(name, _)| name);
    let name = untagged.strip_prefix("docker.io/").unwrap_or(untagged);
    match name {
        "openwhisk/dockerskeleton" => Some(Protocol::Skeleton),
        "openwhisk/actionloop-v2" | "openwhisk/actionloop-base" | "openwhisk/actionloop" => Some(Protocol::ActionLoop),
        _ => None,
    }
}

/// `Exec.isBinaryCode`: non-empty, a multiple of 4 long, only base64 characters.
pub(crate) fn is_binary_code(code: &str) -> bool {
    let t = code.trim();
    !t.is_empty()
        && t.len().is_multiple_of(4)
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

const SUPPORTED: &str =
    "'blackbox' (images openwhisk/dockerskeleton, openwhisk/actionloop-v2, openwhisk/actionloop-base), \
                         'go:*' and 'rust:*' (a zip with a prebuilt exec), 'sequence'";

/// Checks a PUT body's `exec`.
pub(crate) fn check_exec(exec: &Value, namespace: &str, this: &Name) -> Result<ExecRequest, ApiError> {
    let Some(obj) = exec.as_object() else { return Err(ApiError::malformed("exec must be an object")) };
    let string = |key: &str| -> Result<Option<String>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::malformed(format!("exec.{key} must be a string"))),
        }
    };
    let kind = string("kind")?.ok_or_else(|| ApiError::malformed("exec.kind undefined"))?;
    if kind == "sequence" {
        let components = match obj.get("components") {
            Some(Value::Array(list)) => list,
            None | Some(Value::Null) => return Err(ApiError::bad_request("No component specified for the sequence.")),
            Some(_) => return Err(ApiError::malformed("exec.components must be an array of action names")),
        };
        if components.is_empty() {
            return Err(ApiError::bad_request("No component specified for the sequence."));
        }
        if components.len() > MAX_SEQUENCE {
            return Err(ApiError::bad_request("Too many actions in the sequence."));
        }
        let mut names = Vec::new();
        for c in components {
            let Some(reference) = c.as_str() else {
                return Err(ApiError::malformed("exec.components must be an array of action names"));
            };
            if !reference.starts_with('/') {
                return Err(ApiError::bad_request(format!(
                    "The fully qualified name of the entity must contain at least the namespace and the name of the entity: {reference}"
                )));
            }
            let name = Name::from_reference(reference, namespace)?;
            if &name == this {
                return Err(ApiError::bad_request("Sequence may not refer to itself."));
            }
            names.push(name);
        }
        return Ok(ExecRequest::Sequence { components: names });
    }
    let image = string("image")?;
    let main = string("main")?;
    let code = string("code")?;
    let protocol = match kind.as_str() {
        "blackbox" => {
            let image =
                image.as_deref().ok_or_else(|| ApiError::malformed("exec.image undefined for kind 'blackbox'"))?;
            image_protocol(image).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "The image '{image}' cannot run here: this emulator runs no Docker images. Native actions use \
                     openwhisk/dockerskeleton (wsk action create NAME exec.zip --native) or openwhisk/actionloop-v2."
                ))
            })?
        }
        k if k.starts_with("go:") || k.starts_with("rust:") => Protocol::ActionLoop,
        other => {
            return Err(ApiError::bad_request(format!(
                "The specified runtime '{other}' is not supported by this emulator. Valid values are: {SUPPORTED}."
            )))
        }
    };
    let code = code.ok_or_else(|| {
        ApiError::bad_request(format!(
            "exec.code undefined: this emulator has no image to take a default action from; give the {kind} action's code"
        ))
    })?;
    if code.len() > MAX_CODE {
        return Err(ApiError::too_big("exec", code.len(), MAX_CODE));
    }
    let zip = if is_binary_code(&code) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(code.trim())
            .map_err(|e| ApiError::bad_request(format!("exec.code is not valid base64: {e}")))?;
        if !bytes.starts_with(b"PK\x03\x04") && !bytes.starts_with(b"PK\x05\x06") {
            return Err(ApiError::bad_request(
                "exec.code is base64 but not of a zip archive; binary code must be a zip with the executable `exec` at its top level",
            ));
        }
        Some(bytes)
    } else {
        None
    };
    if zip.is_none() && kind != "blackbox" {
        return Err(ApiError::bad_request(format!(
            "kind '{kind}': this emulator compiles no source code; give a zip (base64) with a prebuilt executable `exec` at its top level"
        )));
    }
    Ok(ExecRequest::Native { kind, image, main, protocol, code, zip })
}

/// Writes an action's code into `dir` (which must not exist yet): the zip unpacked safely, or
/// the text code as the executable `exec` (what the dockerskeleton does with text code). The
/// `exec` gets its execute bits.
pub(crate) fn prepare_code(code: &str, zip: Option<&[u8]>, dir: &Path, max_unzipped: u64) -> Result<(), ApiError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| ApiError::internal(format!("cannot write the action's code: {e}"));
    match zip {
        Some(bytes) => {
            let limits = UnpackLimits { max_zipped: MAX_CODE as u64, max_unzipped, max_entries: MAX_ENTRIES };
            let archive = Archive::open(bytes, limits).map_err(|e| unpack_error(&e))?;
            match archive.entry("exec") {
                Some(e) if !e.is_dir => {}
                _ => return Err(ApiError::bad_request(
                    "the zip has no file `exec` at its top level: the executable of a native action must be named exec",
                )),
            }
            archive.extract(dir).map_err(|e| unpack_error(&e))?;
        }
        None => {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::write(dir.join("exec"), code).map_err(io)?;
        }
    }
    let exec = dir.join("exec");
    let mode = std::fs::metadata(&exec).map_err(io)?.permissions().mode();
    std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(mode | 0o755)).map_err(io)?;
    Ok(())
}

fn unpack_error(e: &UnpackError) -> ApiError {
    match e {
        UnpackError::ZippedTooLarge { size, limit } => ApiError::too_big("exec", *size as usize, *limit as usize),
        UnpackError::Io { .. } => ApiError::internal(format!("cannot unpack the action's code: {e}")),
        other => ApiError::bad_request(format!("the action's zip was refused: {other}")),
    }
}

/// A package or a trigger: the two entities with the same fields (the controller keeps them
/// in collections of their own and renders them differently).
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub parameters: Vec<Value>,
    pub annotations: Vec<Value>,
    pub updated: i64,
}

/// A package: a namespace of actions with shared parameters.
pub(crate) type Package = Holder;
/// A trigger.
pub(crate) type Trigger = Holder;

impl Holder {
    /// The entity `name` as a PUT with body `doc` makes it: parameters and annotations from the
    /// body, or kept from `existing` when the body leaves them out; version 0.0.1, or one patch
    /// above the existing one's.
    pub fn put(name: &str, doc: &Map<String, Value>, existing: Option<&Holder>) -> Result<Holder, ApiError> {
        let kept = |field: &str, old: fn(&Holder) -> &Vec<Value>| match doc.get(field) {
            None | Some(Value::Null) => Ok(existing.map(|e| old(e).clone()).unwrap_or_default()),
            Some(v) => check_key_values(v, field),
        };
        Ok(Holder {
            name: name.to_string(),
            version: existing.map(|e| up_patch(&e.version)).unwrap_or_else(|| "0.0.1".into()),
            publish: doc.get("publish").and_then(Value::as_bool).unwrap_or(false),
            parameters: kept("parameters", |e| &e.parameters)?,
            annotations: kept("annotations", |e| &e.annotations)?,
            updated: now_ms(),
        })
    }

    pub fn json(&self, namespace: &str, actions: Vec<Value>) -> Value {
        json!({
            "namespace": namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "parameters": self.parameters,
            "annotations": self.annotations,
            "binding": {},
            "actions": actions,
            "feeds": [],
            "updated": self.updated,
        })
    }

    pub fn summary(&self, namespace: &str) -> Value {
        json!({
            "namespace": namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "binding": false,
            "updated": self.updated,
        })
    }
}

/// A rule: when its trigger fires and it is active, its action is invoked.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub annotations: Vec<Value>,
    pub trigger: String,
    pub action: Name,
    pub active: bool,
    pub updated: i64,
}

impl Rule {
    pub fn status(&self) -> &'static str {
        if self.active {
            "active"
        } else {
            "inactive"
        }
    }

    pub fn json(&self, namespace: &str) -> Value {
        json!({
            "namespace": namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "status": self.status(),
            "trigger": { "name": self.trigger, "path": namespace },
            "action": { "name": self.action.name, "path": self.action.namespace_path(namespace) },
            "updated": self.updated,
        })
    }
}

/// Everything of the namespace.
#[derive(Debug, Default)]
pub(crate) struct Entities {
    pub actions: BTreeMap<String, Arc<Action>>,
    pub packages: BTreeMap<String, Package>,
    pub triggers: BTreeMap<String, Trigger>,
    pub rules: BTreeMap<String, Rule>,
}

impl Entities {
    /// The trigger's JSON, with its rules as `ReducedRule`s.
    pub fn trigger_json(&self, trigger: &Trigger, namespace: &str, summary: bool) -> Value {
        let mut value = json!({
            "namespace": namespace,
            "name": trigger.name,
            "version": trigger.version,
            "publish": trigger.publish,
            "annotations": trigger.annotations,
            "updated": trigger.updated,
        });
        if !summary {
            value["parameters"] = json!(trigger.parameters);
            value["limits"] = json!({});
            let rules: Map<String, Value> = self
                .rules
                .values()
                .filter(|r| r.trigger == trigger.name)
                .map(|r| {
                    let reduced = json!({
                        "action": { "name": r.action.name, "path": r.action.namespace_path(namespace) },
                        "status": r.status(),
                    });
                    (format!("{namespace}/{}", r.name), reduced)
                })
                .collect();
            if !rules.is_empty() {
                value["rules"] = Value::Object(rules);
            }
        }
        value
    }

    /// Whether any entity of another collection has this top-level name (OpenWhisk keeps them
    /// in one store: an action, trigger, rule or package of the same name conflict).
    pub fn name_taken_elsewhere(&self, name: &str, collection: &str) -> bool {
        (collection != "actions" && self.actions.contains_key(name))
            || (collection != "packages" && self.packages.contains_key(name))
            || (collection != "triggers" && self.triggers.contains_key(name))
            || (collection != "rules" && self.rules.contains_key(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_with_openwhisk_wording() {
        let l = Limits::default().merge(&json!({"timeout": 100, "memory": 512})).unwrap();
        assert_eq!((l.timeout, l.memory, l.logs), (100, 512, 10));
        let e = Limits::default().merge(&json!({"timeout": 99})).unwrap_err();
        assert!(
            e.message.ends_with("timeout 99 milliseconds below allowed threshold of 100 milliseconds"),
            "{}",
            e.message
        );
        let e = Limits::default().merge(&json!({"memory": 1024})).unwrap_err();
        assert!(e.message.ends_with("memory size 1024 MB exceeds allowed threshold of 512 MB"), "{}", e.message);
        assert!(Limits::default().merge(&json!({"timeout": "x"})).is_err());
        assert!(Limits::default().merge(&json!({"timeout": -5})).is_err());
    }

    #[test]
    fn binary_code_is_recognised_by_shape() {
        assert!(is_binary_code("UEsDBA=="));
        assert!(!is_binary_code("#!/bin/sh\necho {}"));
        assert!(!is_binary_code("abc"));
        assert_eq!(up_patch("0.0.1"), "0.0.2");
        assert_eq!(image_protocol("openwhisk/dockerskeleton:1.14.0"), Some(Protocol::Skeleton));
        assert_eq!(image_protocol("docker.io/openwhisk/actionloop-v2"), Some(Protocol::ActionLoop));
        assert_eq!(image_protocol("me/image"), None);
    }
}
