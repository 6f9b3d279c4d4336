//! Create, update and delete: the checks made before an operation starts (400s that change
//! nothing), the stored `Function` with the fields the service fills in, and the background
//! deployment that builds (unpacks, checks) and starts a revision.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faas_packaging::unpack::{Limits, UnpackError};
use faas_supervisor::ProcessSpec;
use serde_json::{json, Map, Value};

use crate::api::{parse_json, render_operation, EMPTY_TYPE, FUNCTION_TYPE, PROJECT_NUMBER, PYTHON_RUNTIMES};
use crate::error::ApiError;
use crate::logs::Resource;
use crate::serve::{Revision, RevisionSpec, Service};
use crate::wire::{self, Message};
use crate::{Function, Operation, Shared};

/// Cloud Functions' source limits: 100 MiB zipped, 500 MiB unzipped (UNCONFIRMED for the
/// number of entries, which we bound at 100,000).
const SOURCE_LIMITS: Limits = Limits { max_zipped: 100 << 20, max_unzipped: 500 << 20, max_entries: 100_000 };

/// A message's fields, for the unknown-field check (`None`: a leaf or a map, not looked into).
#[derive(Clone, Copy)]
struct Fields(&'static [(&'static str, Option<Fields>)]);

const STORAGE_SOURCE: Fields =
    Fields(&[("bucket", None), ("object", None), ("generation", None), ("sourceUploadUrl", None)]);
const SOURCE: Fields = Fields(&[("storageSource", Some(STORAGE_SOURCE)), ("repoSource", None), ("gitUri", None)]);
const BUILD_CONFIG: Fields = Fields(&[
    ("build", None),
    ("runtime", None),
    ("entryPoint", None),
    ("source", Some(SOURCE)),
    ("sourceProvenance", None),
    ("workerPool", None),
    ("environmentVariables", None),
    ("dockerRegistry", None),
    ("dockerRepository", None),
    ("serviceAccount", None),
    ("automaticUpdatePolicy", None),
    ("onDeployUpdatePolicy", None),
]);
const SERVICE_CONFIG: Fields = Fields(&[
    ("service", None),
    ("timeoutSeconds", None),
    ("availableMemory", None),
    ("availableCpu", None),
    ("environmentVariables", None),
    ("maxInstanceCount", None),
    ("minInstanceCount", None),
    ("vpcConnector", None),
    ("vpcConnectorEgressSettings", None),
    ("ingressSettings", None),
    ("uri", None),
    ("serviceAccountEmail", None),
    ("allTrafficOnLatestRevision", None),
    ("secretEnvironmentVariables", None),
    ("secretVolumes", None),
    ("revision", None),
    ("maxInstanceRequestConcurrency", None),
    ("securityLevel", None),
    ("binaryAuthorizationPolicy", None),
]);
const EVENT_FILTER: Fields = Fields(&[("attribute", None), ("value", None), ("operator", None)]);
const EVENT_TRIGGER: Fields = Fields(&[
    ("trigger", None),
    ("triggerRegion", None),
    ("eventType", None),
    ("eventFilters", Some(EVENT_FILTER)),
    ("pubsubTopic", None),
    ("serviceAccountEmail", None),
    ("retryPolicy", None),
    ("channel", None),
    ("service", None),
]);
const FUNCTION: Fields = Fields(&[
    ("name", None),
    ("description", None),
    ("buildConfig", Some(BUILD_CONFIG)),
    ("serviceConfig", Some(SERVICE_CONFIG)),
    ("eventTrigger", Some(EVENT_TRIGGER)),
    ("state", None),
    ("updateTime", None),
    ("labels", None),
    ("stateMessages", None),
    ("environment", None),
    ("url", None),
    ("kmsKeyName", None),
    ("satisfiesPzs", None),
    ("createTime", None),
]);

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Renames proto (snake_case) field names to their JSON names and refuses unknown fields, as
/// Google's JSON front end does: `Unknown name "x" at 'function.build_config': Cannot find field.`
fn normalize(value: &mut Value, fields: Fields, at: &str) -> Result<(), ApiError> {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                normalize(item, fields, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (key, mut v) in old {
                let name = camel(&key);
                let Some((_, inner)) = fields.0.iter().find(|(f, _)| *f == name) else {
                    return Err(ApiError::invalid(format!(
                        "Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field."
                    )));
                };
                if let Some(inner) = inner {
                    normalize(&mut v, *inner, &format!("{at}.{}", snake(&name)))?;
                }
                map.insert(name, v);
            }
            Ok(())
        }
        Value::Null => Ok(()),
        _ => Err(ApiError::invalid(format!("Invalid JSON payload received. Expected an object at '{at}'."))),
    }
}

/// Output-only fields, dropped from what a caller sends.
fn strip_outputs(f: &mut Value) {
    if let Value::Object(m) = f {
        for k in ["name", "state", "updateTime", "createTime", "url", "stateMessages", "satisfiesPzs"] {
            m.remove(k);
        }
    }
    if let Some(Value::Object(b)) = f.get_mut("buildConfig") {
        b.remove("build");
        b.remove("sourceProvenance");
    }
    if let Some(Value::Object(s)) = f.get_mut("serviceConfig") {
        for k in ["service", "uri", "revision"] {
            s.remove(k);
        }
    }
    if let Some(Value::Object(t)) = f.get_mut("eventTrigger") {
        t.remove("trigger");
        t.remove("service");
    }
}

fn int_field(v: &Value, field: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        Some(n) => Err(ApiError::invalid(format!("{field}: {n} is out of range, must be between {min} and {max}"))),
        None => Err(ApiError::invalid(format!("Invalid value at '{}' (TYPE_INT32), {v}", snake(field)))),
    }
}

fn string_map(v: &Value, field: &str) -> Result<Vec<(String, String)>, ApiError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => {
                    Err(ApiError::invalid(format!("Invalid value at '{}[{k}]' (TYPE_STRING), {other}", snake(field))))
                }
            })
            .collect(),
        other => Err(ApiError::invalid(format!("Invalid value at '{}' (map), {other}", snake(field)))),
    }
}

/// What a deployment needs, checked.
struct Checked {
    /// The function as stored (output fields not yet filled).
    function: Value,
    archive: PathBuf,
    generation: i64,
    entry_point: String,
    timeout: u64,
    memory: u64,
    max_instances: usize,
    concurrency: usize,
    env: Vec<(String, String)>,
    event: bool,
}

/// Names Cloud Run sets itself and refuses in a service's environment (Cloud Run's message:
/// "The following reserved env names were provided: ... These values are automatically set by
/// the system.").
fn reserved(name: &str) -> bool {
    matches!(name, "PORT" | "K_SERVICE" | "K_REVISION" | "K_CONFIGURATION")
        || name.starts_with("X_GOOGLE_")
        || name.starts_with("K_")
}

fn check(shared: &Shared, id: &str, mut f: Value) -> Result<Checked, ApiError> {
    wire::map_enums(&mut f, Message::Function, false)
        .map_err(|e| ApiError::invalid(format!("Invalid value at 'function.{}', {}", snake(&e.field), e.value)))?;
    strip_outputs(&mut f);
    let build = f.get("buildConfig").cloned().unwrap_or(Value::Null);
    let runtime = build["runtime"].as_str().unwrap_or("");
    if runtime.is_empty() {
        return Err(ApiError::invalid("function.build_config.runtime: a runtime is required"));
    }
    let python =
        runtime.strip_prefix("python3").is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    if !python {
        return Err(ApiError::invalid(format!(
            "function.build_config.runtime: runtime \"{runtime}\" is not supported by this emulator, which runs \
             Python functions only: {}",
            PYTHON_RUNTIMES.join(", ")
        )));
    }
    let source = &build["source"];
    if !source["repoSource"].is_null() || !source["gitUri"].is_null() {
        return Err(ApiError::invalid(
            "function.build_config.source: only a storageSource (from generateUploadUrl) is supported by the emulator",
        ));
    }
    let storage = &source["storageSource"];
    let (bucket, object) = (storage["bucket"].as_str().unwrap_or(""), storage["object"].as_str().unwrap_or(""));
    if bucket.is_empty() || object.is_empty() {
        return Err(ApiError::invalid(
            "function.build_config.source: a source is required: storageSource {bucket, object} from generateUploadUrl",
        ));
    }
    let (archive, generation) = {
        let state = shared.state.lock().unwrap();
        match state.uploads.get(&(bucket.to_string(), object.to_string())) {
            Some(u) => match u.generation {
                Some(g) => (u.path.clone(), g),
                None => {
                    return Err(ApiError::invalid(format!(
                        "function.build_config.source.storage_source: object gs://{bucket}/{object} has not been \
                         uploaded (PUT the zip to the uploadUrl first)"
                    )))
                }
            },
            None => {
                return Err(ApiError::invalid(format!(
                    "function.build_config.source.storage_source: object gs://{bucket}/{object} does not exist"
                )))
            }
        }
    };
    let entry_point = build["entryPoint"].as_str().filter(|s| !s.is_empty()).unwrap_or(id).to_string();
    string_map(&build["environmentVariables"], "buildConfig.environmentVariables")?;
    let service = f.get("serviceConfig").cloned().unwrap_or(Value::Null);
    let event = f.get("eventTrigger").is_some_and(|t| !t.is_null());
    // 2nd gen: HTTP functions up to 60 minutes, event-driven up to 9 (documented limits).
    let max_timeout = if event { 540 } else { 3600 };
    let timeout = int_field(&service["timeoutSeconds"], "serviceConfig.timeoutSeconds", 1, max_timeout)?.unwrap_or(60);
    let memory_text = service["availableMemory"].as_str().unwrap_or("256M");
    let memory = wire::parse_memory(memory_text).ok_or_else(|| {
        ApiError::invalid(format!(
            "function.service_config.available_memory: \"{memory_text}\" is not a memory size (e.g. 256M, 1G, 512Mi)"
        ))
    })?;
    let max_instances = int_field(&service["maxInstanceCount"], "serviceConfig.maxInstanceCount", 0, 1000)?
        .filter(|n| *n > 0)
        .unwrap_or(100);
    let concurrency =
        int_field(&service["maxInstanceRequestConcurrency"], "serviceConfig.maxInstanceRequestConcurrency", 0, 1000)?
            .filter(|n| *n > 0)
            .unwrap_or(1);
    int_field(&service["minInstanceCount"], "serviceConfig.minInstanceCount", 0, 1000)?;
    let env = string_map(&service["environmentVariables"], "serviceConfig.environmentVariables")?;
    let bad: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).filter(|k| reserved(k)).collect();
    if !bad.is_empty() {
        return Err(ApiError::invalid(format!(
            "The following reserved env names were provided: {}. These values are automatically set by the system.",
            bad.join(", ")
        )));
    }
    if let Some(k) = env.iter().map(|(k, _)| k).find(|k| k.is_empty() || k.contains('=') || k.contains('\0')) {
        return Err(ApiError::invalid(format!(
            "function.service_config.environment_variables: \"{k}\" is not a valid environment variable name"
        )));
    }
    if event {
        let t = &f["eventTrigger"];
        if t["eventType"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::invalid("function.event_trigger.event_type: an event type is required"));
        }
        if let Some(filters) = t.get("eventFilters") {
            let ok = filters
                .as_array()
                .is_some_and(|fs| fs.iter().all(|f| f["attribute"].is_string() && f["value"].is_string()));
            if !ok {
                return Err(ApiError::invalid(
                    "function.event_trigger.event_filters: each filter needs an attribute and a value",
                ));
            }
        }
    }
    if let Some(l) = f.get("labels") {
        string_map(l, "labels")?;
    }
    Ok(Checked {
        function: f,
        archive,
        generation,
        entry_point,
        timeout: timeout as u64,
        memory,
        max_instances: max_instances as usize,
        concurrency: concurrency as usize,
        env,
        event,
    })
}

/// Fills in what the service sets: names, defaults, the revision, `uri` and `url`.
fn fill(f: &mut Value, (p, l, id): (&str, &str, &str), revision: &str, uri: &str, generation: i64, created: &str) {
    let name = format!("projects/{p}/locations/{l}/functions/{id}");
    let now = wire::now();
    let obj = |v: &mut Value, k: &str| -> Map<String, Value> {
        match v.get(k) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    };
    let mut build = obj(f, "buildConfig");
    let storage = build["source"]["storageSource"].clone();
    let resolved = json!({
        "bucket": storage["bucket"], "object": storage["object"], "generation": generation.to_string()
    });
    build.insert("source".into(), json!({ "storageSource": resolved }));
    build.insert("sourceProvenance".into(), json!({ "resolvedStorageSource": resolved }));
    build.insert(
        "build".into(),
        format!("projects/{PROJECT_NUMBER}/locations/{l}/builds/{}", uuid::Uuid::new_v4()).into(),
    );
    build.entry("dockerRegistry").or_insert("ARTIFACT_REGISTRY".into());
    build.entry("dockerRepository").or_insert(format!("projects/{p}/locations/{l}/repositories/gcf-artifacts").into());
    build.entry("serviceAccount").or_insert(
        format!("projects/{p}/serviceAccounts/{PROJECT_NUMBER}-compute@developer.gserviceaccount.com").into(),
    );
    build.entry("entryPoint").or_insert(id.into());
    let mut service = obj(f, "serviceConfig");
    service.insert("service".into(), format!("projects/{p}/locations/{l}/services/{id}").into());
    service.entry("timeoutSeconds").or_insert(60.into());
    service.entry("availableMemory").or_insert("256M".into());
    service.entry("availableCpu").or_insert("0.1666".into());
    service.entry("maxInstanceCount").or_insert(100.into());
    service.entry("ingressSettings").or_insert("ALLOW_ALL".into());
    service.entry("maxInstanceRequestConcurrency").or_insert(1.into());
    service.entry("allTrafficOnLatestRevision").or_insert(true.into());
    service
        .entry("serviceAccountEmail")
        .or_insert(format!("{PROJECT_NUMBER}-compute@developer.gserviceaccount.com").into());
    // Cloud Functions adds LOG_EXECUTION_ID to a 2nd gen function's variables.
    let env = service.entry("environmentVariables").or_insert(json!({}));
    if let Value::Object(env) = env {
        env.insert("LOG_EXECUTION_ID".into(), "true".into());
    }
    service.insert("revision".into(), revision.into());
    service.insert("uri".into(), uri.into());
    let m = f.as_object_mut().expect("a function is an object");
    m.insert("name".into(), name.into());
    m.insert("buildConfig".into(), Value::Object(build));
    m.insert("serviceConfig".into(), Value::Object(service));
    if let Some(Value::Object(t)) = m.get_mut("eventTrigger") {
        t.insert(
            "trigger".into(),
            format!("projects/{p}/locations/{l}/triggers/{id}-{:06}", generation % 1_000_000).into(),
        );
        t.entry("triggerRegion").or_insert(l.into());
        t.entry("retryPolicy").or_insert("RETRY_POLICY_DO_NOT_RETRY".into());
        t.entry("serviceAccountEmail")
            .or_insert(format!("{PROJECT_NUMBER}-compute@developer.gserviceaccount.com").into());
        t.insert("service".into(), format!("projects/{p}/locations/{l}/services/{id}").into());
    }
    m.insert("state".into(), "DEPLOYING".into());
    m.insert("updateTime".into(), now.into());
    m.insert("createTime".into(), created.into());
    m.entry("environment").or_insert("GEN_2".into());
    m.insert("url".into(), uri.into());
}

fn new_operation_name(p: &str, l: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("projects/{p}/locations/{l}/operations/operation-{}-{}", chrono::Utc::now().timestamp_millis(), &id[..20])
}

fn metadata(target: &str, verb: &str, kind: &str, request: &Value, event: bool) -> Value {
    let mut request = request.clone();
    if let Value::Object(m) = &mut request {
        m.insert("@type".into(), FUNCTION_TYPE.into());
    }
    let mut stages =
        vec![json!({"name": "BUILD", "state": "NOT_STARTED"}), json!({"name": "SERVICE", "state": "NOT_STARTED"})];
    if event {
        stages.push(json!({"name": "TRIGGER", "state": "NOT_STARTED"}));
    }
    if verb == "delete" {
        stages.clear();
    }
    json!({
        "createTime": wire::now(),
        "target": target,
        "verb": verb,
        "cancelRequested": false,
        "apiVersion": "v2",
        "requestResource": request,
        "stages": stages,
        "operationType": kind,
    })
}

/// `POST .../functions?functionId=ID`.
pub(crate) async fn create(
    shared: &Arc<Shared>,
    p: &str,
    l: &str,
    query: Option<&str>,
    body: &Bytes,
    int: bool,
) -> Result<Value, ApiError> {
    if l == "-" {
        return Err(ApiError::invalid("parent: a function is created in a location; '-' names all of them"));
    }
    let mut body = parse_json(body)?;
    normalize(&mut body, FUNCTION, "function")?;
    let id = match wire::query_param(query, "functionId").filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => body["name"].as_str().and_then(|n| n.rsplit('/').next()).unwrap_or("").to_string(),
    };
    if id.is_empty() {
        return Err(ApiError::invalid("function_id: a function id is required (?functionId=ID)"));
    }
    if let Some(why) = wire::check_function_id(&id) {
        return Err(ApiError::invalid(why));
    }
    let name = format!("projects/{p}/locations/{l}/functions/{id}");
    if shared.state.lock().unwrap().functions.contains_key(&name) {
        return Err(ApiError::already_exists(&name));
    }
    let checked = check(shared, &id, body.clone())?;
    let service = Service::bind(shared).await.map_err(|e| ApiError::internal(format!("cannot bind a port: {e}")))?;
    let created = wire::now();
    let revision = format!("{id}-00001-{}", wire::revision_suffix());
    let mut function = checked.function.clone();
    fill(&mut function, (p, l, &id), &revision, &service.uri(), checked.generation, &created);
    let op_name = new_operation_name(p, l);
    let meta = metadata(&name, "create", "CREATE_FUNCTION", &body, checked.event);
    let op = Operation { metadata: meta, result: None };
    let rendered;
    {
        let mut state = shared.state.lock().unwrap();
        if state.functions.contains_key(&name) {
            service.close();
            return Err(ApiError::already_exists(&name));
        }
        state.functions.insert(
            name.clone(),
            Function {
                resource: function.clone(),
                service: service.clone(),
                busy: Some(op_name.clone()),
                revisions: 1,
            },
        );
        rendered = render_operation(&op_name, &op, int);
        state.operations.insert(op_name.clone(), op);
    }
    let job = Job { p: p.into(), l: l.into(), id, name, op: op_name, revision, checked, service, create: true };
    let task = tokio::spawn(run(shared.clone(), job));
    shared.tasks.track(task);
    Ok(rendered)
}

/// `PATCH .../functions/ID?updateMask=...`.
pub(crate) async fn update(
    shared: &Arc<Shared>,
    p: &str,
    l: &str,
    id: &str,
    query: Option<&str>,
    body: &Bytes,
    int: bool,
) -> Result<Value, ApiError> {
    let name = format!("projects/{p}/locations/{l}/functions/{id}");
    let mut body = parse_json(body)?;
    normalize(&mut body, FUNCTION, "function")?;
    let (current, service, number) = {
        let state = shared.state.lock().unwrap();
        let f = state.functions.get(&name).ok_or_else(|| ApiError::not_found(&name))?;
        if f.busy.is_some() {
            return Err(busy(&name));
        }
        (f.resource.clone(), f.service.clone(), f.revisions + 1)
    };
    let mut merged = current.clone();
    strip_outputs(&mut merged);
    match wire::query_param(query, "updateMask").filter(|m| !m.trim().is_empty()) {
        Some(mask) => {
            for path in mask.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let parts: Vec<String> = path.split('.').map(camel).collect();
                apply_path(&mut merged, &body, &parts).map_err(|_| {
                    ApiError::invalid(format!("update_mask: \"{path}\" is not a field of the function"))
                })?;
            }
        }
        None => {
            let mut replacement = body.clone();
            strip_outputs(&mut replacement);
            if let (Value::Object(m), Some(env)) = (&mut replacement, current.get("environment")) {
                m.entry("environment").or_insert(env.clone());
            }
            merged = replacement;
        }
    }
    // The variable the service added is not the caller's.
    if let Some(Value::Object(env)) = merged.pointer_mut("/serviceConfig/environmentVariables") {
        env.remove("LOG_EXECUTION_ID");
    }
    let checked = check(shared, id, merged)?;
    let created = current["createTime"].as_str().unwrap_or("").to_string();
    let revision = format!("{id}-{number:05}-{}", wire::revision_suffix());
    let mut function = checked.function.clone();
    fill(&mut function, (p, l, id), &revision, &service.uri(), checked.generation, &created);
    let op_name = new_operation_name(p, l);
    let meta = metadata(&name, "update", "UPDATE_FUNCTION", &body, checked.event);
    let op = Operation { metadata: meta, result: None };
    let rendered;
    {
        let mut state = shared.state.lock().unwrap();
        let f = state.functions.get_mut(&name).ok_or_else(|| ApiError::not_found(&name))?;
        if f.busy.is_some() {
            return Err(busy(&name));
        }
        f.busy = Some(op_name.clone());
        f.revisions = number;
        // The stored function says DEPLOYING with the new configuration; the old revision
        // serves until the new one is ready.
        f.resource = function;
        rendered = render_operation(&op_name, &op, int);
        state.operations.insert(op_name.clone(), op);
    }
    let job =
        Job { p: p.into(), l: l.into(), id: id.into(), name, op: op_name, revision, checked, service, create: false };
    let task = tokio::spawn(run(shared.clone(), job));
    shared.tasks.track(task);
    Ok(rendered)
}

fn apply_path(target: &mut Value, source: &Value, path: &[String]) -> Result<(), ()> {
    let (first, rest) = path.split_first().ok_or(())?;
    let known = match target {
        Value::Object(_) => true,
        _ => return Err(()),
    };
    debug_assert!(known);
    let from = source.get(first.as_str());
    if rest.is_empty() {
        let m = target.as_object_mut().expect("an object");
        match from {
            Some(v) if !v.is_null() => {
                m.insert(first.clone(), v.clone());
            }
            _ => {
                m.remove(first.as_str());
            }
        }
        return Ok(());
    }
    let m = target.as_object_mut().expect("an object");
    let next = m.entry(first.clone()).or_insert_with(|| json!({}));
    if !next.is_object() {
        *next = json!({});
    }
    apply_path(next, from.unwrap_or(&Value::Null), rest)
}

fn busy(name: &str) -> ApiError {
    // UNCONFIRMED wording; the status is the API's (409 ABORTED).
    ApiError::aborted(format!(
        "An operation on function {name} is already in progress. Please try again later (the previous operation \
         must finish first)."
    ))
}

/// `DELETE .../functions/ID`.
pub(crate) fn delete(shared: &Arc<Shared>, p: &str, l: &str, id: &str, int: bool) -> Result<Value, ApiError> {
    let name = format!("projects/{p}/locations/{l}/functions/{id}");
    let op_name = new_operation_name(p, l);
    let rendered;
    let service;
    {
        let mut state = shared.state.lock().unwrap();
        let f = state.functions.get_mut(&name).ok_or_else(|| ApiError::not_found(&name))?;
        if f.busy.is_some() {
            return Err(busy(&name));
        }
        f.busy = Some(op_name.clone());
        f.resource["state"] = "DELETING".into();
        service = f.service.clone();
        let meta = metadata(&name, "delete", "DELETE_FUNCTION", &json!({}), false);
        let mut meta = meta;
        if let Value::Object(m) = &mut meta {
            m.remove("requestResource");
        }
        let op = Operation { metadata: meta, result: None };
        rendered = render_operation(&op_name, &op, int);
        state.operations.insert(op_name.clone(), op);
    }
    let shared2 = shared.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        service.close();
        let mut state = shared2.state.lock().unwrap();
        state.functions.remove(&name);
        if let Some(op) = state.operations.get_mut(&op_name) {
            op.metadata["endTime"] = wire::now().into();
            op.result = Some(Ok(json!({ "@type": EMPTY_TYPE })));
        }
    });
    shared.tasks.track(task);
    Ok(rendered)
}

struct Job {
    p: String,
    l: String,
    id: String,
    name: String,
    op: String,
    revision: String,
    checked: Checked,
    service: Arc<Service>,
    create: bool,
}

fn set_stage(
    shared: &Shared,
    op: &str,
    stage: &str,
    state: &str,
    message: Option<&str>,
    resource: Option<(String, String)>,
) {
    let mut s = shared.state.lock().unwrap();
    let Some(op) = s.operations.get_mut(op) else { return };
    if let Some(stages) = op.metadata["stages"].as_array_mut() {
        for st in stages.iter_mut().filter(|st| st["name"] == stage) {
            st["state"] = state.into();
            if let Some(m) = message {
                st["message"] = m.into();
            }
            if let Some((r, uri)) = &resource {
                st["resource"] = r.clone().into();
                st["resourceUri"] = uri.clone().into();
            }
        }
    }
}

/// The deployment: build, then start the revision and check it listens, then serve it.
async fn run(shared: Arc<Shared>, job: Job) {
    // The build the stored function names (`buildConfig.build`), so that the stage agrees.
    let build_id = {
        let state = shared.state.lock().unwrap();
        state
            .functions
            .get(&job.name)
            .and_then(|f| {
                f.resource["buildConfig"]["build"].as_str().and_then(|b| b.rsplit('/').next()).map(str::to_string)
            })
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    };
    let build = (
        format!("projects/{PROJECT_NUMBER}/locations/{}/builds/{build_id}", job.l),
        format!(
            "https://console.cloud.google.com/cloud-build/builds;region={}/{build_id}?project={PROJECT_NUMBER}",
            job.l
        ),
    );
    set_stage(&shared, &job.op, "BUILD", "IN_PROGRESS", Some("Build in progress"), Some(build.clone()));
    let dir = shared.state_dir.join("functions").join(&job.p).join(&job.l).join(&job.id).join(&job.revision);
    let built = build_source(&job.checked.archive, &dir).await;
    if let Err(message) = built {
        set_stage(&shared, &job.op, "BUILD", "COMPLETE", Some("Build failed"), None);
        return finish(&shared, &job, Err(ApiError::invalid(format!("Build failed: {message}"))));
    }
    set_stage(&shared, &job.op, "BUILD", "COMPLETE", Some("Build finished"), None);
    let service_res = (
        format!("projects/{}/locations/{}/services/{}", job.p, job.l, job.id),
        format!("https://console.cloud.google.com/run/detail/{}/{}?project={}", job.l, job.id, job.p),
    );
    let verb = if job.create { "Creating" } else { "Updating" };
    set_stage(
        &shared,
        &job.op,
        "SERVICE",
        "IN_PROGRESS",
        Some(&format!("{verb} Cloud Run service")),
        Some(service_res),
    );
    let spec = instance_spec(&shared, &job, &dir);
    let resource = Resource {
        project: job.p.clone(),
        location: job.l.clone(),
        service: job.id.clone(),
        revision: job.revision.clone(),
    };
    let revision = Revision::new(
        RevisionSpec {
            name: job.revision.clone(),
            resource,
            spec,
            timeout: Duration::from_secs(job.checked.timeout),
            max_instances: job.checked.max_instances,
            concurrency: job.checked.concurrency,
            memory: Some(job.checked.memory),
        },
        &shared,
    );
    let started = match revision.start_instance() {
        Ok(instance) => match instance.ready().await {
            Ok(()) => Ok(instance),
            Err(why) => Err(why),
        },
        Err(why) => Err(why),
    };
    match started {
        Ok(instance) => {
            revision.adopt(instance);
            job.service.switch(revision);
            set_stage(&shared, &job.op, "SERVICE", "COMPLETE", Some("Service is ready"), None);
            set_stage(&shared, &job.op, "TRIGGER", "COMPLETE", Some("Trigger is ready"), None);
            finish(&shared, &job, Ok(()));
        }
        Err(why) => {
            drop(revision);
            set_stage(&shared, &job.op, "SERVICE", "COMPLETE", Some("Service update failed"), None);
            let message = format!(
                "Could not create or update Cloud Run service {}, Container Healthcheck failed. Revision '{}' is not \
                 ready and cannot serve traffic. The user-provided container failed to start and listen on the port \
                 defined provided by the PORT=8080 environment variable within the allocated timeout. This can happen \
                 when the container port is misconfigured or if the timeout is too short. ({why}; see the logs of \
                 revision {})",
                job.id, job.revision, job.revision
            );
            finish(&shared, &job, Err(ApiError::invalid(message)));
        }
    }
}

fn finish(shared: &Shared, job: &Job, result: Result<(), ApiError>) {
    let mut state = shared.state.lock().unwrap();
    let now = wire::now();
    let response = match state.functions.get_mut(&job.name) {
        Some(f) => {
            f.busy = None;
            match &result {
                Ok(()) => {
                    f.resource["state"] = "ACTIVE".into();
                    f.resource.as_object_mut().map(|m| m.remove("stateMessages"));
                }
                Err(e) => {
                    f.resource["state"] = "FAILED".into();
                    f.resource["stateMessages"] =
                        json!([{ "severity": "ERROR", "type": "CloudRunServiceNotReady", "message": e.message }]);
                }
            }
            f.resource["updateTime"] = now.clone().into();
            let mut response = f.resource.clone();
            response["@type"] = FUNCTION_TYPE.into();
            // `@type` first, as Any's JSON mapping writes it.
            let mut ordered = Map::new();
            ordered.insert("@type".into(), FUNCTION_TYPE.into());
            if let Value::Object(m) = response {
                ordered.extend(m.into_iter().filter(|(k, _)| k != "@type"));
            }
            Value::Object(ordered)
        }
        None => json!({ "@type": FUNCTION_TYPE }),
    };
    if let Some(op) = state.operations.get_mut(&job.op) {
        op.metadata["endTime"] = now.into();
        op.result = Some(result.map(|()| response));
    }
}

/// Unpacks the archive (with Cloud Functions' limits; refusing entries that would land outside
/// the directory) and checks the file the Python runtime needs.
async fn build_source(archive: &Path, dir: &Path) -> Result<(), String> {
    let archive = archive.to_path_buf();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&archive).map_err(|e| format!("cannot read the uploaded source: {e}"))?;
        let _ = std::fs::remove_dir_all(&dir);
        faas_packaging::unpack::unpack(&bytes, &dir, SOURCE_LIMITS).map_err(|e| match e {
            UnpackError::ZippedTooLarge { .. } | UnpackError::TooManyEntries { .. } => {
                format!("the source is too large: {e}")
            }
            other => format!("the source archive is not valid: {other}"),
        })?;
        // The Python buildpack's check (GoogleCloudPlatform/buildpacks, python functions
        // framework): the function is in main.py unless GOOGLE_FUNCTION_SOURCE says otherwise
        // (UNCONFIRMED wording).
        if !dir.join("main.py").is_file() {
            return Err("missing main.py and GOOGLE_FUNCTION_SOURCE not specified. Either create the function in \
                        main.py or specify GOOGLE_FUNCTION_SOURCE to point to the file that contains the function"
                .to_string());
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("the build crashed: {e}"))?
}

/// A launcher standing in for the Functions Framework when none is installed: it imports
/// `main.py` as the framework would (a `main.py` that `os.execv`s a bundled server never
/// returns), then says what is missing.
const LAUNCHER: &str = r#"
import importlib.util, os, sys
sys.path.insert(0, os.getcwd())
spec = importlib.util.spec_from_file_location("main", os.path.join(os.getcwd(), "main.py"))
module = importlib.util.module_from_spec(spec)
sys.modules["main"] = module
spec.loader.exec_module(module)
target = os.environ.get("FUNCTION_TARGET", "function")
if not hasattr(module, target) and not hasattr(module, "function"):
    sys.stderr.write("MissingTargetException: File %s is expected to contain a function named '%s'\n" % (os.path.join(os.getcwd(), "main.py"), target))
    sys.exit(1)
sys.stderr.write("main.py was imported, but the Functions Framework (PyPI functions-framework) is not installed, so nothing serves the function: install it (pip install functions-framework) or pass its functions-framework executable to the emulator (--functions-framework PATH)\n")
sys.exit(1)
"#;

fn instance_spec(shared: &Shared, job: &Job, dir: &Path) -> ProcessSpec {
    let signature = if job.checked.event { "cloudevent" } else { "http" };
    let spec = match &shared.framework {
        Some(framework) => ProcessSpec::new(framework)
            .args(["--target", &job.checked.entry_point, "--signature-type", signature, "--source", "main.py"])
            .args(["--host", "127.0.0.1"]),
        None => ProcessSpec::new("python3").args(["-c", LAUNCHER]),
    };
    spec.current_dir(dir)
        .inherit_base()
        .envs(job.checked.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("FUNCTION_TARGET", &job.checked.entry_point)
        .env("FUNCTION_SIGNATURE_TYPE", signature)
        .env("K_SERVICE", &job.id)
        .env("K_REVISION", &job.revision)
        .env("K_CONFIGURATION", &job.id)
        .env("LOG_EXECUTION_ID", "true")
        .env("PYTHONUNBUFFERED", "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknown_fields() {
        assert_eq!(camel("build_config"), "buildConfig");
        assert_eq!(snake("buildConfig"), "build_config");
        let mut f = json!({"build_config": {"entry_point": "x", "runtime": "python312"}, "labels": {"a_b": "c"}});
        normalize(&mut f, FUNCTION, "function").unwrap();
        assert_eq!(f, json!({"buildConfig": {"entryPoint": "x", "runtime": "python312"}, "labels": {"a_b": "c"}}));
        let mut bad = json!({"buildConfig": {"runtim": "python312"}});
        let e = normalize(&mut bad, FUNCTION, "function").unwrap_err();
        assert!(e.message.contains("Unknown name \"runtim\" at 'function.build_config'"), "{}", e.message);
    }

    #[test]
    fn masks_apply_paths() {
        let mut target =
            json!({"serviceConfig": {"timeoutSeconds": 60, "availableMemory": "256M"}, "labels": {"a": "b"}});
        let source = json!({"serviceConfig": {"timeoutSeconds": 5}});
        apply_path(&mut target, &source, &["serviceConfig".into(), "timeoutSeconds".into()]).unwrap();
        apply_path(&mut target, &source, &["labels".into()]).unwrap();
        assert_eq!(target, json!({"serviceConfig": {"timeoutSeconds": 5, "availableMemory": "256M"}}));
        assert!(reserved("PORT") && reserved("K_REVISION") && !reserved("PORTS"));
    }
}
