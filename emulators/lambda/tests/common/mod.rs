//! Helpers shared by the integration tests: an emulator on 127.0.0.1:0, an SDK client for it, and zips.
#![allow(dead_code)]

use std::io::Write;
use std::time::Duration;

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use faas_emulator_lambda::{Emulator, EmulatorOptions};

pub const ROLE: &str = "arn:aws:iam::123456789012:role/lambda-test";

pub async fn emulator(max_environments: usize) -> Emulator {
    faas_emulator_lambda::start(EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_environments,
        retry_base: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

/// The official aws-sdk-lambda, pointed at the emulator with dummy credentials and no retries.
pub fn client(emulator: &Emulator) -> aws_sdk_lambda::Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(emulator.url())
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// A zip of `(name, mode, contents)` entries.
pub fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, mode, data) in entries {
        out.start_file(*name, zip::write::SimpleFileOptions::default().unix_permissions(*mode)).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A zip whose `bootstrap` runs the `lambda_runtime` fixture binary (a function built with the official crate).
pub fn fixture_zip() -> Vec<u8> {
    let script = format!("#!/bin/sh\nexec '{}'\n", env!("CARGO_BIN_EXE_lambda-runtime-fixture"));
    zip_of(&[("bootstrap", 0o755, script.as_bytes())])
}

/// Creates a function running the fixture.
pub async fn create_fixture(client: &aws_sdk_lambda::Client, name: &str, timeout: i32) {
    client
        .create_function()
        .function_name(name)
        .role(ROLE)
        .runtime(Runtime::Providedal2023)
        .handler("fixture")
        .timeout(timeout)
        .environment(Environment::builder().variables("GREETING", "hello").build())
        .code(FunctionCode::builder().zip_file(Blob::new(fixture_zip())).build())
        .send()
        .await
        .expect("create function");
}

/// Status code and error code of an SDK error.
pub fn status_and_code<E>(
    err: &aws_sdk_lambda::error::SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> (u16, String)
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata,
{
    use aws_sdk_lambda::error::ProvideErrorMetadata;
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    (status, err.code().unwrap_or("").to_string())
}
