//! A child started by the pool gets a cleared environment: it never sees a platform's variables
//! of the process that runs the pool (here `AWS_LAMBDA_RUNTIME_API` and `PORT`, as when `faas dev`
//! itself runs inside a Lambda-like or Cloud Run-like shell), so it cannot take itself for that
//! host. Its own file: the variables are set before any thread of the test starts.

use std::path::PathBuf;

use faas_api::{AppSpec, Config, InvokeRequest, NoProgress, Payload, Runner};
use faas_runner_local::{LocalOptions, LocalRunner};
use serde_json::{Value, json};

#[test]
fn a_child_does_not_see_the_platform_variables_of_its_parent() {
    // SAFETY: set before the runtime (and any other thread of this test binary's only test) starts.
    unsafe {
        std::env::set_var("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        std::env::set_var("PORT", "8080");
        std::env::set_var("FAAS_DESCRIBE", "1");
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let fixture = PathBuf::from(env!("CARGO_BIN_EXE_faas-local-fixture"));
        let runner = LocalRunner::new(LocalOptions::default()).unwrap();
        let manifest = faas_packaging::build::describe(&fixture).await.unwrap();
        let mut spec = AppSpec::from_parts(&Config::default_for("fixture"), fixture, manifest).unwrap();
        for f in &mut spec.functions {
            f.env.insert("GREETING".into(), "hello".into());
        }
        let package = runner.package(&spec, &NoProgress).await.unwrap();
        runner.deploy(&package, &NoProgress).await.unwrap();
        let var = |key: &'static str| {
            let runner = runner.clone();
            async move {
                let input = Payload::json(&json!({ "key": key })).unwrap();
                let out = runner.invoke(InvokeRequest::new("env", input)).await.expect("the child serves");
                serde_json::from_slice::<Value>(out.payload.body()).unwrap()["value"].clone()
            }
        };
        // The child served the call, so it ran as a local child (FAAS_DESCRIBE would have made it
        // print its manifest and exit), and it sees none of the three.
        assert_eq!(var("AWS_LAMBDA_RUNTIME_API").await, Value::Null);
        assert_eq!(var("PORT").await, Value::Null);
        assert_eq!(var("FAAS_DESCRIBE").await, Value::Null);
        assert_eq!(var("GREETING").await, json!("hello"));
        assert!(var("PATH").await.is_string(), "the base environment is kept");
        runner.shutdown().await;
    });
}
