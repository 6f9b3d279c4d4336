//! `faas runs`: durable runs of compositions, conducted by the project's event gateway (its runs
//! API): list them, start one and follow it to its end, show one, cancel one. The gateway is the
//! one `faas gateway` runs for the project (`.faas/gateway.json`), or `FAAS_GATEWAY_URL` with
//! `FAAS_GATEWAY_TOKEN`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use faas_api::{Error, ErrorKind, Progress};
use reqwest::Method;
use serde_json::{json, Value};

use crate::args::{GlobalArgs, RunIdArgs, RunsArgs, RunsCommand, RunsListArgs, RunsShowArgs, RunsStartArgs};
use crate::commands::table;
use crate::gateway::GatewayClient;
use crate::output::{CliResult, Failure, Output};
use crate::progress::Spinner;
use crate::project;

/// Largest run input read from `--data` or `--file`: the gateway's limit on a `POST /runs` body.
const MAX_INPUT: usize = faas_gateway::runs::MAX_RUN_BODY;

/// How often a followed run is read again.
const POLL: Duration = Duration::from_millis(200);

/// Most runs `faas runs list` reads from the gateway before sorting them.
const MAX_LISTED: usize = 100_000;

/// `faas runs ...`.
pub async fn runs(global: &GlobalArgs, args: RunsArgs, out: Output) -> CliResult {
    let project = project::load(&global.dir)?;
    let client = GatewayClient::connect(&project.root)?;
    match args.command.unwrap_or(RunsCommand::List(RunsListArgs { limit: 50, ..Default::default() })) {
        RunsCommand::List(args) => list(&client, args, out).await,
        RunsCommand::Start(args) => start(&client, args, out).await,
        RunsCommand::Show(args) => show(&client, args, out).await,
        RunsCommand::Cancel(args) => cancel(&client, args, out).await,
    }
}

/// Every byte but RFC 3986's unreserved characters.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A path segment or query value, percent-encoded.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

async fn list(client: &GatewayClient, args: RunsListArgs, out: Output) -> CliResult {
    if let Some(c) = &args.composition {
        faas_api::validate_function_name(c)?;
    }
    let mut filters = String::new();
    if let Some(c) = &args.composition {
        filters.push_str(&format!("&composition={}", encode(c)));
    }
    if let Some(s) = &args.status {
        filters.push_str(&format!("&status={s}"));
    }
    // The API lists by id; the newest are wanted, so every page is read, then sorted.
    let mut runs: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let after_query = after.as_deref().map(|a| format!("&after={}", encode(a))).unwrap_or_default();
        let (_, page) = client.call(Method::GET, &format!("/runs?limit=1000{after_query}{filters}"), None).await?;
        runs.extend(page["runs"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) if runs.len() < MAX_LISTED => after = Some(next.to_string()),
            _ => break,
        }
    }
    runs.sort_by_key(|r| std::cmp::Reverse((r["started_at_ms"].as_u64().unwrap_or(0), r["id"].to_string())));
    runs.truncate(args.limit as usize);
    out.json_ok(json!({ "gateway": client.url, "runs": runs }));
    if out.is_json() {
        return Ok(());
    }
    if runs.is_empty() {
        out.say(format!("no runs on the gateway at {}", client.url));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                text(&r["id"]),
                text(&r["composition"]),
                text(&r["status"]),
                r["steps"].as_u64().unwrap_or(0).to_string(),
                crate::commands::time(r["started_at_ms"].as_u64().unwrap_or(0)),
                now_doing(r),
            ]
        })
        .collect();
    out.say(table(&["ID", "COMPOSITION", "STATUS", "STEPS", "STARTED", "NOW"], &rows));
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// What a run is doing, or how it ended, in a few words.
fn now_doing(run: &Value) -> String {
    match run["status"].as_str() {
        Some("running") => run["current"].as_str().unwrap_or("starting").to_string(),
        Some("failed") => match run_error(run) {
            Some(e) if e.kind() == ErrorKind::Function => format!("{}: {}", e.error_type(), e.message()),
            Some(e) => format!("{}: {}", e.kind(), e.message()),
            None => "failed".to_string(),
        },
        _ => String::new(),
    }
}

/// The error a failed run ended with.
fn run_error(run: &Value) -> Option<Error> {
    run.get("error").filter(|e| !e.is_null()).map(|e| {
        Error::from_json(e.to_string().as_bytes()).unwrap_or_else(|| Error::new(ErrorKind::Function, e.to_string()))
    })
}

/// The run's input: `--data` or `--file`, which must be JSON; `null` when neither is given.
fn input(args: &RunsStartArgs) -> CliResult<Value> {
    let (what, bytes) = if let Some(data) = &args.data {
        ("--data".to_string(), data.clone().into_bytes())
    } else if let Some(path) = &args.file {
        read_limited(path, MAX_INPUT)?
    } else {
        return Ok(Value::Null);
    };
    if bytes.len() > MAX_INPUT {
        return Err(Error::payload_too_large(format!(
            "{what} is over the gateway's limit of {MAX_INPUT} bytes for a run"
        ))
        .into());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::bad_input(format!("{what} is not JSON (a run's input is a JSON value): {e}")).into())
}

/// What `path` holds (`-`: standard input), reading at most one byte over `max` (so the caller
/// can tell an oversized input), with how to name it in a message.
pub(crate) fn read_limited(path: &Path, max: usize) -> CliResult<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let what = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::bad_input(format!("cannot read standard input: {e}")))?;
        "standard input".to_string()
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut bytes))
            .map_err(|e| Error::bad_input(format!("--file {}: cannot read it: {e}", path.display())))?;
        format!("--file {}", path.display())
    };
    Ok((what, bytes))
}

async fn start(client: &GatewayClient, args: RunsStartArgs, out: Output) -> CliResult {
    faas_api::validate_function_name(&args.name)?;
    let input = input(&args)?;
    let mut body = json!({ "composition": args.name, "input": input });
    if let Some(id) = &args.id {
        body["id"] = json!(id);
    }
    let (_, run) = client.call(Method::POST, "/runs", Some(&body)).await.map_err(|f| {
        if f.error.kind() == ErrorKind::NotFound {
            f.with_hint(format!(
                "deploy the app with `faas deploy` while `faas gateway` runs, which registers its compositions (`{}` among them)",
                args.name
            ))
        } else {
            f
        }
    })?;
    let id = text(&run["id"]);
    if args.no_wait {
        out.json_ok(json!({ "gateway": client.url, "run": run }));
        out.say(format!("started run {id} of `{}`", args.name));
        out.note(format!("follow it with `faas runs show {id} --wait`"));
        return Ok(());
    }
    let run = follow(client, &id, out).await?;
    match run["status"].as_str() {
        Some("succeeded") => {
            out.json_ok(json!({ "gateway": client.url, "run": run, "result": run["result"] }));
            out.say(run["result"].to_string());
            out.note(format!("run {id} succeeded in {} steps", run["steps"].as_u64().unwrap_or(0)));
            Ok(())
        }
        Some("cancelled") => Err(Failure::from(
            Error::new(ErrorKind::Function, format!("run `{id}` was cancelled")).with_type("Cancelled"),
        )),
        _ => {
            let e = run_error(&run).unwrap_or_else(|| Error::new(ErrorKind::Function, format!("run `{id}` failed")));
            Err(Failure::from(e).with_hint(format!("its steps: `faas runs show {id}`")))
        }
    }
}

/// Reads the run until it ends, showing its current step on a spinner; returns its last record.
async fn follow(client: &GatewayClient, id: &str, out: Output) -> CliResult<Value> {
    let spinner = Spinner::new(out.is_json());
    let path = format!("/runs/{}", encode(id));
    loop {
        let (_, run) = client.call(Method::GET, &path, None).await?;
        if run["status"].as_str() != Some("running") {
            spinner.finish();
            return Ok(run);
        }
        spinner.step(&format!(
            "run {id}: step {} ({})",
            run["steps"].as_u64().unwrap_or(0) + 1,
            run["current"].as_str().unwrap_or("starting")
        ));
        tokio::time::sleep(POLL).await;
    }
}

async fn show(client: &GatewayClient, args: RunsShowArgs, out: Output) -> CliResult {
    let run = if args.wait {
        follow(client, &args.id, out).await?
    } else {
        client.call(Method::GET, &format!("/runs/{}", encode(&args.id)), None).await?.1
    };
    out.json_ok(json!({ "gateway": client.url, "run": run }));
    if !out.is_json() {
        out.say(render_run(&run));
    }
    Ok(())
}

/// The human form of a run record: what it is and does, its result or error, its last steps.
pub fn render_run(run: &Value) -> String {
    let mut lines =
        vec![format!("run          {}", text(&run["id"])), format!("composition  {}", text(&run["composition"]))];
    let status = text(&run["status"]);
    lines.push(match run["current"].as_str() {
        Some(current) => format!("status       {status} ({current})"),
        None => format!("status       {status}"),
    });
    lines.push(format!("started      {}", crate::commands::time(run["started_at_ms"].as_u64().unwrap_or(0))));
    lines.push(format!("updated      {}", crate::commands::time(run["updated_at_ms"].as_u64().unwrap_or(0))));
    lines.push(format!("steps        {}", run["steps"].as_u64().unwrap_or(0)));
    if let Some(result) = run.get("result").filter(|r| !r.is_null() || status == "succeeded") {
        lines.push(format!("result       {result}"));
    }
    if run.get("error").is_some_and(|e| !e.is_null()) {
        lines.push(format!("error        {}", now_doing(run)));
    }
    let history = run["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        lines.push(String::new());
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|s| {
                vec![
                    s["seq"].as_u64().unwrap_or(0).to_string(),
                    text(&s["function"]),
                    text(&s["outcome"]),
                    format!("{} ms", s["duration_ms"].as_u64().unwrap_or(0)),
                    crate::commands::time(s["at_ms"].as_u64().unwrap_or(0)),
                ]
            })
            .collect();
        lines.push(table(&["STEP", "FUNCTION", "OUTCOME", "DURATION", "ENDED"], &rows));
    }
    lines.join("\n")
}

async fn cancel(client: &GatewayClient, args: RunIdArgs, out: Output) -> CliResult {
    let (_, run) = client.call(Method::DELETE, &format!("/runs/{}", encode(&args.id)), None).await?;
    out.json_ok(json!({ "gateway": client.url, "run": run }));
    let steps = run["steps"].as_u64().unwrap_or(0);
    match run["status"].as_str() {
        Some("cancelled") => out.say(format!("run {} is cancelled (after {steps} steps)", args.id)),
        other => out.say(format!("run {} had already ended: {}", args.id, other.unwrap_or("?"))),
    }
    Ok(())
}
