//! The commands that talk to a backend: invoke, deploy, remove, list, logs, activations.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use faas_api::{
    Activation, ActivationQuery, ActivationStatus, Error, FunctionInfo, InvokeMode, InvokeRequest, Payload, Progress,
    Trigger,
};
use serde_json::{json, Value};

use crate::args::{ActivationsArgs, BuildArgs, DeployArgs, GlobalArgs, InvokeArgs, LogsArgs, NameArgs};
use crate::backend;
use crate::output::{stdout_is_terminal, write_stdout, CliResult, Output};
use crate::progress::Spinner;
use crate::project;

/// `faas invoke NAME`: sends a request to the selected backend and prints the reply body (or,
/// with `--json`, a document with the activation id, the result and the logs).
pub async fn invoke(global: &GlobalArgs, args: InvokeArgs, out: Output) -> CliResult {
    faas_api::validate_function_name(&args.name)?;
    // A missing or unreadable --file is named before any backend is contacted.
    if let Some(path) = args.file.as_deref().filter(|p| *p != Path::new("-")) {
        check_request_file(path)?;
    }
    let project = project::load(&global.dir)?;
    let (profile, runner) = backend::open(&project, global.backend.as_deref()).await?;
    let mode = if args.run_async {
        InvokeMode::Async
    } else if args.dry_run {
        InvokeMode::DryRun
    } else {
        InvokeMode::Sync
    };
    let caps = runner.capabilities();
    let limit = if mode == InvokeMode::Async { caps.max_async_payload } else { caps.max_sync_payload };
    let payload = request_payload(&args, limit, &profile.name)?;
    let request = InvokeRequest {
        function: args.name.clone(),
        payload,
        mode,
        traceparent: std::env::var("TRACEPARENT").ok().filter(|t| !t.is_empty()),
        with_logs: args.logs,
        cause: None,
    };
    let invoked = runner.invoke(request).await.map_err(|e| backend::with_hint(&profile, e))?;
    match mode {
        InvokeMode::Async => {
            out.json_ok(json!({"function": args.name, "mode": "async", "activationId": invoked.activation_id}));
            out.say(format!("accepted: activation {}", invoked.activation_id));
            out.note(format!("follow it with `faas activations --function {}`", args.name));
        }
        InvokeMode::DryRun => {
            out.json_ok(json!({"function": args.name, "mode": "dry-run"}));
            out.say(format!("dry run: `{}` on `{}` would accept this request", args.name, profile.name));
        }
        InvokeMode::Sync => {
            if out.is_json() {
                let mut doc = json!({
                    "function": args.name,
                    "activationId": invoked.activation_id,
                    "contentType": invoked.payload.content_type(),
                });
                let (key, value) = result_value(&invoked.payload);
                doc[key] = value;
                if let Some(logs) = &invoked.logs {
                    doc["logs"] = json!(logs);
                }
                out.json_ok(doc);
            } else {
                if let Some(logs) = &invoked.logs {
                    eprintln!("── activation {} ──", invoked.activation_id);
                    for line in logs {
                        eprintln!("{line}");
                    }
                    eprintln!("──");
                }
                let body = invoked.payload.body();
                write_stdout(body);
                if stdout_is_terminal() && !body.is_empty() && !body.ends_with(b"\n") {
                    write_stdout(b"\n");
                }
            }
        }
    }
    Ok(())
}

/// The result of an invocation as JSON: `result` (parsed JSON), `resultText` (UTF-8) or
/// `resultBase64` (anything else).
///
/// ```
/// use faas_api::Payload;
/// let (key, v) = faas_cli::commands::result_value(&Payload::json(&serde_json::json!({"a": 1})).unwrap());
/// assert_eq!((key, v), ("result", serde_json::json!({"a": 1})));
/// let (key, _) = faas_cli::commands::result_value(&Payload::bytes(vec![0xff, 0x00]));
/// assert_eq!(key, "resultBase64");
/// ```
pub fn result_value(payload: &Payload) -> (&'static str, Value) {
    let body = payload.body();
    if payload.is_json_or_untyped() && !body.is_empty() {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            return ("result", v);
        }
    }
    match std::str::from_utf8(body) {
        Ok(text) => ("resultText", Value::String(text.to_string())),
        Err(_) => ("resultBase64", Value::String(base64::engine::general_purpose::STANDARD.encode(body))),
    }
}

/// The request body of `faas invoke`: `--data` (JSON unless `--content-type` says otherwise),
/// `--file` (JSON for `.json` files, else octet-stream; `-` reads stdin), or nothing. Bodies over
/// `limit` are refused before they are sent (or read, for files).
pub fn request_payload(args: &InvokeArgs, limit: usize, backend: &str) -> CliResult<Payload> {
    let too_large = |size: u64| {
        Error::payload_too_large(format!(
            "the request body is {size} bytes; the `{backend}` backend accepts at most {limit} bytes"
        ))
    };
    if let Some(data) = &args.data {
        if data.len() > limit {
            return Err(too_large(data.len() as u64).into());
        }
        let ct = args.content_type.clone().unwrap_or_else(|| faas_api::payload::JSON.to_string());
        return Ok(Payload::new(data.clone().into_bytes(), Some(ct)));
    }
    let Some(path) = &args.file else {
        return Ok(Payload::new(Vec::new(), args.content_type.clone()));
    };
    let mut body = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| Error::bad_input(format!("cannot read standard input: {e}")))?;
        if body.len() > limit {
            return Err(Error::payload_too_large(format!(
                "standard input is over the `{backend}` backend's limit of {limit} bytes"
            ))
            .into());
        }
    } else {
        let meta = check_request_file(path)?;
        if meta.len() > limit as u64 {
            return Err(too_large(meta.len()).into());
        }
        std::fs::File::open(path)
            .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut body))
            .map_err(|e| Error::bad_input(format!("cannot read {}: {e}", path.display())))?;
        if body.len() > limit {
            return Err(too_large(body.len() as u64).into());
        }
    }
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let ct = args
        .content_type
        .clone()
        .unwrap_or_else(|| if is_json { faas_api::payload::JSON } else { faas_api::payload::OCTET_STREAM }.to_string());
    Ok(Payload::new(body, Some(ct)))
}

/// The metadata of `--file PATH`, or an error naming why it cannot be sent.
fn check_request_file(path: &Path) -> CliResult<std::fs::Metadata> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::bad_input(format!("--file {}: cannot read it: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::bad_input(format!("--file {}: not a file", path.display())).into());
    }
    Ok(meta)
}

/// `faas deploy`: builds the project, then packages and deploys it through the selected backend.
pub async fn deploy(global: &GlobalArgs, args: DeployArgs, out: Output) -> CliResult {
    let project = project::load(&global.dir)?;
    let (profile, runner) = backend::open(&project, global.backend.as_deref()).await?;
    let spinner = Spinner::new(out.is_json());
    spinner.step("building");
    let mut app = backend::build_to_deploy(&project, &profile, args.release, &spinner).await?;
    if args.no_fuse {
        faas_composition::fused::unfuse(&mut app.functions);
    }
    runner.check(&app.functions).map_err(|e| backend::with_hint(&profile, e))?;
    check_compositions(&app, runner.as_ref()).await.map_err(|e| backend::with_hint(&profile, e))?;
    spinner.step("packaging");
    let package = runner.package(&app, &spinner).await.map_err(|e| backend::with_hint(&profile, e))?;
    spinner.step("deploying");
    let report = runner.deploy(&package, &spinner).await.map_err(|e| backend::with_hint(&profile, e))?;
    spinner.step("registering with the gateway");
    let gateway = crate::gateway::register_app(&project.root, &profile.name, &app).await;
    spinner.finish();
    out.json_ok(json!({
        "backend": profile.name,
        "kind": profile.kind,
        "app": app.app,
        "artifact": package.artifact,
        "size": package.size,
        "report": report,
        "gateway": gateway,
    }));
    out.say(format!("deployed `{}` to `{}` ({}), {} bytes", app.app, profile.name, profile.kind, package.size));
    for (what, names) in [("created", &report.created), ("updated", &report.updated), ("unchanged", &report.unchanged)]
    {
        if !names.is_empty() {
            out.say(format!("  {what:<9} {}", names.join(", ")));
        }
    }
    if let Some(g) = &gateway {
        if !g.url.is_empty() {
            out.say(format!(
                "registered with the gateway at {}: {} function(s), composition(s) {}",
                g.url,
                g.functions.len(),
                if g.compositions.is_empty() { "none".to_string() } else { g.compositions.join(", ") }
            ));
        }
        if !g.declared.is_empty() {
            out.say(format!("  as faas.toml declares them: {}", g.declared.join(", ")));
        }
        for problem in &g.problems {
            out.note(format!("warning: not registered with the gateway: {problem}"));
        }
    }
    Ok(())
}

/// Refuses an app whose compositions call a function that is neither one of the app's nor
/// deployed on the target backend, or call each other in a cycle, or whose `FAAS_FUSE` is
/// neither `on` nor `off`: found now, not at run time.
async fn check_compositions(app: &faas_api::AppSpec, runner: &dyn faas_api::Runner) -> Result<(), Error> {
    for spec in app.functions.iter().filter(|f| f.handler == faas_api::HandlerKind::Composition) {
        faas_composition::fused::fused(spec)?;
    }
    let mut problems = faas_composition::plan::problems(&app.manifest, |_| false);
    if problems.is_empty() {
        return Ok(());
    }
    // Some steps are other functions: those already deployed there are fine.
    let deployed: std::collections::BTreeSet<String> = runner.list().await?.into_iter().map(|f| f.spec.name).collect();
    problems = faas_composition::plan::problems(&app.manifest, |f| deployed.contains(f));
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::bad_input(format!("`{}` cannot be deployed: {}", app.app, problems.join("; "))))
}

/// `faas build`: builds the project for the selected backend and packages it as that backend
/// uploads it (for `lambda`, a reproducible zip holding `bootstrap`, and its `CodeSha256`); prints
/// where the artifact is.
pub async fn build(global: &GlobalArgs, args: BuildArgs, out: Output) -> CliResult {
    let project = project::load(&global.dir)?;
    let profile = backend::select(&project.config, global.backend.as_deref())?;
    let spinner = Spinner::new(out.is_json());
    let app = backend::build_for_profile(&project, &profile, args.arch.as_deref(), args.release, &spinner).await?;
    let backend = backend::list().for_profile(&profile)?;
    let faas_api::backend::Artifact { path: artifact, size, digest: code_sha256, runtime } =
        backend.artifact(&profile, &app, &spinner).await.map_err(|e| backend::with_hint(&profile, e))?;
    spinner.finish();
    let functions: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
    out.json_ok(json!({
        "backend": profile.name,
        "kind": profile.kind,
        "app": app.app,
        "artifact": artifact,
        "size": size,
        "codeSha256": code_sha256,
        "runtime": runtime,
        "functions": functions,
    }));
    out.say(format!(
        "built `{}` for `{}` ({}{}): {} ({size} bytes)",
        app.app,
        profile.name,
        profile.kind,
        runtime.as_deref().map(|r| format!(", runtime {r}")).unwrap_or_default(),
        artifact.display()
    ));
    out.say(format!("  functions: {}", functions.join(", ")));
    Ok(())
}

/// `faas remove NAME`.
pub async fn remove(global: &GlobalArgs, args: NameArgs, out: Output) -> CliResult {
    faas_api::validate_function_name(&args.name)?;
    let project = project::load(&global.dir)?;
    let (profile, runner) = backend::open(&project, global.backend.as_deref()).await?;
    runner.remove(&args.name).await.map_err(|e| backend::with_hint(&profile, e))?;
    out.json_ok(json!({"backend": profile.name, "removed": args.name}));
    out.say(format!("removed `{}` from `{}`", args.name, profile.name));
    Ok(())
}

/// `faas list`.
pub async fn list(global: &GlobalArgs, out: Output) -> CliResult {
    let project = project::load(&global.dir)?;
    let (profile, runner) = backend::open(&project, global.backend.as_deref()).await?;
    let mut functions = runner.list().await.map_err(|e| backend::with_hint(&profile, e))?;
    functions.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    out.json_ok(json!({"backend": profile.name, "kind": runner.kind(), "functions": functions}));
    if !out.is_json() {
        if functions.is_empty() {
            out.say(format!("no functions are deployed on `{}`", profile.name));
        } else {
            out.say(render_functions(&functions));
        }
    }
    Ok(())
}

/// The `faas list` table.
pub fn render_functions(functions: &[FunctionInfo]) -> String {
    let rows: Vec<Vec<String>> = functions
        .iter()
        .map(|f| {
            let triggers: Vec<String> = f
                .spec
                .triggers
                .iter()
                .map(|t| match t {
                    Trigger::Http { method, route } => format!("{} {route}", method.as_deref().unwrap_or("*")),
                    Trigger::Event { filter } => format!("event {}", filter.event_type.as_deref().unwrap_or("*")),
                })
                .collect();
            vec![
                f.spec.name.clone(),
                format!("{:?}", f.spec.handler).to_lowercase(),
                format!("{}s", f.spec.timeout.as_secs_f64()),
                format!("{} MB", f.spec.memory_mb),
                f.spec.concurrency.to_string(),
                f.state.clone(),
                triggers.join("; "),
            ]
        })
        .collect();
    table(&["NAME", "HANDLER", "TIMEOUT", "MEMORY", "CONCURRENCY", "STATE", "TRIGGERS"], &rows)
}

/// `faas logs NAME`: the log lines of the function's recent activations, oldest first.
pub async fn logs(global: &GlobalArgs, args: LogsArgs, out: Output) -> CliResult {
    faas_api::validate_function_name(&args.name)?;
    let project = project::load(&global.dir)?;
    let (profile, runner) = backend::open(&project, global.backend.as_deref()).await?;
    let query = ActivationQuery { function: Some(args.name.clone()), id: None, limit: Some(args.limit as usize) };
    let mut activations = runner.activations(query).await.map_err(|e| backend::with_hint(&profile, e))?;
    activations.reverse();
    if out.is_json() {
        let items: Vec<Value> = activations
            .iter()
            .map(|a| json!({"id": a.id, "start": time(a.start_ms), "startMs": a.start_ms, "status": status(a), "logs": a.logs}))
            .collect();
        out.json_ok(json!({"backend": profile.name, "function": args.name, "activations": items}));
        return Ok(());
    }
    if activations.is_empty() {
        out.say(format!("no activations of `{}` on `{}` yet", args.name, profile.name));
    }
    for a in &activations {
        out.say(format!("── {}  {}  {}  {} ──", time(a.start_ms), a.id, status(a), duration(a.duration_us)));
        for line in &a.logs {
            out.say(format!("  {line}"));
        }
        if let Some(e) = &a.error {
            out.say(format!("  error: {}: {}", e.error_type(), e.message()));
        }
    }
    Ok(())
}

/// `faas activations`: a table of recent activations, newest first.
pub async fn activations(global: &GlobalArgs, args: ActivationsArgs, out: Output) -> CliResult {
    if let Some(f) = &args.function {
        faas_api::validate_function_name(f)?;
    }
    let project = project::load(&global.dir)?;
    let (profile, runner) = backend::open(&project, global.backend.as_deref()).await?;
    let query = ActivationQuery { function: args.function.clone(), id: None, limit: Some(args.limit as usize) };
    let activations = runner.activations(query).await.map_err(|e| backend::with_hint(&profile, e))?;
    out.json_ok(json!({"backend": profile.name, "activations": activations}));
    if !out.is_json() {
        if activations.is_empty() {
            out.say(format!("no activations on `{}` yet", profile.name));
        } else {
            out.say(render_activations(&activations));
        }
    }
    Ok(())
}

/// The `faas activations` table: id, function, start, duration, cold/warm, status.
pub fn render_activations(activations: &[Activation]) -> String {
    let rows: Vec<Vec<String>> = activations
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.function.clone(),
                time(a.start_ms),
                duration(a.duration_us),
                if a.cold { "cold" } else { "warm" }.to_string(),
                status(a),
                a.attempt.to_string(),
            ]
        })
        .collect();
    table(&["ID", "FUNCTION", "START", "DURATION", "START TYPE", "STATUS", "ATTEMPT"], &rows)
}

fn status(a: &Activation) -> String {
    match (&a.status, &a.error) {
        (ActivationStatus::Pending, _) => "pending".into(),
        (ActivationStatus::Success, _) => "success".into(),
        (ActivationStatus::Error, Some(e)) => format!("error ({})", e.kind()),
        (ActivationStatus::Error, None) => "error".into(),
    }
}

/// A time in milliseconds since the Unix epoch, in local time.
pub(crate) fn time(ms: u64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms as i64) {
        Some(t) => t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => ms.to_string(),
    }
}

fn duration(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else {
        format!("{:.1} ms", us as f64 / 1e3)
    }
}

/// A plain text table with left-aligned columns.
///
/// ```
/// let t = faas_cli::commands::table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
/// assert_eq!(t, "A    BB\nxyz  1");
/// ```
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.to_string() } else { format!("{c:<w$}", w = widths[i]) })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut lines = vec![line(header.to_vec())];
    lines.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    lines.join("\n")
}
