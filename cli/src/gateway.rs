//! `faas gateway`: runs the CloudEvents gateway (crate `faas-gateway`) for the project: the
//! `[gateway]` section of faas.toml, overridden by flags, with function sinks reaching the
//! project's backend profiles through this build's runner registry.

use std::path::PathBuf;

use faas_api::Error;
use faas_gateway::config::{GatewayConfig, Overrides, StoreKind};
use serde_json::{json, Value};

use crate::args::{GatewayArgs, GlobalArgs};
use crate::output::{CliResult, Failure, Output};
use crate::project;

/// Where `faas gateway` records its URL and management token for other tools (owner-only file).
pub fn gateway_info_path(root: &std::path::Path) -> PathBuf {
    root.join(".faas").join("gateway.json")
}

/// Applies the command-line flags to the configuration.
///
/// ```
/// use faas_cli::args::GatewayArgs;
/// let mut c = faas_gateway::config::GatewayConfig::default();
/// let args = GatewayArgs { port: Some(0), data_dir: None, store: Some("nats".into()), nats_url: Some("nats://127.0.0.1:4222".into()) };
/// faas_cli::gateway::apply_flags(&mut c, &args).unwrap();
/// assert_eq!((c.port, c.store), (0, faas_gateway::config::StoreKind::Nats));
/// let bad = GatewayArgs { port: None, data_dir: None, store: Some("redis".into()), nats_url: None };
/// assert!(faas_cli::gateway::apply_flags(&mut c, &bad).unwrap_err().message().contains("`redis`"));
/// ```
pub fn apply_flags(config: &mut GatewayConfig, args: &GatewayArgs) -> Result<(), Error> {
    config
        .apply(&Overrides {
            port: args.port,
            data_dir: args.data_dir.clone(),
            store: args.store.clone(),
            nats_url: args.nats_url.clone(),
        })
        .map_err(Error::bad_input)
}

/// `faas gateway`.
pub async fn gateway(global: &GlobalArgs, args: GatewayArgs, out: Output) -> CliResult {
    let project = project::load(&global.dir)?;
    let mut config = match &project.config.path {
        Some(path) => GatewayConfig::from_file(path)?,
        // No faas.toml: the defaults, through the same parser, so that `FAAS_GATEWAY_TOKEN` applies as
        // it does with one.
        None => GatewayConfig {
            data_dir: project.root.join(".faas").join("gateway"),
            ..GatewayConfig::parse("", faas_api::config::FILE_NAME)?
        },
    };
    apply_flags(&mut config, &args)?;
    if config.data_dir.is_relative() {
        config.data_dir = std::env::current_dir().unwrap_or_default().join(&config.data_dir);
    }
    // Management needs a token: without one configured (`token` in [gateway], or
    // `FAAS_GATEWAY_TOKEN`), make one for this run and hand it over in an owner-only file, as
    // `faas dev` does (it is never printed).
    if config.token.is_none() {
        config.token = Some(uuid::Uuid::new_v4().simple().to_string());
    }
    let token = config.token.clone().unwrap_or_default();
    let store = match config.store {
        StoreKind::Embedded => format!("embedded log in {}", config.data_dir.display()),
        StoreKind::Nats => format!("NATS JetStream at {}", config.nats_url.as_deref().unwrap_or("?")),
    };
    let backends = project.config.backends.clone();
    let options =
        faas_gateway::GatewayOptions { config, backends, runners: crate::backend::registry(&project.root), bind: None };
    let running = faas_gateway::start(options)
        .await
        .map_err(|e| Failure::from(Error::unavailable(format!("the gateway could not start: {e}"))))?;
    // Caught from before the announcement: a SIGTERM right after it still stops gracefully.
    let stop = faas_gateway::server::stop_signal();
    let url = format!("http://{}", running.addr());
    let info_path = gateway_info_path(&project.root);
    project::write_private_json(&info_path, &json!({ "url": url, "token": token, "pid": std::process::id() }))?;
    out.json_line(json!({ "event": "listening", "url": url, "store": store, "info": info_path }));
    out.say(format!("faas gateway listening on {url}"));
    out.say(format!("  store: {store}"));
    out.say(format!("  ingress: POST {url}/ (CloudEvents: binary, structured or batch)"));
    out.say(format!("  management: {url}/subscriptions, {url}/functions (OpenAPI: {url}/openapi.json)"));
    out.say(format!("  metrics: {url}/metrics"));
    out.say(format!("management token: in {}", info_path.display()));
    out.say("Ctrl-C to stop");
    running.wait_until(stop).await;
    if std::fs::read_to_string(&info_path).is_ok_and(|t| t.contains(&format!("\"pid\": {}", std::process::id()))) {
        let _ = std::fs::remove_file(&info_path);
    }
    out.json_line(json!({ "event": "stopped" }));
    Ok(())
}

/// A client of the project's running gateway (its management and runs API): the URL and token
/// from `FAAS_GATEWAY_URL` and `FAAS_GATEWAY_TOKEN` when set, else from the `.faas/gateway.json`
/// that `faas gateway` writes.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    /// The gateway's base URL (`http://127.0.0.1:8090`).
    pub url: String,
    token: String,
    http: reqwest::Client,
}

/// Longest a request to the gateway may take (a `wait` of the runs API adds to it).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl GatewayClient {
    /// The gateway of the project at `root`, or `None` when none is configured or recorded.
    pub fn find(root: &std::path::Path) -> CliResult<Option<GatewayClient>> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (url, token) = match (env("FAAS_GATEWAY_URL"), env("FAAS_GATEWAY_TOKEN")) {
            (Some(url), Some(token)) => (url, token),
            (Some(_), None) => {
                return Err(Error::bad_input("FAAS_GATEWAY_URL is set without FAAS_GATEWAY_TOKEN").into());
            }
            _ => {
                let path = gateway_info_path(root);
                let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
                let info: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| Error::bad_input(format!("{} is not readable: {e}", path.display())))?;
                match (info["url"].as_str(), info["token"].as_str()) {
                    (Some(url), Some(token)) => (url.to_string(), token.to_string()),
                    _ => return Err(Error::bad_input(format!("{} has no `url` and `token`", path.display())).into()),
                }
            }
        };
        let url = url.trim_end_matches('/').to_string();
        if !url.starts_with("http://") {
            return Err(Error::bad_input(format!("the gateway URL `{url}` is not an http:// URL")).into());
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT + std::time::Duration::from_secs(faas_gateway::runs::MAX_WAIT_SECONDS))
            .build()
            .map_err(|e| Error::unavailable(format!("cannot make an HTTP client: {e}")))?;
        Ok(Some(GatewayClient { url, token, http }))
    }

    /// The state service of `app` on this gateway, with the app's own token (derived from the
    /// management token, as `faas deploy` gives it to the app's functions).
    pub fn state_of(&self, app: &str) -> faas_host::state::HttpState {
        faas_host::state::HttpState::new(
            format!("{}{}/{app}", self.url, faas_gateway::state::PREFIX),
            faas_api::state::app_token(&self.token, app),
        )
    }

    /// [`GatewayClient::find`], or an error saying how to start one.
    pub fn connect(root: &std::path::Path) -> CliResult<GatewayClient> {
        GatewayClient::find(root)?.ok_or_else(|| {
            Failure::from(Error::not_found(format!(
                "no gateway is running for this project ({} does not exist)",
                gateway_info_path(root).display()
            )))
            .with_hint("start one with `faas gateway`, or set FAAS_GATEWAY_URL and FAAS_GATEWAY_TOKEN")
        })
    }

    /// Sends one request; returns the status and the JSON body (`null` when empty). A gateway that
    /// does not answer is `backend_unavailable`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> CliResult<(u16, serde_json::Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            Failure::from(Error::unavailable(format!("the gateway at {} did not answer: {e}", self.url)))
                .with_hint("is `faas gateway` still running? Start it again, or remove a stale .faas/gateway.json")
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::unavailable(format!("the gateway at {} broke off its answer: {e}", self.url)))?;
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    /// [`GatewayClient::send`], with any status but 2xx turned into the error the gateway named.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> CliResult<(u16, serde_json::Value)> {
        let (status, value) = self.send(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        Err(api_error(status, &value).into())
    }
}

/// The portable error of a gateway error answer (`{"error": ..., "field": ...}`).
///
/// ```
/// let e = faas_cli::gateway::api_error(404, &serde_json::json!({"error": "no run `x`"}));
/// assert_eq!((e.kind(), e.message()), (faas_api::ErrorKind::NotFound, "no run `x`"));
/// let e = faas_cli::gateway::api_error(400, &serde_json::json!({"error": "is required", "field": "name"}));
/// assert_eq!(e.message(), "name: is required");
/// ```
pub fn api_error(status: u16, body: &serde_json::Value) -> Error {
    let message =
        body["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("the gateway answered {status}: {body}"));
    let message = match body["field"].as_str() {
        Some(field) => format!("{field}: {message}"),
        None => message,
    };
    match status {
        400 | 422 => Error::bad_input(message),
        401 | 403 => Error::new(faas_api::ErrorKind::Unauthorized, message),
        404 => Error::not_found(message),
        409 => Error::bad_input(message).with_type("Conflict"),
        413 => Error::payload_too_large(message),
        _ => Error::unavailable(message),
    }
}

/// What `faas deploy` registered with the project's running gateway ([`register_app`]).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Registration {
    /// The gateway's URL.
    pub url: String,
    /// Functions routed to the deployed backend (created, updated or already so).
    pub functions: Vec<String>,
    /// Compositions registered for durable runs.
    pub compositions: Vec<String>,
    /// Functions left as `faas.toml` declares them (`[gateway.functions.NAME]`).
    pub declared: Vec<String>,
    /// What could not be registered, each naming why.
    pub problems: Vec<String>,
}

/// Registers a deployed app with the project's gateway, if one runs: each of its functions as a
/// function route to the `backend` profile it was deployed to (`function:NAME` sinks and
/// composition steps then reach it), then each composition for durable runs (`faas runs start`).
/// Returns `None` when no gateway is configured or recorded. Nothing here fails the deploy: what
/// could not be registered is listed in [`Registration::problems`].
pub async fn register_app(root: &std::path::Path, backend: &str, app: &faas_api::AppSpec) -> Option<Registration> {
    use reqwest::Method;
    let client = match GatewayClient::find(root) {
        Ok(Some(client)) => client,
        Ok(None) => return None,
        Err(f) => return Some(Registration { problems: vec![f.error.message().to_string()], ..Default::default() }),
    };
    let mut done = Registration { url: client.url.clone(), ..Default::default() };
    let route = |name: &str| json!({ "name": name, "backend": backend });
    for f in &app.manifest.functions {
        let name = f.name.as_str();
        let path = format!("/functions/{name}");
        let outcome = match client.send(Method::GET, &path, None).await {
            Err(f) => {
                // The gateway does not answer: nothing more can be registered.
                done.problems.push(f.error.message().to_string());
                return Some(done);
            }
            Ok((200, current)) if current["origin"] == "config" => {
                done.declared.push(name.to_string());
                continue;
            }
            Ok((200, current)) if current["backend"] == backend && current.get("target").is_none_or(Value::is_null) => {
                Ok((200, current))
            }
            Ok((200, _)) => client.call(Method::PUT, &path, Some(&route(name))).await,
            Ok((404, _)) => client.call(Method::POST, "/functions", Some(&route(name))).await,
            Ok((status, body)) => Err(api_error(status, &body).into()),
        };
        match outcome {
            Ok(_) => done.functions.push(name.to_string()),
            Err(failure) => done.problems.push(format!("function `{name}`: {}", failure.error.message())),
        }
    }
    for f in &app.manifest.functions {
        let Some(program) = &f.composition else { continue };
        match client.call(Method::PUT, &format!("/compositions/{}", f.name), Some(program)).await {
            Ok(_) => done.compositions.push(f.name.clone()),
            Err(failure) => done.problems.push(format!("composition `{}`: {}", f.name, failure.error.message())),
        }
    }
    Some(done)
}
