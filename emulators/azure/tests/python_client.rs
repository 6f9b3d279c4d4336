//! The ARM surface as a client written by others drives it: Microsoft's official Python
//! management SDK (PyPI `azure-mgmt-web`), pointed at the emulator through its `base_url`
//! override, creates a site with its long-running `begin_create_or_update`, reads and lists it,
//! changes its app settings, reads its keys and functions, and deletes it — and does the same
//! reads on an app the emulator runs. The SDK runs in a scratch virtualenv (the machine's
//! `python3 -m venv`, cached under `$HOME/.cache/faas/` by the pinned versions); without python3
//! or PyPI the test fails, saying what is missing.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::*;
use serde_json::{json, Value};

/// The SDK and everything it pulls in, pinned (as `pip freeze` listed them when verified).
const PINS: &[&str] = &[
    "azure-mgmt-web==11.0.1",
    "azure-mgmt-core==1.6.0",
    "azure-core==1.41.0",
    "isodate==0.7.2",
    "typing_extensions==4.16.0",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "idna==3.20",
    "charset-normalizer==3.5.3",
    "certifi==2026.10.19.post1",
];

/// The virtualenv with the SDK (made once; remade when the pins change).
fn sdk_env() -> PathBuf {
    let cache = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/faas"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let venv = cache.join(format!("python/{}", PINS[0].replace("==", "-")));
    let stamp = venv.join("faas-pins.txt");
    let python = venv.join("bin/python");
    let pins = PINS.join("\n");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == pins) {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
    let run = |cmd: &mut Command, what: &str, hint: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e} ({hint})"));
        assert!(
            out.status.success(),
            "{what} failed ({hint}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
        "this test needs python3 with its venv module: e.g. `apt-get install python3 python3-venv`",
    );
    run(
        Command::new(&python).args(["-m", "pip", "install", "-q", "--disable-pip-version-check"]).args(PINS),
        "pip install azure-mgmt-web",
        "this test installs Microsoft's azure-mgmt-web from PyPI into a virtualenv: PyPI must be reachable and \
         python3-venv must provide pip (e.g. `apt-get install python3-venv python3-pip`)",
    );
    std::fs::write(&stamp, pins).unwrap();
    venv
}

/// The client: every call through the SDK's own methods; each step's result (or the exception
/// it raised) and the requests it made go into the JSON summary on stdout.
const SCRIPT: &str = r#"
import json, sys, time, traceback
from urllib.parse import urlparse

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import NameValuePair, Site, SiteConfig, StringDictionary

base_url, SUB, DEPLOYED_RG, DEPLOYED = sys.argv[1:5]
RG = "py-rg"
APP = "py-app"


class FixedToken:
    """A credential that always gives the same token (the emulator takes any)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("local-token", int(time.time()) + 3600)


trace = []


def record(response):
    url = urlparse(response.http_request.url)
    trace.append([response.http_request.method, url.path, response.http_response.status_code])


client = WebSiteManagementClient(
    FixedToken(), SUB, base_url=base_url, polling_interval=0.05, retry_total=0, raw_response_hook=record
)
# azure-core's bearer policy refuses plain http unless the operation says enforce_https=False
# (the pollers pass their operation's options on to every poll).
K = {"enforce_https": False}
out = {}


def step(name, fn):
    del trace[:]
    try:
        out[name] = {"ok": fn()}
    except Exception as e:
        out[name] = {"error": {"type": type(e).__name__, "message": str(e), "trace": traceback.format_exc()}}
    out[name]["requests"] = list(trace)


def error_of(fn):
    try:
        fn()
        return {"raised": None}
    except HttpResponseError as e:
        return {"raised": type(e).__name__, "not_found": isinstance(e, ResourceNotFoundError),
                "status": e.status_code, "code": e.error.code if e.error else None,
                "message": e.error.message if e.error else str(e)}


def site_summary(s):
    return {
        "name": s.name, "id": s.id, "type": s.type, "kind": s.kind, "location": s.location, "state": s.state,
        "default_host_name": s.default_host_name, "enabled": s.enabled, "host_names": s.host_names,
        "enabled_host_names": s.enabled_host_names, "resource_group": s.resource_group,
        "tags": s.tags,
        "ssl_states": [{"name": h.name, "host_type": h.host_type, "ssl_state": h.ssl_state}
                       for h in (s.host_name_ssl_states or [])],
        "last_modified": s.last_modified_time_utc.isoformat() if s.last_modified_time_utc else None,
    }


def create():
    site = Site(
        location="westeurope",
        kind="functionapp,linux",
        site_config=SiteConfig(app_settings=[NameValuePair(name="FUNCTIONS_WORKER_RUNTIME", value="custom")]),
    )
    poller = client.web_apps.begin_create_or_update(RG, APP, site, **K)
    s = poller.result()
    return {"site": site_summary(s), "done": poller.done(), "status": poller.status()}


def update():
    site = Site(location="westeurope", kind="functionapp,linux", tags={"stage": "test"})
    poller = client.web_apps.begin_create_or_update(RG, APP, site, **K)
    s = poller.result()
    return {"site": site_summary(s), "done": poller.done(), "status": poller.status()}


def lists():
    return {"resource_group": [s.name for s in client.web_apps.list_by_resource_group(RG, **K)],
            "subscription": [s.name for s in client.web_apps.list(**K)]}


def settings():
    before = client.web_apps.list_application_settings(RG, APP, **K).properties
    props = dict(before or {})
    props["FUNCTIONS_WORKER_RUNTIME"] = "custom2"
    props["EXTRA"] = "x"
    updated = client.web_apps.update_application_settings(RG, APP, StringDictionary(properties=props), **K)
    after = client.web_apps.list_application_settings(RG, APP, **K).properties
    return {"before": before, "updated": updated.properties, "after": after}


def host_keys(rg, app):
    k = client.web_apps.list_host_keys(rg, app, **K)
    return {"master_key": k.master_key, "function_keys": k.function_keys, "system_keys": k.system_keys}


def functions(rg, app):
    return [{"name": f.name, "type": f.type, "function_name": f.properties.get("name") if f.properties else None,
             "function_app_id": f.properties.function_app_id if f.properties else None,
             "invoke_url_template": f.properties.invoke_url_template if f.properties else None,
             "language": f.properties.language if f.properties else None,
             "is_disabled": f.properties.is_disabled if f.properties else None,
             "href": f.properties.href if f.properties else None,
             "config": f.properties.config if f.properties else None}
            for f in client.web_apps.list_functions(rg, app, **K)]


def get_function():
    f = client.web_apps.get_function(DEPLOYED_RG, DEPLOYED, "hello", **K)
    return {"name": f.name, "id": f.id, "invoke_url_template": f.properties.invoke_url_template,
            "missing": error_of(lambda: client.web_apps.get_function(DEPLOYED_RG, DEPLOYED, "nope", **K))}


def function_keys():
    # Azure answers a function's keys as a flat {"name": "key"} object, which this SDK's
    # StringDictionary model reads as no properties: the raw answer is what callers use.
    raw, model = client.web_apps.list_function_keys(
        DEPLOYED_RG, DEPLOYED, "hello", cls=lambda r, d, h: (r.http_response.json(), d), **K)
    return {"raw": raw, "properties": model.properties}


def restart_and_sync():
    client.web_apps.restart(DEPLOYED_RG, DEPLOYED, **K)
    client.web_apps.sync_function_triggers(DEPLOYED_RG, DEPLOYED, **K)
    return True


def delete_function():
    client.web_apps.delete_function(DEPLOYED_RG, DEPLOYED, "hello", **K)
    return {"left": [f["function_name"] for f in functions(DEPLOYED_RG, DEPLOYED)],
            "again": error_of(lambda: client.web_apps.delete_function(DEPLOYED_RG, DEPLOYED, "hello", **K))}


def delete():
    client.web_apps.delete(RG, APP, **K)
    return {"get": error_of(lambda: client.web_apps.get(RG, APP, **K)),
            "listed": [s.name for s in client.web_apps.list_by_resource_group(RG, **K)]}


step("create", create)
step("get", lambda: site_summary(client.web_apps.get(RG, APP, **K)))
step("update", update)
step("lists", lists)
step("settings", settings)
step("host_keys", lambda: host_keys(RG, APP))
step("functions", lambda: functions(RG, APP))
step("missing", lambda: error_of(lambda: client.web_apps.get(RG, "missing-app", **K)))
step("deployed_functions", lambda: functions(DEPLOYED_RG, DEPLOYED))
step("get_function", get_function)
step("function_keys", function_keys)
step("deployed_host_keys", lambda: host_keys(DEPLOYED_RG, DEPLOYED))
step("restart_and_sync", restart_and_sync)
step("delete_function", delete_function)
step("delete", delete)
print(json.dumps(out, default=str))
"#;

/// The result of a step of the script, failing the test with the exception it raised.
fn ok<'a>(summary: &'a Value, step: &str) -> &'a Value {
    let s = &summary[step];
    match s.get("ok") {
        Some(v) => v,
        None => panic!(
            "the SDK's `{step}` failed: {}\nrequests: {}",
            s["error"]["trace"].as_str().unwrap_or(&s.to_string()),
            s["requests"]
        ),
    }
}

fn requests(summary: &Value, step: &str) -> Vec<(String, String, u64)> {
    summary[step]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().to_string(), r[2].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn the_official_python_sdk_manages_sites() {
    let started = Instant::now();
    let venv = tokio::task::spawn_blocking(sdk_env).await.unwrap();
    let ready = started.elapsed();
    let e = emulator().await;
    let deployed = "deployed-app";
    let rg = faas_emulator_azure::emulate::RESOURCE_GROUP;
    let sub = faas_emulator_azure::emulate::SUBSCRIPTION;
    let dir = app_dir(&host_json(json!({})), &[("hello", http_function("function", None))]);
    e.run_folder(deployed, dir.path(), Default::default()).await.expect("the app runs");

    let script = tempfile::NamedTempFile::with_suffix(".py").unwrap();
    std::fs::write(script.path(), SCRIPT).unwrap();
    let python = venv.join("bin/python");
    let args = [script.path().display().to_string(), e.url(), sub.to_string(), rg.to_string(), deployed.to_string()];
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python client failed: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!("the client's summary is not JSON ({err}): {}", String::from_utf8_lossy(&out.stdout))
    });
    eprintln!("SDK ready in {ready:?}; all done in {:?}", started.elapsed());

    // 1. The long-running creation: 202 with a Location the poller follows to the site.
    let created = ok(&summary, "create");
    assert_eq!(created["done"], true);
    assert_eq!(created["status"], "Succeeded");
    assert_eq!(created["site"]["name"], "py-app");
    assert_eq!(created["site"]["kind"], "functionapp,linux");
    let calls = requests(&summary, "create");
    assert_eq!(calls[0].0, "PUT");
    assert_eq!(calls[0].2, 202, "a new site is a long-running creation: {calls:?}");
    assert!(
        calls[1..].iter().any(|(m, p, s)| m == "GET" && p.contains("/operationResults/") && *s == 200),
        "the poller followed the operation to its end: {calls:?}"
    );
    // A PUT on an existing site answers 200 at once; the poller takes it as done.
    let updated = ok(&summary, "update");
    assert_eq!(updated["status"], "Succeeded");
    assert_eq!(updated["site"]["tags"], json!({"stage": "test"}));
    assert_eq!(requests(&summary, "update")[0].2, 200);

    // 2. The site as the SDK's model reads it.
    let site = ok(&summary, "get");
    assert_eq!(site["name"], "py-app");
    assert_eq!(site["id"], format!("/subscriptions/{sub}/resourceGroups/py-rg/providers/Microsoft.Web/sites/py-app"));
    assert_eq!(site["type"], "Microsoft.Web/sites");
    assert_eq!(site["location"], "westeurope");
    assert_eq!(site["default_host_name"], "py-app.azurewebsites.net");
    assert_eq!(site["state"], "Running");
    assert_eq!(site["enabled"], true);
    assert_eq!(site["resource_group"], "py-rg");
    assert!(site["last_modified"].is_string(), "lastModifiedTimeUtc parses as a datetime: {site}");
    let ssl = site["ssl_states"].as_array().unwrap();
    assert!(
        ssl.iter().any(|h| h["host_type"] == "Repository" && h["name"] == "py-app.scm.azurewebsites.net"),
        "the scm host is the Repository entry: {ssl:?}"
    );
    assert!(ssl.iter().any(|h| h["host_type"] == "Standard" && h["name"] == "py-app.azurewebsites.net"));

    // 3. Listed by resource group and by subscription.
    let lists = ok(&summary, "lists");
    assert_eq!(lists["resource_group"], json!(["py-app"]));
    let in_sub = lists["subscription"].as_array().unwrap();
    assert!(in_sub.contains(&json!("py-app")) && in_sub.contains(&json!(deployed)), "{in_sub:?}");

    // 4. App settings: read, replaced, read again.
    let settings = ok(&summary, "settings");
    assert_eq!(settings["before"], json!({"FUNCTIONS_WORKER_RUNTIME": "custom"}));
    let want = json!({"FUNCTIONS_WORKER_RUNTIME": "custom2", "EXTRA": "x"});
    assert_eq!(settings["updated"], want);
    assert_eq!(settings["after"], want);

    // 5. Host keys.
    let keys = ok(&summary, "host_keys");
    assert!(keys["master_key"].as_str().is_some_and(|k| !k.is_empty()), "{keys}");
    assert!(keys["function_keys"]["default"].as_str().is_some_and(|k| !k.is_empty()), "{keys}");
    let deployed_keys = ok(&summary, "deployed_host_keys");
    assert_eq!(deployed_keys["master_key"], json!(e.master_key(deployed).unwrap()));

    // 6. Functions: none before a deploy; the running app's with their envelope.
    assert_eq!(ok(&summary, "functions"), &json!([]));
    let functions = ok(&summary, "deployed_functions").as_array().unwrap();
    assert_eq!(functions.len(), 1, "{functions:?}");
    let hello = &functions[0];
    assert_eq!(hello["name"], format!("{deployed}/hello"));
    assert_eq!(hello["type"], "Microsoft.Web/sites/functions");
    assert_eq!(hello["function_name"], "hello");
    assert_eq!(
        hello["function_app_id"],
        format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{deployed}")
    );
    assert_eq!(hello["invoke_url_template"], format!("https://{deployed}.azurewebsites.net/api/hello"));
    assert_eq!(hello["language"], "custom");
    assert_eq!(hello["is_disabled"], false);
    assert_eq!(hello["config"]["bindings"][0]["type"], "httpTrigger");
    let one = ok(&summary, "get_function");
    assert_eq!(one["name"], format!("{deployed}/hello"));
    assert_eq!(one["missing"]["status"], 404, "{one}");
    let fkeys = ok(&summary, "function_keys");
    assert_eq!(fkeys["raw"]["default"], json!(e.function_key(deployed, "hello").unwrap()), "{fkeys}");
    assert_eq!(ok(&summary, "restart_and_sync"), &json!(true));
    let deleted_fn = ok(&summary, "delete_function");
    assert_eq!(deleted_fn["left"], json!([]), "{deleted_fn}");
    assert_eq!(deleted_fn["again"]["status"], 404, "deleting a function that is gone: {deleted_fn}");

    // 7. A missing site: ResourceNotFoundError with ARM's code.
    let missing = ok(&summary, "missing");
    assert_eq!(missing["raised"], "ResourceNotFoundError", "{missing}");
    assert_eq!(missing["not_found"], true);
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["code"], "ResourceNotFound");

    // 8. Deleted: not found afterwards, and no longer listed.
    let deleted = ok(&summary, "delete");
    assert_eq!(deleted["get"]["raised"], "ResourceNotFoundError", "{deleted}");
    assert_eq!(deleted["get"]["code"], "ResourceNotFound");
    assert_eq!(deleted["listed"], json!([]));
    e.shutdown().await;
}
