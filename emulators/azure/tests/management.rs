//! The management surfaces as a deploy client calls them: ARM (sites, settings, functions,
//! keys), Kudu (zip deploy, deployments, VFS), and the state that survives a restart; and the
//! emulator binary.

mod common;

use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const SUB: &str = "11111111-2222-3333-4444-555555555555";
const RG: &str = "my-rg";
const API: &str = "api-version=2023-12-01";

fn site_path(app: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Web/sites/{app}")
}

fn arm(e: &faas_emulator_azure::Emulator, method: Method, path: &str) -> reqwest::RequestBuilder {
    let sep = if path.contains('?') { '&' } else { '?' };
    http().request(method, format!("{}{path}{sep}{API}", e.url())).bearer_auth("any-token")
}

async fn create(e: &faas_emulator_azure::Emulator, app: &str, settings: &[(&str, &str)]) -> Value {
    let settings: Vec<Value> = settings.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    let body = json!({"location": "westeurope", "kind": "functionapp,linux", "tags": {"t": "1"},
                      "properties": {"siteConfig": {"appSettings": settings}}});
    let r = arm(e, Method::PUT, &site_path(app)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202, "a new site is a long-running creation");
    assert_eq!(r.headers()["retry-after"], "1");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("/providers/Microsoft.Web/locations/westeurope/operationResults/"), "{location}");
    eventually("the creation", Duration::from_secs(10), async || {
        let r = http().get(&location).bearer_auth("t").send().await.unwrap();
        match r.status().as_u16() {
            202 => None,
            200 => Some(r.json::<Value>().await.unwrap()),
            other => panic!("polling the operation gave {other}"),
        }
    })
    .await
}

/// An app whose handler is the test handler copied into it as `faas-app` (a relative path).
fn packaged_app(functions: &[(&str, Value)]) -> tempfile::TempDir {
    let host = host_json(json!({"customHandler": {"description": {"defaultExecutablePath": "faas-app"}}}));
    let dir = app_dir(&host, functions);
    std::fs::copy(handler(), dir.path().join("faas-app")).unwrap();
    dir
}

/// An app whose handler is the test handler by its absolute path (small zips).
fn small_app(functions: &[(&str, Value)]) -> tempfile::TempDir {
    app_dir(&host_json(json!({})), functions)
}

async fn zipdeploy(e: &faas_emulator_azure::Emulator, app: &str, zip: Vec<u8>, is_async: bool) -> reqwest::Response {
    let path = if is_async { "/api/zipdeploy?isAsync=true" } else { "/api/zipdeploy" };
    to(e, Method::POST, &scm_host(app), path).bearer_auth("t").body(zip).send().await.unwrap()
}

#[tokio::test]
async fn sites_are_created_polled_updated_listed_and_deleted() {
    let e = emulator().await;
    let no_auth = http().get(format!("{}{}?{API}", e.url(), site_path("x"))).send().await.unwrap();
    assert_eq!(no_auth.status(), 401);
    let body: Value = no_auth.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthenticationFailed");
    let no_version = http().get(format!("{}{}", e.url(), site_path("x"))).bearer_auth("t").send().await.unwrap();
    assert_eq!(no_version.status(), 400);
    assert_eq!(no_version.json::<Value>().await.unwrap()["error"]["code"], "MissingApiVersionParameter");
    let missing = arm(&e, Method::GET, &site_path("nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "ResourceNotFound");
    let no_location = arm(&e, Method::PUT, &site_path("nowhere")).json(&json!({})).send().await.unwrap();
    assert_eq!(no_location.status(), 400);
    assert_eq!(no_location.json::<Value>().await.unwrap()["error"]["code"], "LocationRequired");

    let site = create(&e, "arm-app", &[("A", "1")]).await;
    assert_eq!(site["id"], site_path("arm-app"));
    assert_eq!(site["name"], "arm-app");
    assert_eq!(site["type"], "Microsoft.Web/sites");
    assert_eq!(site["kind"], "functionapp,linux");
    assert_eq!(site["tags"], json!({"t": "1"}));
    let props = &site["properties"];
    assert_eq!(props["defaultHostName"], "arm-app.azurewebsites.net");
    assert_eq!(props["state"], "Running");
    assert_eq!(props["provisioningState"], "Succeeded");
    assert_eq!(props["resourceGroup"], RG);
    assert_eq!(props["enabledHostNames"], json!(["arm-app.azurewebsites.net", "arm-app.scm.azurewebsites.net"]));
    let repository: Vec<&Value> =
        props["hostNameSslStates"].as_array().unwrap().iter().filter(|s| s["hostType"] == "Repository").collect();
    assert_eq!(repository[0]["name"], "arm-app.scm.azurewebsites.net");
    // An update is 200, never 201; the settings are replaced.
    let r = arm(&e, Method::PUT, &site_path("arm-app"))
        .json(&json!({"location": "westeurope", "tags": {"t": "2"}, "properties": {"siteConfig": {"appSettings": [{"name": "B", "value": "2"}]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!({"t": "2"}));
    let settings: Value = arm(&e, Method::POST, &format!("{}/config/appsettings/list", site_path("arm-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["properties"], json!({"B": "2"}));
    let r = arm(&e, Method::PUT, &format!("{}/config/appsettings", site_path("arm-app")))
        .json(&json!({"properties": {"C": "3"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["properties"], json!({"C": "3"}));
    // The same name in another resource group is taken.
    let other = format!("/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Web/sites/arm-app");
    let r = arm(&e, Method::PUT, &other).json(&json!({"location": "westeurope"})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let list: Value =
        arm(&e, Method::GET, &format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Web/sites"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(list["value"][0]["name"], "arm-app");
    let keys: Value = arm(&e, Method::POST, &format!("{}/host/default/listkeys", site_path("arm-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["masterKey"].as_str().unwrap().len(), 56);
    assert_eq!(keys["functionKeys"]["default"].as_str().unwrap().len(), 56);
    assert_eq!(keys["systemKeys"], json!({}));
    assert_ne!(keys["masterKey"], keys["functionKeys"]["default"]);
    let functions: Value = arm(&e, Method::GET, &format!("{}/functions", site_path("arm-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(functions, json!({"value": []}));
    assert_eq!(arm(&e, Method::DELETE, &site_path("arm-app")).send().await.unwrap().status(), 200);
    assert_eq!(arm(&e, Method::DELETE, &site_path("arm-app")).send().await.unwrap().status(), 204);
    assert_eq!(arm(&e, Method::GET, &site_path("arm-app")).send().await.unwrap().status(), 404);
    assert!(!e.state_dir().join("sites/arm-app").exists());
    e.shutdown().await;
}

#[tokio::test]
async fn zip_deploy_runs_the_app_and_its_functions_are_listed() {
    let e = emulator().await;
    create(&e, "zip-app", &[]).await;
    let zip = zip_dir(
        packaged_app(&[
            ("hello", http_function("function", Some("greet/{name?}"))),
            ("plainres", http_function("anonymous", None)),
        ])
        .path(),
    );
    let unauthorized =
        to(&e, Method::POST, &scm_host("zip-app"), "/api/zipdeploy").body(zip.clone()).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    let r = zipdeploy(&e, "zip-app", zip, false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let latest: Value = to(&e, Method::GET, &scm_host("zip-app"), "/api/deployments/latest")
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["status"], 4);
    assert_eq!(latest["complete"], true);
    assert!(latest["log_url"].as_str().unwrap().ends_with("/log"));
    let functions: Value = arm(&e, Method::GET, &format!("{}/functions", site_path("zip-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hello = &functions["value"][0];
    assert_eq!(hello["id"], format!("{}/functions/hello", site_path("zip-app")));
    assert_eq!(hello["name"], "zip-app/hello");
    assert_eq!(hello["type"], "Microsoft.Web/sites/functions");
    assert_eq!(hello["properties"]["name"], "hello");
    assert_eq!(hello["properties"]["invoke_url_template"], "https://zip-app.azurewebsites.net/api/greet/{name?}");
    assert_eq!(hello["properties"]["language"], "custom");
    assert_eq!(hello["properties"]["isDisabled"], false);
    assert_eq!(hello["properties"]["config"]["bindings"][0]["authLevel"], "function");
    let one: Value = arm(&e, Method::GET, &format!("{}/functions/hello", site_path("zip-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(&one, hello);
    assert_eq!(
        arm(&e, Method::GET, &format!("{}/functions/nope", site_path("zip-app"))).send().await.unwrap().status(),
        404
    );
    let keys: Value = arm(&e, Method::POST, &format!("{}/functions/hello/listkeys", site_path("zip-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = keys["default"].as_str().unwrap();
    let r = to(&e, Method::GET, &site_host("zip-app"), &format!("/api/greet/Ada?code={key}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the deployed handler answers (it logs and answers an empty Outputs)");
    // Deleting a function removes its folder; the app reloads without it.
    assert_eq!(
        arm(&e, Method::DELETE, &format!("{}/functions/plainres", site_path("zip-app"))).send().await.unwrap().status(),
        204
    );
    let functions: Value = arm(&e, Method::GET, &format!("{}/functions", site_path("zip-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(functions["value"].as_array().unwrap().len(), 1);
    assert_eq!(to(&e, Method::GET, &site_host("zip-app"), "/api/plainres").send().await.unwrap().status(), 404);
    e.shutdown().await;
}

/// A zip written with the zip crate, which writes names the packaging crate refuses.
fn raw_zip(name: &str, data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn bad_packages_are_refused_and_the_previous_deployment_keeps_running() {
    let e = emulator().await;
    create(&e, "bad-app", &[]).await;
    let good = small_app(&[("plainres", http_function("anonymous", None))]);
    assert_eq!(zipdeploy(&e, "bad-app", zip_dir(good.path()), false).await.status(), 200);
    e.set_package_limits(faas_emulator_azure::Limits { max_zipped: 1 << 20, max_unzipped: 1 << 20, max_entries: 100 });
    let host = serde_json::to_string(&host_json(json!({}))).unwrap();
    let function = http_function("anonymous", None).to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not a zip", b"this is not a zip".to_vec(), "not a valid zip"),
        ("an escaping entry", raw_zip("../evil.txt", b"x"), "outside the target directory"),
        ("an absolute entry", raw_zip("/tmp/evil.txt", b"x"), "outside the target directory"),
        ("a zip bomb", zip_of(&[("host.json", &host), ("zeros.bin", &"\0".repeat(2 << 20))]), "too large"),
        ("no host.json", zip_of(&[("plainres/function.json", &function)]), "host.json: -: is missing"),
        (
            "a malformed host.json",
            zip_of(&[("host.json", r#"{"version": "3.0"}"#)]),
            "host.json: version: '3.0' is an invalid value",
        ),
        (
            "a malformed function.json",
            zip_of(&[("host.json", &host), ("plainres/function.json", r#"{"bindings": [{"name": "req"}]}"#)]),
            "plainres/function.json: bindings[0].type: is missing",
        ),
        (
            "a missing handler",
            zip_of(&[
                (
                    "host.json",
                    r#"{"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "faas-app"}}}"#,
                ),
                ("plainres/function.json", &function),
            ]),
            "host.json: customHandler.description.defaultExecutablePath: the handler `faas-app` is neither",
        ),
    ];
    for (what, zip, expected) in cases {
        let r = zipdeploy(&e, "bad-app", zip, false).await;
        assert_eq!(r.status(), 400, "{what}");
        let text = r.text().await.unwrap();
        assert!(text.contains(expected), "{what}: `{text}` should contain `{expected}`");
        let latest: Value = to(&e, Method::GET, &scm_host("bad-app"), "/api/deployments/latest")
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(latest["status"], 3, "{what}");
        assert!(latest["status_text"].as_str().unwrap().contains(expected));
        let r = to(&e, Method::GET, &site_host("bad-app"), "/api/plainres").send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "just text", "{what}: the previous deployment keeps running");
    }
    assert!(!std::path::Path::new("/tmp/evil.txt").exists());
    let wwwroot = e.state_dir().join("sites/bad-app/wwwroot");
    assert!(wwwroot.join("plainres/function.json").is_file());
    assert!(!wwwroot.join("zeros.bin").exists());
    e.shutdown().await;
}

#[tokio::test]
async fn async_zip_deploy_is_polled_and_a_second_one_meanwhile_is_refused() {
    let e = emulator().await;
    create(&e, "async-app", &[("HANDLER_BIND_DELAY_MS", "1500")]).await;
    let zip = zip_dir(small_app(&[("plainres", http_function("anonymous", None))]).path());
    let r = zipdeploy(&e, "async-app", zip.clone(), true).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("{}/api/deployments/latest", "http://async-app.scm.azurewebsites.net"));
    let busy = zipdeploy(&e, "async-app", zip, false).await;
    assert_eq!(busy.status(), 409);
    assert!(busy.text().await.unwrap().contains("deployment currently in progress"));
    let running: Value = to(&e, Method::GET, &scm_host("async-app"), "/api/deployments/latest")
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(running["complete"], false);
    let done = eventually("the deployment", Duration::from_secs(20), async || {
        let d: Value = to(&e, Method::GET, &scm_host("async-app"), "/api/deployments/latest")
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (d["complete"] == true).then_some(d)
    })
    .await;
    assert_eq!(done["status"], 4, "{done}");
    let id = done["id"].as_str().unwrap();
    let log: Value = to(&e, Method::GET, &scm_host("async-app"), &format!("/api/deployments/{id}/log"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(log.as_array().unwrap().iter().any(|l| l["message"] == "Deployment successful."));
    let r = to(&e, Method::GET, &site_host("async-app"), "/api/plainres").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "just text");
    e.shutdown().await;
}

#[tokio::test]
async fn the_vfs_shows_log_files_and_wwwroot() {
    let e = emulator().await;
    create(&e, "vfs-app", &[]).await;
    assert_eq!(
        zipdeploy(&e, "vfs-app", zip_dir(small_app(&[("plainres", http_function("anonymous", None))]).path()), false)
            .await
            .status(),
        200
    );
    assert_eq!(to(&e, Method::GET, &site_host("vfs-app"), "/api/plainres").send().await.unwrap().status(), 200);
    let get = |path: &str| to(&e, Method::GET, &scm_host("vfs-app"), path).bearer_auth("t").send();
    let root: Value = get("/api/vfs/").await.unwrap().json().await.unwrap();
    let names: Vec<&str> = root.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["LogFiles", "site"]);
    let dir = "/api/vfs/LogFiles/Application/Functions/Function/plainres/";
    let list: Value = get(dir).await.unwrap().json().await.unwrap();
    let entry = &list[0];
    let name = entry["name"].as_str().unwrap();
    assert!(name.ends_with(".log") && name.len() == "2026-12-03T08-30-00Z-".len() + 10 + 4, "{name}");
    assert!(chrono::NaiveDateTime::parse_from_str(&name[..20], "%Y-%m-%dT%H-%M-%SZ").is_ok(), "{name}");
    assert_eq!(entry["mime"], "text/plain");
    assert_eq!(entry["path"], format!("/home/LogFiles/Application/Functions/Function/plainres/{name}"));
    assert_eq!(entry["href"], format!("http://vfs-app.scm.azurewebsites.net{dir}{name}"));
    assert!(chrono::DateTime::parse_from_rfc3339(entry["mtime"].as_str().unwrap()).is_ok());
    assert!(entry["size"].as_u64().unwrap() > 0);
    let text = get(&format!("{dir}{name}")).await.unwrap().text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(message(lines[0]).1.starts_with(
        "Executing 'Functions.plainres' (Reason='This function was programmatically called via the host APIs.', Id="
    ));
    assert!(message(lines[1]).1.starts_with("Executed 'Functions.plainres' (Succeeded, Id="));
    let host: Value = get("/api/vfs/site/wwwroot/host.json").await.unwrap().json().await.unwrap();
    assert_eq!(host["version"], "2.0");
    let redirect =
        http().get(format!("{}/api/vfs/site/wwwroot", e.url())).header("host", scm_host("vfs-app")).bearer_auth("t");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.execute(redirect.build().unwrap()).await.unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(get("/api/vfs/site/wwwroot/../../keys.json").await.unwrap().status(), 404);
    assert_eq!(get("/api/vfs/site/wwwroot/%2e%2e/keys.json").await.unwrap().status(), 404);
    assert_eq!(get("/api/vfs/keys.json").await.unwrap().status(), 404);
    e.shutdown().await;
}

#[tokio::test]
async fn sites_survive_a_restart_with_the_same_state_directory() {
    let state = tempfile::tempdir().unwrap();
    let options = || faas_emulator_azure::EmulatorOptions { state_dir: Some(state.path().to_path_buf()), ..options() };
    let e = faas_emulator_azure::start(options()).await.unwrap();
    create(&e, "kept-app", &[("K", "V")]).await;
    assert_eq!(
        zipdeploy(&e, "kept-app", zip_dir(small_app(&[("plainres", http_function("function", None))]).path()), false)
            .await
            .status(),
        200
    );
    let key = e.function_key("kept-app", "plainres").unwrap();
    let master = e.master_key("kept-app").unwrap();
    e.shutdown().await;
    let e = faas_emulator_azure::start(options()).await.unwrap();
    assert_eq!(e.sites(), ["kept-app"]);
    assert_eq!(e.master_key("kept-app").unwrap(), master);
    let site: Value = arm(&e, Method::GET, &site_path("kept-app")).send().await.unwrap().json().await.unwrap();
    assert_eq!(site["location"], "westeurope");
    let settings: Value = arm(&e, Method::POST, &format!("{}/config/appsettings/list", site_path("kept-app")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["properties"], json!({"K": "V"}));
    let r = to(&e, Method::GET, &site_host("kept-app"), &format!("/api/plainres?code={key}")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "just text", "the handler starts again with the emulator");
    let logs = function_log(&e, "kept-app", "plainres").await;
    assert_eq!(logs.len(), 2, "the log file of before is appended to: {logs:?}");
    e.shutdown().await;
}

#[tokio::test]
async fn the_binary_listens_where_it_says_and_checks_its_token() {
    let state = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faas-azure-emulator"))
        .args(["--port", "0", "--token", "secret", "--quiet", "--state-dir"])
        .arg(state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().rsplit(' ').next().unwrap().to_string();
    assert!(first.starts_with("Azure Functions host listening on http://127.0.0.1:"), "{first}");
    let list = format!("{url}/subscriptions/{SUB}/providers/Microsoft.Web/sites?{API}");
    let wrong = http().get(&list).bearer_auth("other").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"]["code"], "InvalidAuthenticationToken");
    let right = http().get(&list).bearer_auth("secret").send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(right.json::<Value>().await.unwrap(), json!({"value": []}));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(state.path().join("sites").is_dir());
}
