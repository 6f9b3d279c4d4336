//! `faas state`: the app's portable state as the project's event gateway keeps it (what
//! `cx.state()` of its functions reads and writes): get, set, delete, list. The gateway is the one
//! `faas gateway` runs for the project (`.faas/gateway.json`), or `FAAS_GATEWAY_URL` with
//! `FAAS_GATEWAY_TOKEN`; the command uses the app's own token, derived from the management token
//! as `faas deploy` derives the one it gives the app's functions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use faas_api::state::{Expect, SetOptions, State, Versioned, MAX_PAGE, MAX_TTL, MAX_VALUE_BYTES};
use faas_api::Error;
use serde_json::{json, Value};

use crate::args::{GlobalArgs, StateArgs, StateCommand, StateDeleteArgs, StateKeyArgs, StateListArgs, StateSetArgs};
use crate::commands::table;
use crate::gateway::GatewayClient;
use crate::output::{CliResult, Output};
use crate::project;

/// `faas state ...`.
pub async fn state(global: &GlobalArgs, args: StateArgs, out: Output) -> CliResult {
    let project = project::load(&global.dir)?;
    let app = args.app.unwrap_or_else(|| project.config.app.name.clone());
    faas_api::validate_function_name(&app)
        .map_err(|_| Error::bad_input(format!("--app `{app}` is not an app name (letters, digits, `-`, `_`)")))?;
    let client = GatewayClient::connect(&project.root)?;
    let state = State::new(std::sync::Arc::new(client.state_of(&app)));
    let about = json!({ "gateway": client.url, "app": app });
    match args.command {
        StateCommand::Get(args) => get(&state, about, args, out).await,
        StateCommand::Set(args) => set(&state, about, args, out).await,
        StateCommand::Delete(args) => delete(&state, about, args, out).await,
        StateCommand::List(args) => list(&state, about, args, out).await,
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// One entry as `--json` shows it: the value as text when it is UTF-8, else in base64.
fn entry_json(key: &str, entry: &Versioned<bytes::Bytes>) -> Value {
    let mut doc = json!({
        "key": key,
        "version": entry.version.0,
        "size": entry.value.len(),
        "expiresMs": entry.expires_at.map(epoch_ms),
    });
    match std::str::from_utf8(&entry.value) {
        Ok(text) => doc["value"] = json!(text),
        Err(_) => doc["valueBase64"] = json!(base64::engine::general_purpose::STANDARD.encode(&entry.value)),
    }
    doc
}

fn merged(about: Value, fields: Value) -> Value {
    let mut doc = about;
    if let (Some(d), Value::Object(f)) = (doc.as_object_mut(), fields) {
        d.extend(f);
    }
    doc
}

async fn get(state: &State, about: Value, args: StateKeyArgs, out: Output) -> CliResult {
    let Some(entry) = state.get(&args.key).await? else {
        return Err(Error::not_found(format!(
            "state key `{}` of app `{}` is absent",
            args.key,
            about["app"].as_str().unwrap_or("?")
        ))
        .into());
    };
    out.json_ok(merged(about, json!({ "entry": entry_json(&args.key, &entry) })));
    if !out.is_json() {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&entry.value);
        if std::io::IsTerminal::is_terminal(&stdout) && !entry.value.ends_with(b"\n") {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.flush();
        out.note(format!("version {}", entry.version));
    }
    Ok(())
}

async fn set(state: &State, about: Value, args: StateSetArgs, out: Output) -> CliResult {
    let (what, value) = match (&args.value, &args.file) {
        (Some(v), _) => ("the value".to_string(), v.clone().into_bytes()),
        (None, Some(path)) => crate::runs::read_limited(path, MAX_VALUE_BYTES)?,
        (None, None) => return Err(Error::bad_input("give the value, or --file PATH (`-` for standard input)").into()),
    };
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::payload_too_large(format!(
            "{what} is over the state service's limit of {MAX_VALUE_BYTES} bytes per value"
        ))
        .into());
    }
    let ttl = match &args.ttl {
        None => None,
        Some(t) => match faas_api::config::parse_duration(t) {
            Ok(d) if d >= Duration::from_millis(1) && d <= MAX_TTL => Some(d),
            _ => {
                return Err(Error::bad_input(format!(
                    "--ttl {t}: give a duration from 1ms to a year, like `30s` or `1h`"
                ))
                .into())
            }
        },
    };
    let expect = match (args.if_version, args.if_absent) {
        (Some(v), _) => Expect::Version(faas_api::state::Version(v)),
        (None, true) => Expect::Absent,
        (None, false) => Expect::Any,
    };
    let version = state.set_with(&args.key, value, SetOptions { expect, ttl }).await?;
    out.json_ok(merged(about, json!({ "key": args.key, "version": version.0 })));
    out.say(format!("set `{}` (version {version})", args.key));
    Ok(())
}

async fn delete(state: &State, about: Value, args: StateDeleteArgs, out: Output) -> CliResult {
    let deleted = match args.if_version {
        Some(v) => state.delete_if(&args.key, faas_api::state::Version(v)).await?,
        None => state.delete(&args.key).await?,
    };
    out.json_ok(merged(about, json!({ "key": args.key, "deleted": deleted })));
    out.say(if deleted { format!("deleted `{}`", args.key) } else { format!("`{}` was absent", args.key) });
    Ok(())
}

async fn list(state: &State, about: Value, args: StateListArgs, out: Output) -> CliResult {
    let wanted = args.limit as usize;
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    let more = loop {
        let page = state.list(&args.prefix, after.as_deref(), (wanted - entries.len()).min(MAX_PAGE)).await?;
        entries.extend(page.entries);
        match page.next {
            Some(next) if entries.len() < wanted => after = Some(next),
            next => break next,
        }
    };
    let docs: Vec<Value> = entries
        .iter()
        .map(|(k, e)| {
            let mut d = entry_json(k, e);
            d.as_object_mut().map(|m| (m.remove("value"), m.remove("valueBase64")));
            d
        })
        .collect();
    out.json_ok(merged(about, json!({ "entries": docs, "next": more })));
    if out.is_json() {
        return Ok(());
    }
    if entries.is_empty() {
        out.say(format!(
            "no keys{}",
            if args.prefix.is_empty() { String::new() } else { format!(" starting with `{}`", args.prefix) }
        ));
        return Ok(());
    }
    let now = SystemTime::now();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|(k, e)| {
            let expires = e.expires_at.map_or_else(
                || "-".to_string(),
                |t| format!("in {}s", t.duration_since(now).unwrap_or_default().as_secs()),
            );
            vec![k.clone(), e.version.to_string(), e.value.len().to_string(), expires]
        })
        .collect();
    out.say(table(&["KEY", "VERSION", "BYTES", "EXPIRES"], &rows));
    if more.is_some() {
        out.note(format!("(more keys follow; raise --limit above {wanted} to see them)"));
    }
    Ok(())
}
