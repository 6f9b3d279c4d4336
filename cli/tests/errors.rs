//! Bad input to the `faas` command: each case exits 1 (or 2 for usage) with an error naming the
//! problem, and changes nothing. No cargo builds here.

mod common;

use common::*;

#[test]
fn new_refuses_bad_names_and_existing_directories() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, expected) in [
        ("a/b", "contains `/`"),
        ("9lives", "starts with a digit"),
        ("fn", "Rust keyword"),
        ("test", "reserved"),
        ("_x", "must start with a letter or digit"),
    ] {
        let o = faas(tmp.path(), &["new", name]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{name}: {}", stderr(&o));
    }
    let long = "x".repeat(65);
    let o = faas(tmp.path(), &["new", &long, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "bad_input");
    assert!(v["error"]["errorMessage"].as_str().unwrap().contains("the limit is 64"), "{v}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "a refused name creates nothing");

    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken").join("notes.txt"), "mine").unwrap();
    let o = faas(tmp.path(), &["new", "taken"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists and is not empty"), "{}", stderr(&o));
    let entries: Vec<_> = std::fs::read_dir(tmp.path().join("taken")).unwrap().collect();
    assert_eq!(entries.len(), 1, "the existing directory is left as it was");

    std::fs::write(tmp.path().join("afile"), "x").unwrap();
    let o = faas(tmp.path(), &["new", "afile"]);
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
}

#[test]
fn new_writes_a_standalone_project() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("empty-ok")).unwrap();
    let o = faas(tmp.path(), &["new", "empty-ok", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["ok"], true);
    let dir = tmp.path().join("empty-ok");
    let cargo: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().parse().unwrap();
    assert_eq!(cargo["package"]["name"].as_str(), Some("empty-ok"));
    assert!(cargo.contains_key("workspace"), "builds standalone inside another workspace");
    let faas_path = std::path::PathBuf::from(cargo["dependencies"]["faas"]["path"].as_str().unwrap());
    assert!(faas_path.join("Cargo.toml").is_file(), "{}", faas_path.display());
    for dep in ["tokio", "serde", "serde_json"] {
        assert!(cargo["dependencies"].get(dep).is_some(), "{dep}");
    }
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    assert!(main.contains("faas::serve(app())"), "{main}");
    assert!(main.contains(".function(\"empty-ok\", empty_ok)"), "{main}");
    let config = faas_api::Config::load(&dir.join("faas.toml")).unwrap();
    assert_eq!(config.app.name, "empty-ok");
    assert!(config.functions["empty-ok"].timeout.is_some());
    assert_eq!(config.backends["dev"].kind, "local");
    assert!(std::fs::read_to_string(dir.join(".gitignore")).unwrap().contains("/target"));

    let o = faas(tmp.path(), &["new", "x", "--faas-path", "/nonexistent/faas"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no faas crate at `/nonexistent/faas`"), "{}", stderr(&o));
    assert!(!tmp.path().join("x").exists());
}

fn project_with(config: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("faas.toml"), config).unwrap();
    tmp
}

#[test]
fn an_invalid_faas_toml_is_reported_with_file_line_and_key() {
    let tmp = project_with("[app]\nname = \"greeter\"\n\n[functions.hello]\ntimeout = 10\n");
    for args in [&["list"][..], &["invoke", "hello", "--data", "{}"], &["dev", "--port", "0"], &["deploy"]] {
        let o = faas(tmp.path(), args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("faas.toml:5: key `functions.hello.timeout`"), "{args:?}: {err}");
        assert!(err.starts_with("error: bad_input:"), "{err}");
    }
    assert!(!tmp.path().join(".faas").exists(), "nothing was started or written");

    let o = faas(tmp.path(), &["list", "--json"]);
    let v = json(&o);
    assert_eq!(v["error"]["errorType"], "InvalidConfig");
    assert!(v["error"]["errorMessage"].as_str().unwrap().contains("faas.toml:5: key `functions.hello.timeout`"));

    let tmp = project_with("[app]\nname = \"greeter\"\n[backends.dev]\nkind = \"local\"\ntoken = \"hunter2\"\n");
    let o = faas(tmp.path(), &["list"]);
    assert!(stderr(&o).contains("faas.toml:5: key `backends.dev.token`"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hunter2"), "secrets are never printed");
}

#[test]
fn backend_selection_errors_name_the_problem() {
    let tmp = project_with(
        "[app]\nname = \"greeter\"\ndefault_backend = \"dev\"\n[backends.dev]\nkind = \"local\"\n\
         [backends.prod]\nkind = \"azure\"\n[backends.odd]\nkind = \"nimbus\"\n",
    );
    let o = faas(tmp.path(), &["list", "--backend", "staging"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown backend profile `staging`"), "{}", stderr(&o));
    assert!(stderr(&o).contains("defines: dev, odd, prod"), "{}", stderr(&o));

    let o = faas_cmd(tmp.path(), &["invoke", "hello", "--json"]).env("FAAS_BACKEND", "staging").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(json(&o)["error"]["errorMessage"].as_str().unwrap().contains("unknown backend profile `staging`"));

    let o = faas(tmp.path(), &["invoke", "hello", "--backend", "prod"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("faas.toml:6: key `backends.prod.subscription`: required"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("or give `endpoint`, a local Functions host: `faas dev --emulate azure`"),
        "{}",
        stderr(&o)
    );

    let o = faas(tmp.path(), &["list", "--backend", "odd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown backend kind `nimbus`"), "{}", stderr(&o));
    assert!(stderr(&o).contains("local"), "lists the known kinds: {}", stderr(&o));

    let o = faas(tmp.path(), &["dev", "--backend", "prod"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("`faas dev` serves the local backend"), "{}", stderr(&o));

    let o = faas(tmp.path(), &["conformance", "--backend", "prod"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("key `backends.prod.subscription`: required"), "{}", stderr(&o));
}

#[test]
fn invoke_without_a_server_is_unavailable_with_a_hint() {
    let port = free_port();
    let tmp = project_with(&format!(
        "[app]\nname = \"greeter\"\n[backends.dev]\nkind = \"local\"\nendpoint = \"http://127.0.0.1:{port}\"\n"
    ));
    let o = faas(tmp.path(), &["invoke", "hello", "--data", "{\"name\":\"Ada\"}"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("error: backend_unavailable:"), "{err}");
    assert!(err.contains(&port.to_string()), "names the address: {err}");
    assert!(err.contains("hint: start the dev server with `faas dev`"), "{err}");

    let o = faas(tmp.path(), &["list", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "backend_unavailable");
    assert!(v["hint"].as_str().unwrap().contains("faas dev"));
}

#[test]
fn invoke_checks_its_input_before_sending() {
    let tmp = project_with("[app]\nname = \"greeter\"\n");
    let o = faas(tmp.path(), &["invoke", "bad/name"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("contains `/`"), "{}", stderr(&o));
    let o = faas(tmp.path(), &["invoke", "hello", "--data", "{}", "--file", "x.json"]);
    assert_eq!(o.status.code(), Some(2), "--data and --file conflict: {}", stderr(&o));
    let o = faas(tmp.path(), &["logs", "hello", "--limit", "0", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json(&o)["error"]["errorType"], "Usage");
    let o = faas(tmp.path(), &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = faas(tmp.path(), &["--dir", "/nonexistent/project", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("project directory `/nonexistent/project` does not exist"), "{}", stderr(&o));
}

/// A `.faas/dev.json` as `faas dev` writes it.
fn write_dev_json(project: &std::path::Path, pid: u32, url: &str) {
    std::fs::create_dir_all(project.join(".faas")).unwrap();
    let info = serde_json::json!({"url": url, "token": "0123456789abcdef0123456789abcdef", "pid": pid});
    std::fs::write(project.join(".faas").join("dev.json"), info.to_string()).unwrap();
}

#[test]
fn a_stale_dev_json_is_reported_with_its_pid_and_url() {
    let tmp = project_with("[app]\nname = \"greeter\"\n");
    let url = format!("http://127.0.0.1:{}", free_port());
    // A process that has exited (and been reaped).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = gone.id();
    write_dev_json(tmp.path(), dead, &url);
    let o = faas(tmp.path(), &["invoke", "greeter", "--data", "{}"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error: backend_unavailable: the `faas dev` server recorded in .faas/dev.json (pid {dead}, {url}) is not running (no process {dead} exists); start it with `faas dev`"
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: run `faas dev` in the project directory; it replaces the stale .faas/dev.json"),
        "{err}"
    );
    let v = json(&faas(tmp.path(), &["activations", "--json"]));
    assert_eq!(v["error"]["errorType"], "DevServerNotRunning", "{v}");

    // The pid is alive (this test) but nothing answers at the URL: still not that server.
    write_dev_json(tmp.path(), std::process::id(), &url);
    let o = faas(tmp.path(), &["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("(pid {}, {url}) is not running (nothing answers at {url})", std::process::id())),
        "{}",
        stderr(&o)
    );

    // A profile that names another server is not about dev.json: the plain "unreachable" error.
    let port = free_port();
    std::fs::write(
        tmp.path().join("faas.toml"),
        format!("[app]\nname = \"greeter\"\n[backends.dev]\nkind = \"local\"\nport = {port}\n"),
    )
    .unwrap();
    let o = faas(tmp.path(), &["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("dev.json"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&port.to_string()), "{}", stderr(&o));
}

#[test]
fn invoke_names_a_missing_request_file_before_contacting_a_backend() {
    let tmp = project_with("[app]\nname = \"greeter\"\n");
    let o = faas(tmp.path(), &["invoke", "greeter", "--file", "nope.json", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "bad_input", "{v}");
    assert!(v["error"]["errorMessage"].as_str().unwrap().starts_with("--file nope.json: cannot read it"), "{v}");
    let o = faas(tmp.path(), &["invoke", "greeter", "--file", "."]);
    assert!(stderr(&o).contains("--file .: not a file"), "{}", stderr(&o));
}
