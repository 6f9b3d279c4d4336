//! `--backend KIND` without a profile of that name: a kind of this build is that kind with the
//! platform's usual defaults (for `lambda`, the region from AWS_REGION/AWS_DEFAULT_REGION), as
//! `local` always was; anything else is unknown,
//! listing the profiles and the kinds. No AWS call is made here: the AWS variables are cleared and
//! the instance metadata service is disabled, and every failure comes before any client is built.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// `faas ARGS` in `dir` with no AWS configuration at all (`HOME` is `home`, so no ~/.aws either).
fn faas_without_aws(dir: &Path, home: Option<&Path>, args: &[&str]) -> Command {
    let mut cmd = faas_cmd(dir, args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(home) = home {
        cmd.env("HOME", home);
    }
    cmd
}

#[test]
fn conformance_against_the_bare_lambda_kind_names_what_it_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("matrix");
    let args = ["conformance", "--backend", "lambda", "--out", out_dir.to_str().unwrap(), "--json"];
    let o = faas_without_aws(tmp.path(), Some(tmp.path()), &args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&o);
    let message = v["error"]["errorMessage"].as_str().unwrap();
    assert!(!message.contains("unknown backend profile"), "{v}");
    assert_eq!(
        message,
        "the implicit `lambda` profile (faas.toml has no [backends.lambda]): key `backends.lambda.region`: \
         required for a `lambda` backend (e.g. \"us-east-1\")",
        "{v}"
    );
    assert!(v["hint"].as_str().unwrap().contains("AWS_REGION"), "{v}");
    assert!(!out_dir.exists(), "nothing is written");

    // With the region from the environment, as the AWS CLI takes it, what is left is the role.
    let o =
        faas_without_aws(tmp.path(), Some(tmp.path()), &args).env("AWS_DEFAULT_REGION", "eu-west-1").output().unwrap();
    let v = json(&o);
    let message = v["error"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("key `backends.lambda.role`: required"), "{v}");
    assert!(v["hint"].as_str().unwrap().contains("define [backends.lambda] in faas.toml"), "{v}");
}

#[test]
fn unknown_kinds_are_named_with_every_kind_of_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let o = faas(tmp.path(), &["deploy", "--backend", "nimbus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "unknown backend profile `nimbus`; faas.toml defines: none; backend kinds: azure, gcf, lambda, local, openwhisk"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn build_for_the_bare_lambda_kind_writes_the_zip_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let project = new_project(tmp.path(), "zipped");
    // HOME is kept: cargo and rustup live there.
    let o = faas_without_aws(&project, None, &["build", "--backend", "lambda", "--json"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!((v["backend"].as_str(), v["kind"].as_str()), (Some("lambda"), Some("lambda")), "{v}");
    let artifact = Path::new(v["artifact"].as_str().unwrap());
    assert_eq!(artifact.extension().and_then(|e| e.to_str()), Some("zip"), "{v}");
    let zip = std::fs::read(artifact).unwrap();
    assert_eq!(v["size"].as_u64(), Some(zip.len() as u64), "{v}");
    assert!(zip.starts_with(b"PK\x03\x04"), "a zip");
    assert!(zip.windows(9).any(|w| w == b"bootstrap"), "holding bootstrap");
    let sha = v["codeSha256"].as_str().unwrap();
    assert_eq!(sha.len(), 44, "base64 of a SHA-256, as Lambda's CodeSha256: {v}");
    assert_eq!(v["functions"], serde_json::json!(["zipped"]), "{v}");
}
