//! The function registry: each function's configuration, its unpacked code and its pool of execution
//! environments, plus the JSON shapes (`FunctionConfiguration`) and validation of CreateFunction /
//! UpdateFunctionConfiguration input.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

use faas_supervisor::{Pool, PoolConfig, WhenBusy};

use crate::code::Unpacked;
use crate::environment::Environment;
use crate::exceptions::LambdaException;
use crate::EmulatorOptions;

/// Runtimes this emulator runs: OS-only runtimes whose code is a `bootstrap` executable.
pub(crate) const RUNTIMES: [&str; 2] = ["provided.al2023", "provided.al2"];
/// Lambda's cap on the total size of a function's environment variables (keys + values).
const MAX_ENV_BYTES: usize = 4 * 1024;
/// Environment variables Lambda reserves; setting them in `Environment.Variables` is refused.
const RESERVED_ENV: [&str; 17] = [
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
];

/// The settable part of a function's configuration.
#[derive(Debug, Clone)]
pub(crate) struct FunctionConfig {
    pub name: String,
    pub role: String,
    pub runtime: String,
    pub handler: String,
    pub description: String,
    pub timeout: u64,
    pub memory: u64,
    pub environment: BTreeMap<String, String>,
    pub architectures: Vec<String>,
    pub last_modified: String,
    pub revision_id: String,
}

/// One function: configuration, code and environments, behind one lock.
#[derive(Debug)]
pub(crate) struct Function {
    pub state: Mutex<FunctionState>,
}

/// The mutable state of a [`Function`].
#[derive(Debug)]
pub(crate) struct FunctionState {
    pub config: FunctionConfig,
    pub code: Unpacked,
    /// The function's execution environments: warm ones are reused; at most `max_environments` run at
    /// once (an invocation beyond is refused, as Lambda throttles); idle ones expire after `idle_timeout`.
    pub environments: Arc<Pool<Environment>>,
    pub deleted: bool,
}

impl FunctionState {
    /// A function's state with no environment yet.
    pub fn new(config: FunctionConfig, code: Unpacked, options: &EmulatorOptions) -> FunctionState {
        let pool = PoolConfig::new(options.max_environments, WhenBusy::Reject).idle_timeout(options.idle_timeout);
        FunctionState { config, code, environments: Pool::new(pool), deleted: false }
    }

    /// Retires every idle environment (after a change, or for good once deleted); busy ones retire when
    /// they finish, and later invocations get environments with the new code and configuration.
    pub fn retire_idle(&mut self) {
        if self.deleted {
            self.environments.close();
        } else {
            self.environments.retire_idle();
        }
    }
}

/// `LastModified` in Lambda's format, e.g. `2024-01-02T03:04:05.678+0000`.
pub(crate) fn now_last_modified() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// The function's ARN.
pub(crate) fn function_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

/// `FunctionConfiguration` JSON.
pub(crate) fn configuration_json(state: &FunctionState, region: &str, account: &str) -> Value {
    let c = &state.config;
    json!({
        "FunctionName": c.name,
        "FunctionArn": function_arn(region, account, &c.name),
        "Runtime": c.runtime,
        "Role": c.role,
        "Handler": c.handler,
        "CodeSize": state.code.code_size,
        "Description": c.description,
        "Timeout": c.timeout,
        "MemorySize": c.memory,
        "LastModified": c.last_modified,
        "CodeSha256": state.code.sha256,
        "Version": "$LATEST",
        "Environment": { "Variables": c.environment },
        "TracingConfig": { "Mode": "PassThrough" },
        "RevisionId": c.revision_id,
        // Code is unpacked before CreateFunction answers, so the function is Active at once.
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": c.architectures,
        "EphemeralStorage": { "Size": 512 },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": { "LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", c.name) },
    })
}

/// `Environment` member of CreateFunction / UpdateFunctionConfiguration.
#[derive(Debug, Deserialize)]
pub(crate) struct EnvironmentInput {
    #[serde(rename = "Variables", default)]
    pub variables: Option<BTreeMap<String, String>>,
}

/// `Code` member of CreateFunction (and the body of UpdateFunctionCode).
#[derive(Debug, Deserialize, Default)]
pub(crate) struct CodeInput {
    #[serde(rename = "ZipFile")]
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "ImageUri")]
    pub image_uri: Option<String>,
}

/// The configuration members CreateFunction and UpdateFunctionConfiguration share.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ConfigInput {
    pub role: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<EnvironmentInput>,
}

/// A [`ConfigInput`] whose present members are all valid.
#[derive(Debug)]
pub(crate) struct ValidConfig {
    pub role: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<u64>,
    pub memory: Option<u64>,
    pub environment: Option<BTreeMap<String, String>>,
}

impl ConfigInput {
    /// Checks every member that is present, so a request is refused before anything changes.
    pub fn validate(self) -> Result<ValidConfig, LambdaException> {
        if let Some(role) = &self.role {
            validate_role(role)?;
        }
        if let Some(runtime) = &self.runtime {
            validate_runtime(runtime)?;
        }
        if let Some(handler) = &self.handler {
            validate_handler(handler)?;
        }
        let timeout = self.timeout.map(validate_timeout).transpose()?;
        let memory = self.memory_size.map(validate_memory).transpose()?;
        let environment = self.environment.map(|e| e.variables.unwrap_or_default());
        if let Some(vars) = &environment {
            validate_environment(vars)?;
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 256) {
            return Err(LambdaException::invalid_parameter("Description must be at most 256 characters"));
        }
        Ok(ValidConfig {
            role: self.role,
            runtime: self.runtime,
            handler: self.handler,
            description: self.description,
            timeout,
            memory,
            environment,
        })
    }
}

/// CreateFunction request body (the members this emulator honours; others are accepted and ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateInput {
    pub function_name: Option<String>,
    #[serde(flatten)]
    pub config: ConfigInput,
    pub code: Option<CodeInput>,
    pub package_type: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// UpdateFunctionConfiguration request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateConfigInput {
    #[serde(flatten)]
    pub config: ConfigInput,
    pub revision_id: Option<String>,
}

/// UpdateFunctionCode request body.
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateCodeInput {
    #[serde(rename = "ZipFile")]
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "ImageUri")]
    pub image_uri: Option<String>,
    #[serde(rename = "RevisionId")]
    pub revision_id: Option<String>,
    #[serde(rename = "Architectures")]
    pub architectures: Option<Vec<String>>,
}

/// Checks a bare function name: 1..=64 of `[A-Za-z0-9-_]`.
pub(crate) fn validate_name(name: &str) -> Result<(), LambdaException> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LambdaException::validation(format!(
            "1 validation error detected: Value '{}' at 'functionName' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: [a-zA-Z0-9-_]+ and have length between 1 and 64",
            truncate(name, 100)
        )))
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Checks an IAM role ARN: `arn:aws[-partition]:iam::<12 digits>:role/<path/name>`.
pub(crate) fn validate_role(role: &str) -> Result<(), LambdaException> {
    let bad = || {
        LambdaException::validation(format!(
            "1 validation error detected: Value '{}' at 'role' failed to satisfy constraint: Member must satisfy \
             regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{{12}}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
            truncate(role, 200)
        ))
    };
    let parts: Vec<&str> = role.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "iam"
        || !parts[3].is_empty()
    {
        return Err(bad());
    }
    if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let Some(rest) = parts[5].strip_prefix("role") else { return Err(bad()) };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b);
    if rest.is_empty() || !rest.bytes().all(allowed) || role.len() > 2048 {
        return Err(bad());
    }
    Ok(())
}

/// Checks a runtime identifier.
pub(crate) fn validate_runtime(runtime: &str) -> Result<(), LambdaException> {
    if RUNTIMES.contains(&runtime) {
        Ok(())
    } else {
        Err(LambdaException::invalid_parameter(format!(
            "The runtime parameter of {runtime} is not supported by this emulator; use one of: {}",
            RUNTIMES.join(", ")
        )))
    }
}

/// Checks a handler: 1..=128 non-whitespace characters.
pub(crate) fn validate_handler(handler: &str) -> Result<(), LambdaException> {
    if handler.is_empty() || handler.len() > 128 || handler.chars().any(char::is_whitespace) {
        return Err(LambdaException::validation(format!(
            "1 validation error detected: Value '{}' at 'handler' failed to satisfy constraint: Member must satisfy \
             regular expression pattern: [^\\s]+ and have length between 1 and 128",
            truncate(handler, 200)
        )));
    }
    Ok(())
}

/// Checks a timeout in seconds (1..=900).
pub(crate) fn validate_timeout(timeout: i64) -> Result<u64, LambdaException> {
    if (1..=900).contains(&timeout) {
        Ok(timeout as u64)
    } else {
        Err(LambdaException::invalid_parameter(format!("Timeout must be between 1 and 900 seconds; got {timeout}")))
    }
}

/// Checks a memory size in MB (128..=10240).
pub(crate) fn validate_memory(memory: i64) -> Result<u64, LambdaException> {
    if (128..=10240).contains(&memory) {
        Ok(memory as u64)
    } else {
        Err(LambdaException::invalid_parameter(format!("MemorySize must be between 128 and 10240 MB; got {memory}")))
    }
}

/// Checks `Environment.Variables`: key shape, reserved keys, 4 KB total.
pub(crate) fn validate_environment(vars: &BTreeMap<String, String>) -> Result<(), LambdaException> {
    let reserved: Vec<&str> = vars.keys().map(String::as_str).filter(|k| RESERVED_ENV.contains(k)).collect();
    if !reserved.is_empty() {
        return Err(LambdaException::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have \
             provided contains reserved keys that are currently not supported for modification. Reserved keys used \
             in this request: {}",
            reserved.join(", ")
        )));
    }
    for key in vars.keys() {
        let mut bytes = key.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(LambdaException::validation(format!(
                "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys \
                 must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]; \
                 offending key: '{}'",
                truncate(key, 100)
            )));
        }
    }
    let total: usize = vars.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ENV_BYTES {
        return Err(LambdaException::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have \
             provided exceeded the 4KB limit. String measured: {total} bytes"
        )));
    }
    Ok(())
}

/// Checks `Architectures` (one of `x86_64`, `arm64`).
pub(crate) fn validate_architectures(archs: &[String]) -> Result<(), LambdaException> {
    if archs.len() != 1 || !["x86_64", "arm64"].contains(&archs[0].as_str()) {
        return Err(LambdaException::invalid_parameter(format!(
            "Architectures must be exactly one of x86_64, arm64; got {archs:?}"
        )));
    }
    Ok(())
}

/// How a caller named a function in a path: bare name, `name:qualifier`, a full ARN or a partial ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionRef {
    pub name: String,
    pub qualifier: Option<String>,
}

/// Parses the `{FunctionName}` path segment.
pub(crate) fn parse_function_ref(raw: &str, region: &str, account: &str) -> Result<FunctionRef, LambdaException> {
    let parts: Vec<&str> = raw.split(':').collect();
    let bad = || {
        LambdaException::validation(format!(
            "1 validation error detected: Value '{}' at 'functionName' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
            truncate(raw, 200)
        ))
    };
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [acct, "function", name] => {
            check_account(acct, account)?;
            (*name, None)
        }
        [acct, "function", name, q] => {
            check_account(acct, account)?;
            (*name, Some(*q))
        }
        ["arn", partition, "lambda", reg, acct, "function", name, rest @ ..] if partition.starts_with("aws") => {
            if *reg != region {
                return Err(LambdaException::not_found(format!(
                    "Functions from '{reg}' are not reachable in this region ('{region}')"
                )));
            }
            check_account(acct, account)?;
            match rest {
                [] => (*name, None),
                [q] => (*name, Some(*q)),
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad());
    }
    Ok(FunctionRef { name: name.to_string(), qualifier: qualifier.map(str::to_string) })
}

fn check_account(given: &str, account: &str) -> Result<(), LambdaException> {
    if given == account {
        Ok(())
    } else {
        Err(LambdaException::not_found(format!("Function not found in account {given}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_refs() {
        let r = |s| parse_function_ref(s, "us-east-1", "123456789012");
        assert_eq!(r("f").unwrap(), FunctionRef { name: "f".into(), qualifier: None });
        assert_eq!(r("f:$LATEST").unwrap().qualifier.as_deref(), Some("$LATEST"));
        assert_eq!(r("123456789012:function:f").unwrap().name, "f");
        assert_eq!(
            r("arn:aws:lambda:us-east-1:123456789012:function:f:prod").unwrap().qualifier.as_deref(),
            Some("prod")
        );
        assert_eq!(r("arn:aws:lambda:eu-west-1:123456789012:function:f").unwrap_err().status, 404);
        assert_eq!(r("bad name").unwrap_err().status, 400);
        assert_eq!(r(&"x".repeat(65)).unwrap_err().status, 400);
    }

    #[test]
    fn roles_and_env() {
        assert!(validate_role("arn:aws:iam::123456789012:role/lambda-role").is_ok());
        assert!(validate_role("arn:aws:iam::123456789012:role/service-role/x").is_ok());
        assert!(validate_role("not-a-role").is_err());
        assert!(validate_role("arn:aws:iam::12345:role/x").is_err());
        let mut vars = BTreeMap::new();
        vars.insert("GREETING".to_string(), "hi".to_string());
        assert!(validate_environment(&vars).is_ok());
        vars.insert("AWS_REGION".to_string(), "x".to_string());
        assert!(validate_environment(&vars).unwrap_err().message.contains("AWS_REGION"));
        let mut big = BTreeMap::new();
        big.insert("BIG".to_string(), "x".repeat(5000));
        assert!(validate_environment(&big).unwrap_err().message.contains("4KB"));
        assert!(validate_runtime("nodejs20.x").unwrap_err().message.contains("nodejs20.x"));
    }
}
