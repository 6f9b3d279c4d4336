//! The JSON mapping details of the v2 API: enums as names or numbers (the proto's numbers,
//! googleapis google/cloud/functions/v2/functions.proto), timestamps, resource names, and the
//! small parsers of field values.

use serde_json::Value;

/// One proto enum: its value names, indexed by number (gaps as `""`).
type Enum = &'static [&'static str];

const FUNCTION_STATE: Enum = &["STATE_UNSPECIFIED", "ACTIVE", "FAILED", "DEPLOYING", "DELETING", "UNKNOWN"];
const ENVIRONMENT: Enum = &["ENVIRONMENT_UNSPECIFIED", "GEN_1", "GEN_2"];
const DOCKER_REGISTRY: Enum = &["DOCKER_REGISTRY_UNSPECIFIED", "CONTAINER_REGISTRY", "ARTIFACT_REGISTRY"];
const INGRESS: Enum = &["INGRESS_SETTINGS_UNSPECIFIED", "ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"];
const EGRESS: Enum = &["VPC_CONNECTOR_EGRESS_SETTINGS_UNSPECIFIED", "PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"];
const SECURITY_LEVEL: Enum = &["SECURITY_LEVEL_UNSPECIFIED", "SECURE_ALWAYS", "SECURE_OPTIONAL"];
const RETRY_POLICY: Enum = &["RETRY_POLICY_UNSPECIFIED", "RETRY_POLICY_DO_NOT_RETRY", "RETRY_POLICY_RETRY"];
const SEVERITY: Enum = &["SEVERITY_UNSPECIFIED", "ERROR", "WARNING", "INFO"];
const STAGE_NAME: Enum =
    &["NAME_UNSPECIFIED", "ARTIFACT_REGISTRY", "BUILD", "SERVICE", "TRIGGER", "SERVICE_ROLLBACK", "TRIGGER_ROLLBACK"];
const STAGE_STATE: Enum = &["STATE_UNSPECIFIED", "NOT_STARTED", "IN_PROGRESS", "COMPLETE"];
const OPERATION_TYPE: Enum = &["OPERATIONTYPE_UNSPECIFIED", "CREATE_FUNCTION", "UPDATE_FUNCTION", "DELETE_FUNCTION"];
const RUNTIME_STAGE: Enum =
    &["RUNTIME_STAGE_UNSPECIFIED", "DEVELOPMENT", "ALPHA", "BETA", "GA", "DEPRECATED", "DECOMMISSIONED"];

/// Where the enums of a `Function` are (`*`: every element of an array).
const FUNCTION_ENUMS: &[(&[&str], Enum)] = &[
    (&["state"], FUNCTION_STATE),
    (&["environment"], ENVIRONMENT),
    (&["buildConfig", "dockerRegistry"], DOCKER_REGISTRY),
    (&["serviceConfig", "ingressSettings"], INGRESS),
    (&["serviceConfig", "vpcConnectorEgressSettings"], EGRESS),
    (&["serviceConfig", "securityLevel"], SECURITY_LEVEL),
    (&["eventTrigger", "retryPolicy"], RETRY_POLICY),
    (&["stateMessages", "*", "severity"], SEVERITY),
];

/// Where the enums of an `OperationMetadata` are (its `requestResource` is a `Function`).
const METADATA_ENUMS: &[(&[&str], Enum)] = &[
    (&["stages", "*", "name"], STAGE_NAME),
    (&["stages", "*", "state"], STAGE_STATE),
    (&["stages", "*", "stateMessages", "*", "severity"], SEVERITY),
    (&["operationType"], OPERATION_TYPE),
];

/// Where the enums of a `ListRuntimesResponse` are.
const RUNTIMES_ENUMS: &[(&[&str], Enum)] =
    &[(&["runtimes", "*", "stage"], RUNTIME_STAGE), (&["runtimes", "*", "environment"], ENVIRONMENT)];

/// Which message a JSON value is, for its enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    Function,
    OperationMetadata,
    ListRuntimes,
}

/// An enum field whose value is neither a known name nor a known number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEnum {
    pub field: String,
    pub value: String,
}

fn table(message: Message) -> &'static [(&'static [&'static str], Enum)] {
    match message {
        Message::Function => FUNCTION_ENUMS,
        Message::OperationMetadata => METADATA_ENUMS,
        Message::ListRuntimes => RUNTIMES_ENUMS,
    }
}

/// Rewrites the enums of `value` (a `message`) as numbers (`to_int`) or as names. Fails on a
/// value that is neither (on input: 400 naming the field).
pub(crate) fn map_enums(value: &mut Value, message: Message, to_int: bool) -> Result<(), BadEnum> {
    for (path, names) in table(message) {
        walk(value, path, &mut |v, field| convert(v, names, to_int, field), &mut String::new())?;
    }
    if message == Message::OperationMetadata {
        if let Some(resource) = value.get_mut("requestResource") {
            map_enums(resource, Message::Function, to_int)?;
        }
    }
    Ok(())
}

fn walk(
    value: &mut Value,
    path: &[&str],
    f: &mut dyn FnMut(&mut Value, &str) -> Result<(), BadEnum>,
    at: &mut String,
) -> Result<(), BadEnum> {
    let Some((first, rest)) = path.split_first() else {
        return f(value, at);
    };
    let mark = at.len();
    if *first == "*" {
        if let Value::Array(items) = value {
            for (i, item) in items.iter_mut().enumerate() {
                at.push_str(&format!("[{i}]"));
                walk(item, rest, f, at)?;
                at.truncate(mark);
            }
        }
        return Ok(());
    }
    if let Some(next) = value.get_mut(*first) {
        if !at.is_empty() {
            at.push('.');
        }
        at.push_str(first);
        walk(next, rest, f, at)?;
        at.truncate(mark);
    }
    Ok(())
}

fn convert(value: &mut Value, names: Enum, to_int: bool, field: &str) -> Result<(), BadEnum> {
    let index = match &*value {
        Value::Null => return Ok(()),
        Value::String(s) => names.iter().position(|n| n == s),
        Value::Number(n) => n.as_u64().map(|n| n as usize).filter(|n| *n < names.len()),
        _ => None,
    };
    let Some(index) = index else {
        return Err(BadEnum { field: field.to_string(), value: value.to_string() });
    };
    *value = if to_int { Value::from(index as u64) } else { Value::from(names[index]) };
    Ok(())
}

/// The time now as the JSON mapping of `google.protobuf.Timestamp` writes it (RFC 3339, UTC,
/// nanoseconds).
pub(crate) fn now() -> String {
    timestamp(chrono::Utc::now())
}

/// A time as a `Timestamp` string.
pub(crate) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Why a function id is refused, or `None`. The rule is PROTOCOLS.md §3.6's (4 to 63
/// characters, lowercase letters, digits and hyphens, starting with a letter); that it may not
/// end with a hyphen is Cloud Run's rule for service names, which a 2nd gen function is
/// (UNCONFIRMED for the Cloud Functions API itself, as are the exact bounds).
pub(crate) fn check_function_id(id: &str) -> Option<String> {
    let ok = (4..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!ok).then(|| {
        format!(
            "Invalid function_id '{id}': a function id must be 4 to 63 characters long, contain only lowercase \
             letters, digits and hyphens, start with a letter and not end with a hyphen"
        )
    })
}

/// Bytes of a Kubernetes-style quantity as `availableMemory` takes them: `256M`, `1G`,
/// `512Mi`, `2Gi`, `128k`, or plain bytes. As Cloud Functions reads them, `M` and `G` are
/// taken as binary units (`256M` is 256 MiB).
pub(crate) fn parse_memory(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" | "Ki" => 1 << 10,
        "M" | "Mi" => 1 << 20,
        "G" | "Gi" => 1 << 30,
        _ => return None,
    };
    let bytes = number * factor as f64;
    (bytes >= 1.0).then_some(bytes as u64)
}

/// The value of a query parameter, percent-decoded.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Whether the caller asked for enums as numbers (`$alt=json;enum-encoding=int`, what the Google
/// Cloud client libraries send).
pub(crate) fn wants_int_enums(query: Option<&str>) -> bool {
    query_param(query, "$alt").is_some_and(|alt| alt.split(';').any(|p| p.trim() == "enum-encoding=int"))
}

/// Three lowercase letters, as Cloud Run ends revision names with.
pub(crate) fn revision_suffix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..3].iter().map(|b| (b'a' + b % 26) as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_go_both_ways() {
        let mut f = json!({"state": "ACTIVE", "serviceConfig": {"ingressSettings": 1},
            "eventTrigger": {"retryPolicy": "RETRY_POLICY_RETRY"}, "stateMessages": [{"severity": "INFO"}]});
        map_enums(&mut f, Message::Function, true).unwrap();
        assert_eq!(f["state"], 1);
        assert_eq!(f["eventTrigger"]["retryPolicy"], 2);
        assert_eq!(f["stateMessages"][0]["severity"], 3);
        map_enums(&mut f, Message::Function, false).unwrap();
        assert_eq!(f["serviceConfig"]["ingressSettings"], "ALLOW_ALL");
        let mut bad = json!({"serviceConfig": {"ingressSettings": "EVERYONE"}});
        let e = map_enums(&mut bad, Message::Function, false).unwrap_err();
        assert_eq!(e.field, "serviceConfig.ingressSettings");
        let mut m =
            json!({"stages": [{"name": "BUILD", "state": "COMPLETE"}], "requestResource": {"state": "DEPLOYING"}});
        map_enums(&mut m, Message::OperationMetadata, true).unwrap();
        assert_eq!(m, json!({"stages": [{"name": 2, "state": 3}], "requestResource": {"state": 3}}));
    }

    #[test]
    fn ids_memory_and_queries() {
        assert!(check_function_id("hello-world").is_none());
        for bad in ["Hello", "abc", "1abc", "abcd-", "ab_cd", &"a".repeat(64)] {
            assert!(check_function_id(bad).is_some(), "{bad}");
        }
        assert_eq!(parse_memory("256M"), Some(256 << 20));
        assert_eq!(parse_memory("1Gi"), Some(1 << 30));
        assert_eq!(parse_memory("lots"), None);
        assert!(wants_int_enums(Some("%24alt=json%3Benum-encoding%3Dint")));
        assert!(wants_int_enums(Some("$alt=json;enum-encoding=int")));
        assert!(!wants_int_enums(Some("$alt=json")));
        assert_eq!(revision_suffix().len(), 3);
    }
}
