//! The v2 API through Google's own Rust client (`google-cloud-functions-v2`), pointed at the
//! emulator with anonymous credentials, and the wire shapes the client does not show.

mod common;

use common::*;
use google_cloud_functions_v2::client::FunctionService;
use google_cloud_functions_v2::model;
use google_cloud_lro::Poller as _;
use serde_json::{json, Value};

async fn client(url: &str) -> FunctionService {
    FunctionService::builder()
        .with_endpoint(url)
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .expect("the client builds")
}

fn function(source: &model::GenerateUploadUrlResponse, timeout: i32) -> model::Function {
    let storage = source.storage_source.clone().expect("a storage source");
    model::Function::new()
        .set_build_config(
            model::BuildConfig::new()
                .set_runtime("python312")
                .set_entry_point("handler")
                .set_source(model::Source::new().set_storage_source(storage)),
        )
        .set_service_config(
            model::ServiceConfig::new().set_timeout_seconds(timeout).set_environment_variables([("GREETING", "hi")]),
        )
}

async fn upload_with(client: &FunctionService, archive: Vec<u8>) -> model::GenerateUploadUrlResponse {
    let r = client.generate_upload_url().set_parent(PARENT).send().await.expect("generateUploadUrl");
    let put = http().put(&r.upload_url).header("content-type", "application/zip").body(archive).send().await.unwrap();
    assert_eq!(put.status(), 200);
    r
}

fn status_code(e: &google_cloud_functions_v2::Error) -> Option<u16> {
    e.http_status_code()
}

#[tokio::test]
async fn the_google_client_creates_lists_updates_and_deletes() {
    let emulator = emulator(None).await;
    let url = emulator.url();
    let client = client(&url).await;

    let source = upload_with(&client, exec_zip()).await;
    let created = client
        .create_function()
        .set_parent(PARENT)
        .set_function_id("hello-client")
        .set_function(function(&source, 30))
        .poller()
        .until_done()
        .await
        .expect("create_function completes");
    assert_eq!(created.name, format!("{PARENT}/functions/hello-client"));
    assert_eq!(created.state, model::function::State::Active);
    assert_eq!(created.environment, model::Environment::Gen2);
    let service = created.service_config.clone().unwrap();
    assert!(service.uri.starts_with("http://127.0.0.1:"), "{}", service.uri);
    assert_eq!(service.timeout_seconds, 30);
    assert!(service.revision.starts_with("hello-client-00001-"), "{}", service.revision);
    assert_eq!(service.environment_variables.get("GREETING").map(String::as_str), Some("hi"));
    assert!(created.update_time.is_some() && created.create_time.is_some());
    assert_eq!(created.url, service.uri);

    // The function answers at its uri.
    let env: Value = http().get(format!("{}/env", service.uri)).send().await.unwrap().json().await.unwrap();
    assert_eq!(env["env"]["K_SERVICE"], "hello-client");
    assert_eq!(env["env"]["GREETING"], "hi");

    let got = client.get_function().set_name(&created.name).send().await.expect("get_function");
    assert_eq!(got.state, model::function::State::Active);
    assert_eq!(got.build_config.unwrap().runtime, "python312");

    // A second function, then a list of pages of one.
    let source2 = upload_with(&client, exec_zip()).await;
    client
        .create_function()
        .set_parent(PARENT)
        .set_function_id("hello-second")
        .set_function(function(&source2, 60))
        .poller()
        .until_done()
        .await
        .expect("second create");
    let first = client.list_functions().set_parent(PARENT).set_page_size(1).send().await.unwrap();
    assert_eq!(first.functions.len(), 1);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_functions()
        .set_parent(PARENT)
        .set_page_size(1)
        .set_page_token(&first.next_page_token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.functions.len(), 1);
    assert_ne!(first.functions[0].name, second.functions[0].name);
    assert!(second.next_page_token.is_empty());
    let all = client.list_functions().set_parent("projects/test-project/locations/-").send().await.unwrap();
    assert_eq!(all.functions.len(), 2);

    // An identical update still makes a new revision.
    let updated = client
        .update_function()
        .set_function(got_again(&client, &created.name).await)
        .poller()
        .until_done()
        .await
        .expect("update_function completes");
    let rev = updated.service_config.unwrap().revision;
    assert!(rev.starts_with("hello-client-00002-"), "{rev}");

    // An update of one field through a mask.
    let changed =
        got_again(&client, &created.name).await.set_service_config(model::ServiceConfig::new().set_timeout_seconds(5));
    let updated = client
        .update_function()
        .set_function(changed)
        .set_update_mask(wkt_mask(&["service_config.timeout_seconds"]))
        .poller()
        .until_done()
        .await
        .expect("masked update");
    let service = updated.service_config.unwrap();
    assert_eq!(service.timeout_seconds, 5);
    assert_eq!(service.environment_variables.get("GREETING").map(String::as_str), Some("hi"), "unmasked fields stay");

    // Errors, as the client reports them.
    let missing = client.get_function().set_name(format!("{PARENT}/functions/nope-nope")).send().await.unwrap_err();
    assert_eq!(status_code(&missing), Some(404), "{missing:?}");
    let twice = client
        .create_function()
        .set_parent(PARENT)
        .set_function_id("hello-client")
        .set_function(function(&source, 30))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&twice), Some(409), "{twice:?}");
    let bad_id = client
        .create_function()
        .set_parent(PARENT)
        .set_function_id("Bad_Id")
        .set_function(function(&source, 30))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&bad_id), Some(400), "{bad_id:?}");

    // A build that fails: the poller ends with the operation's error.
    let bad = upload_with(&client, zip(&[("app.py", "x = 1\n")])).await;
    let failed = client
        .create_function()
        .set_parent(PARENT)
        .set_function_id("hello-broken")
        .set_function(function(&bad, 30))
        .poller()
        .until_done()
        .await
        .unwrap_err();
    let status = failed.status().unwrap_or_else(|| panic!("a service error: {failed:?}"));
    assert_eq!(status.code, google_cloud_gax::error::rpc::Code::InvalidArgument);
    assert!(status.message.contains("main.py"), "{}", status.message);
    let broken = got_again(&client, &format!("{PARENT}/functions/hello-broken")).await;
    assert_eq!(broken.state, model::function::State::Failed);

    client.delete_function().set_name(&created.name).poller().until_done().await.expect("delete_function completes");
    let gone = client.get_function().set_name(&created.name).send().await.unwrap_err();
    assert_eq!(status_code(&gone), Some(404));
    let left = client.list_functions().set_parent(PARENT).send().await.unwrap();
    assert_eq!(left.functions.len(), 2, "hello-second and hello-broken");
    emulator.shutdown().await;
}

async fn got_again(client: &FunctionService, name: &str) -> model::Function {
    client.get_function().set_name(name).send().await.unwrap()
}

fn wkt_mask(paths: &[&str]) -> google_cloud_wkt::FieldMask {
    google_cloud_wkt::FieldMask::default().set_paths(paths.iter().map(|p| p.to_string()))
}

/// What the client sends (`$alt=json;enum-encoding=int`) gets enums as numbers; plain JSON as names.
#[tokio::test]
async fn enums_are_numbers_when_asked_and_operations_have_only_known_keys() {
    let emulator = emulator(None).await;
    let url = emulator.url();
    let source = upload(&url, exec_zip()).await;
    let body = json!({"buildConfig": {"runtime": "python312", "entryPoint": "handler", "source": {"storageSource": source}},
                      "serviceConfig": {"ingressSettings": 1}});
    let r = http()
        .post(format!("{url}/v2/{PARENT}/functions?functionId=enum-probe&%24alt=json%3Benum-encoding%3Dint"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let op: Value = r.json().await.unwrap();
    let keys: Vec<&String> = op.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["done", "metadata", "name"], "{op}");
    assert_eq!(op["metadata"]["@type"], "type.googleapis.com/google.cloud.functions.v2.OperationMetadata");
    assert_eq!(op["metadata"]["operationType"], 1, "CREATE_FUNCTION as its number");
    assert_eq!(op["metadata"]["stages"][0]["name"], 2, "BUILD as its number");
    let allowed = [
        "@type",
        "createTime",
        "endTime",
        "target",
        "verb",
        "statusDetail",
        "cancelRequested",
        "apiVersion",
        "requestResource",
        "stages",
        "sourceToken",
        "buildName",
        "operationType",
    ];
    for k in op["metadata"].as_object().unwrap().keys() {
        assert!(allowed.contains(&k.as_str()), "unknown metadata key {k}");
    }
    let name = op["name"].as_str().unwrap();
    assert!(name.starts_with(&format!("{PARENT}/operations/")), "{name}");
    let done = wait_operation(&url, name).await;
    let mut keys: Vec<&String> = done.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["done", "metadata", "name", "response"], "{done}");
    assert_eq!(done["response"]["@type"], "type.googleapis.com/google.cloud.functions.v2.Function");
    assert_eq!(done["response"]["state"], "ACTIVE", "the poll asked no int encoding");
    let f: Value = http()
        .get(format!("{url}/v2/{PARENT}/functions/enum-probe?$alt=json;enum-encoding=int"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["state"], 1);
    assert_eq!(f["environment"], 2);
    assert_eq!(f["serviceConfig"]["ingressSettings"], 1);
    let f: Value =
        http().get(format!("{url}/v2/{PARENT}/functions/enum-probe")).send().await.unwrap().json().await.unwrap();
    assert_eq!(f["state"], "ACTIVE");
    assert_eq!(f["serviceConfig"]["ingressSettings"], "ALLOW_ALL");
    assert_eq!(
        f["buildConfig"]["source"]["storageSource"]["generation"].as_str().map(|g| g.parse::<i64>().is_ok()),
        Some(true)
    );

    // Delete: the response is Empty.
    let op: Value =
        http().delete(format!("{url}/v2/{PARENT}/functions/enum-probe")).send().await.unwrap().json().await.unwrap();
    assert_eq!(op["metadata"]["operationType"], "DELETE_FUNCTION");
    let done = wait_operation(&url, op["name"].as_str().unwrap()).await;
    assert_eq!(done["response"], json!({"@type": "type.googleapis.com/google.protobuf.Empty"}));
    emulator.shutdown().await;
}

#[tokio::test]
async fn errors_are_google_rpc_statuses() {
    let emulator = emulator(None).await;
    let url = emulator.url();
    let c = http();
    let get = |path: String| {
        let c = c.clone();
        async move {
            let r = c.get(path).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = get(format!("{url}/v2/{PARENT}/functions/missing-fn")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["code"], 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("missing-fn"));
    let (status, body) = get(format!("{url}/v2/{PARENT}/operations/operation-1")).await;
    assert_eq!((status, body["error"]["status"].as_str()), (404, Some("NOT_FOUND")));

    let post = |query: &str, body: String| {
        let c = c.clone();
        let u = format!("{url}/v2/{PARENT}/functions?{query}");
        async move {
            let r = c.post(u).header("content-type", "application/json").body(body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post("functionId=ok-name", "{not json".into()).await;
    assert_eq!((status, body["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Invalid JSON payload received."));
    let (status, body) = post("functionId=ok-name", r#"{"buildConfig": {"runtim": "python312"}}"#.into()).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("\"runtim\""), "{body}");
    let (status, body) = post("functionId=ok-name", r#"{"buildConfig": {"runtime": "nodejs20"}}"#.into()).await;
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("nodejs20") && message.contains("python312"), "{message}");
    let (status, body) = post("functionId=ok-name", r#"{"buildConfig": {"runtime": "python312"}}"#.into()).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("source"), "{body}");
    let missing =
        r#"{"buildConfig": {"runtime": "python312", "source": {"storageSource": {"bucket": "b", "object": "o.zip"}}}}"#;
    let (status, body) = post("functionId=ok-name", missing.into()).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("gs://b/o.zip"), "{body}");
    let (status, _) = post("functionId=ab", "{}".into()).await;
    assert_eq!(status, 400, "too short an id");
    let (status, body) =
        post("functionId=ok-name", r#"{"serviceConfig": {"ingressSettings": "EVERYONE"}}"#.into()).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("ingress_settings"), "{body}");

    // Reserved variables are refused as Cloud Run refuses them, and nothing is created.
    let source = upload(&url, exec_zip()).await;
    let reserved = json!({"buildConfig": {"runtime": "python312", "source": {"storageSource": source}},
                          "serviceConfig": {"environmentVariables": {"PORT": "1", "K_SERVICE": "x"}}});
    let (status, body) = post("functionId=ok-name", reserved.to_string()).await;
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("reserved env names") && message.contains("PORT"), "{message}");
    let (status, _) = get(format!("{url}/v2/{PARENT}/functions/ok-name")).await;
    assert_eq!(status, 404);

    // The upload target takes only application/zip, only on URLs it handed out.
    let r: Value =
        c.post(format!("{url}/v2/{PARENT}/functions:generateUploadUrl")).send().await.unwrap().json().await.unwrap();
    let wrong =
        c.put(r["uploadUrl"].as_str().unwrap()).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("SignatureDoesNotMatch"));
    let unknown = c
        .put(format!("{url}/upload/b/o.zip"))
        .header("content-type", "application/zip")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 403);
    emulator.shutdown().await;
}
