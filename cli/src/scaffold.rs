//! `faas new`: a project that builds standalone and serves with `faas dev`.

use std::path::{Path, PathBuf};

use faas_api::Error;
use serde_json::json;

use crate::args::NewArgs;
use crate::output::{CliResult, Output};

/// The `faas` crate of the checkout this command was built from.
pub const DEFAULT_FAAS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../faas");

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static",
    "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
    "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Names cargo refuses for a package or binary, and the names of the project's own dependencies.
const RESERVED: &[&str] = &[
    "test",
    "core",
    "std",
    "alloc",
    "proc_macro",
    "proc-macro",
    "deps",
    "examples",
    "build",
    "incremental",
    "con",
    "prn",
    "aux",
    "nul",
    "faas",
    "tokio",
    "serde",
    "serde_json",
    "serde-json",
];

/// Checks a project name: a valid function name ([`faas_api::validate_function_name`]) that is
/// also a valid cargo package name (no leading digit, not a Rust keyword, not a name cargo
/// reserves, not one of the project's dependencies).
///
/// ```
/// assert!(faas_cli::scaffold::validate_project_name("my-fn").is_ok());
/// assert!(faas_cli::scaffold::validate_project_name("1st").unwrap_err().message().contains("digit"));
/// assert!(faas_cli::scaffold::validate_project_name("fn").unwrap_err().message().contains("keyword"));
/// assert!(faas_cli::scaffold::validate_project_name("a/b").unwrap_err().message().contains("`/`"));
/// ```
pub fn validate_project_name(name: &str) -> Result<(), Error> {
    faas_api::validate_function_name(name)?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::bad_input(format!(
            "name `{name}` starts with a digit, which cargo does not allow in a package name"
        )));
    }
    if KEYWORDS.contains(&name) {
        return Err(Error::bad_input(format!(
            "name `{name}` is a Rust keyword; cargo does not allow it as a package name"
        )));
    }
    let lower = name.to_ascii_lowercase();
    let windows = (lower.starts_with("com") || lower.starts_with("lpt"))
        && lower.len() == 4
        && lower.as_bytes()[3].is_ascii_digit();
    if RESERVED.contains(&lower.as_str()) || windows {
        return Err(Error::bad_input(format!(
            "name `{name}` is reserved (by cargo, by the platform, or by the project's own dependencies); choose another"
        )));
    }
    Ok(())
}

/// The Rust identifier of the handler for function `name`.
///
/// ```
/// assert_eq!(faas_cli::scaffold::handler_ident("my-fn"), "my_fn");
/// assert_eq!(faas_cli::scaffold::handler_ident("main"), "main_handler");
/// ```
pub fn handler_ident(name: &str) -> String {
    let ident = name.to_ascii_lowercase().replace('-', "_");
    if ident == "main" || ident == "tests" || KEYWORDS.contains(&ident.as_str()) {
        format!("{ident}_handler")
    } else {
        ident
    }
}

/// The files of a new project, as (relative path, contents).
pub fn project_files(name: &str, faas_path: &Path) -> Vec<(&'static str, String)> {
    let ident = handler_ident(name);
    let faas_path = toml::Value::String(faas_path.display().to_string()).to_string();
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
faas = {{ path = {faas_path} }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}

# A project of its own, even when created inside another cargo workspace.
[workspace]
"#
    );
    let main = format!(
        r#"//! `{name}`, a faas function. Serve it locally with hot reload:
//!
//! ```sh
//! faas dev
//! faas invoke {name} --data '{{"name":"Ada"}}'
//! ```

use faas::{{App, Context, Error}};
use serde::{{Deserialize, Serialize}};

/// The request.
#[derive(Deserialize)]
struct Hello {{
    name: String,
}}

/// The reply.
#[derive(Serialize)]
struct Reply {{
    message: String,
}}

async fn {ident}(cx: Context, req: Hello) -> Result<Reply, Error> {{
    cx.logger().info(format!("greeting {{}}", req.name));
    Ok(Reply {{ message: format!("Hello, {{}}!", req.name) }})
}}

fn app() -> App {{
    App::new().function("{name}", {ident})
}}

#[tokio::main]
async fn main() -> Result<(), Error> {{
    faas::serve(app()).await
}}

#[cfg(test)]
mod tests {{
    #[tokio::test]
    async fn greets_by_name() {{
        let reply = super::app().call_json("{name}", &serde_json::json!({{"name": "Ada"}})).await.unwrap();
        assert_eq!(reply["message"], "Hello, Ada!");
    }}
}}
"#
    );
    let config = format!(
        r#"[app]
name = "{name}"

[functions.{name}]
timeout = "10s"
memory_mb = 128

[backends.dev]
kind = "local"
"#
    );
    vec![
        ("Cargo.toml", cargo),
        ("src/main.rs", main),
        ("faas.toml", config),
        (".gitignore", "/target\n/.faas\n".to_string()),
    ]
}

/// `faas new NAME`: creates `NAME/` (inside `--path`, else the current directory). Refuses an
/// invalid name or an existing non-empty directory, and leaves nothing behind on failure.
pub fn new_project(args: NewArgs, out: Output) -> CliResult {
    validate_project_name(&args.name)?;
    let parent = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    if !parent.is_dir() {
        return Err(Error::bad_input(format!("--path `{}` is not a directory", parent.display())).into());
    }
    let dir = parent.join(&args.name);
    let existed = dir.exists();
    if existed {
        if !dir.is_dir() {
            return Err(Error::bad_input(format!("`{}` already exists and is not a directory", dir.display())).into());
        }
        let non_empty = std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true);
        if non_empty {
            return Err(Error::bad_input(format!(
                "`{}` already exists and is not empty; choose another name or --path",
                dir.display()
            ))
            .into());
        }
    }
    let faas_path = args.faas_path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FAAS_PATH));
    let faas_path =
        faas_path.canonicalize().ok().filter(|p| p.join("Cargo.toml").is_file()).ok_or_else(|| {
            Error::bad_input(format!("no faas crate at `{}`; pass --faas-path DIR", faas_path.display()))
        })?;

    let write_all = || -> std::io::Result<Vec<&'static str>> {
        let mut written = vec![];
        for (rel, contents) in project_files(&args.name, &faas_path) {
            let path = dir.join(rel);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(&path, contents)?;
            written.push(rel);
        }
        // Pin the dependency versions of the faas checkout, so the first build reuses them.
        if let Some(lock) = faas_path.parent().map(|w| w.join("Cargo.lock")).filter(|l| l.is_file()) {
            std::fs::copy(lock, dir.join("Cargo.lock"))?;
            written.push("Cargo.lock");
        }
        Ok(written)
    };
    let files = match write_all() {
        Ok(f) => f,
        Err(e) => {
            if existed {
                for (rel, _) in project_files(&args.name, &faas_path) {
                    let _ = std::fs::remove_file(dir.join(rel));
                }
                let _ = std::fs::remove_file(dir.join("Cargo.lock"));
                let _ = std::fs::remove_dir(dir.join("src"));
            } else {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(Error::unavailable(format!("cannot create the project in `{}`: {e}", dir.display())).into());
        }
    };
    out.json_ok(json!({"name": args.name, "path": dir, "files": files}));
    out.say(format!("created `{}` in {}", args.name, dir.display()));
    out.say("next:");
    out.say(format!("  cd {}", dir.display()));
    out.say("  faas dev");
    out.say(format!("  faas invoke {} --data '{{\"name\":\"Ada\"}}'", args.name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_valid_toml_and_name_the_function() {
        let files = project_files("my-fn", Path::new("/x/faas"));
        let cargo: toml::Table = files[0].1.parse().unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some("my-fn"));
        assert_eq!(cargo["dependencies"]["faas"]["path"].as_str(), Some("/x/faas"));
        assert!(cargo.contains_key("workspace"));
        assert!(files[1].1.contains("App::new().function(\"my-fn\", my_fn)"));
        let config = faas_api::Config::parse(&files[2].1, "faas.toml").unwrap();
        assert_eq!(config.app.name, "my-fn");
        assert!(config.functions.contains_key("my-fn"));
        assert_eq!(config.backends["dev"].kind, "local");
    }

    #[test]
    fn reserved_and_invalid_names_are_refused() {
        for bad in ["", "a b", "-x", "9lives", "test", "self", "COM1", "faas", "serde_json", &"x".repeat(65)] {
            assert!(validate_project_name(bad).is_err(), "{bad} accepted");
        }
        for good in ["hello", "my-fn", "a_b2", "Greeter"] {
            assert!(validate_project_name(good).is_ok(), "{good} refused");
        }
    }
}
