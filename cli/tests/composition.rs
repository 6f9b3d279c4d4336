//! Compositions through the `faas` command: `faas plan` reads the composition from the app's
//! manifest, and under `faas dev` a composition is invoked, logged and recorded as a function.
//! The app is examples/checkout, built as a new project.

mod common;

use std::time::Duration;

use common::*;

const CHECKOUT: &str = include_str!("../../examples/checkout/src/main.rs");
const PAID: &str = r#"{"order":{"items":[{"sku":"tea","qty":2,"cents":450}],"card":"4242"},"token":"tok_1"}"#;

#[test]
fn a_composition_is_planned_invoked_and_recorded_like_a_function() {
    let tmp = tempfile::tempdir().unwrap();
    let project = new_project(tmp.path(), "shop");
    std::fs::write(project.join("src").join("main.rs"), CHECKOUT).unwrap();
    // `faas new` configured its one function, `shop`; this app has others.
    std::fs::write(project.join("faas.toml"), "[app]\nname = \"shop\"\n").unwrap();

    // The plan: every step is a function of the app, so a run is one invocation.
    let o = faas(&project, &["plan", "checkout", "--json"]);
    let plan = json(&o);
    assert_eq!(plan["ok"], true, "{plan}\n{}", stderr(&o));
    assert_eq!(plan["oneInvocation"], true, "{plan}");
    let steps: Vec<(String, String, String)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("placement"), text("path"), text("function"))
        })
        .collect();
    let step = |p: &str, path: &str, f: &str| (p.to_string(), path.to_string(), f.to_string());
    assert_eq!(
        steps,
        [
            step("fused", "/program/body/steps/0", "validate"),
            step("fused", "/program/body/steps/1/then", "review"),
            step("fused", "/program/body/steps/2/body/body", "charge"),
            step("backoff", "/program/body/steps/2/body", ""),
            step("fused", "/program/body/steps/3/branches/0", "receipt"),
            step("fused", "/program/body/steps/3/branches/1", "notify"),
        ]
    );
    let o = faas(&project, &["plan", "checkout"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("plan of `checkout` (app `shop`, backend `local`): one invocation"), "{text}");
    assert!(text.contains("fused      /program/body/steps/0"), "{text}");
    // Not a composition, and no such composition: named.
    let o = faas(&project, &["plan", "charge", "--json"]);
    assert_eq!(json(&o)["error"]["kind"], "bad_input");
    assert!(stdout(&o).contains("`charge` is a function of `shop`, not a composition"), "{}", stdout(&o));
    let o = faas(&project, &["plan", "refund", "--json"]);
    assert_eq!(json(&o)["error"]["kind"], "not_found");
    assert!(stdout(&o).contains("its compositions: checkout"), "{}", stdout(&o));
    // Unfused, every call is invoked through the backend: `--no-fuse`, or `FAAS_FUSE=off` in
    // the composition's environment in faas.toml; a value that is neither is named.
    let o = faas(&project, &["plan", "checkout", "--no-fuse", "--json"]);
    let plan = json(&o);
    assert_eq!((plan["fused"].as_bool(), plan["oneInvocation"].as_bool()), (Some(false), Some(false)), "{plan}");
    let placements: Vec<&str> =
        plan["steps"].as_array().unwrap().iter().map(|s| s["placement"].as_str().unwrap()).collect();
    assert_eq!(placements, ["invoked", "invoked", "invoked", "backoff", "invoked", "invoked"], "{plan}");
    std::fs::write(
        project.join("faas.toml"),
        "[app]\nname = \"shop\"\n\n[functions.checkout]\nenv = { FAAS_FUSE = \"off\" }\n",
    )
    .unwrap();
    let o = faas(&project, &["plan", "checkout"]);
    let text = stdout(&o);
    assert!(
        text.contains("backend `local`, unfused): 6 of 6 steps keep the composition's invocation waiting"),
        "{text}"
    );
    assert!(text.contains("validate (unfused: invoked through the backend while the run waits)"), "{text}");
    std::fs::write(
        project.join("faas.toml"),
        "[app]\nname = \"shop\"\n\n[functions.checkout]\nenv = { FAAS_FUSE = \"maybe\" }\n",
    )
    .unwrap();
    let o = faas(&project, &["plan", "checkout", "--json"]);
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "bad_input", "{v}");
    assert_eq!(v["error"]["errorMessage"], "composition `checkout`: FAAS_FUSE is `maybe`: give `on` or `off`", "{v}");
    std::fs::write(project.join("faas.toml"), "[app]\nname = \"shop\"\n").unwrap();

    // Under `faas dev`, the composition is a function: invoked, its steps' logs in its activation.
    let mut server = DevServer::start(&project, &["dev", "--port", "0"]);
    let info_path = project.join(".faas").join("dev.json");
    wait_for("dev.json", Duration::from_secs(20 * 60), &mut server, |_| std::fs::read(&info_path).ok());
    let o = faas(&project, &["invoke", "checkout", "--data", PAID]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), server.output());
    assert_eq!(stdout(&o).trim(), r#"[{"receipt":"paid for 900 cents"},{"notified":true}]"#);
    let o = faas(&project, &["invoke", "checkout", "--data", PAID, "--logs", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}");
    let logs = v["logs"].to_string();
    assert!(logs.contains("charged 900 cents with a token of 5 characters"), "{v}");
    let activation = v["activationId"].as_str().unwrap().to_string();
    let o = faas(&project, &["activations", "--json"]);
    let list = json(&o);
    let record = list["activations"].as_array().unwrap().iter().find(|a| a["id"] == activation.as_str());
    let record = record.unwrap_or_else(|| panic!("activation {activation} in {list}"));
    assert_eq!(
        (record["function"].as_str(), record["status"].as_str()),
        (Some("checkout"), Some("success")),
        "{record}"
    );
    // A step's error is the composition's error, as a function's would be.
    let empty = r#"{"order":{"items":[],"card":"4242"},"token":"t"}"#;
    let o = faas(&project, &["invoke", "checkout", "--data", empty, "--json"]);
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "bad_input", "{v}");
    assert_eq!(v["error"]["errorMessage"], "an order needs at least one item", "{v}");

    // Conducted by the project's gateway: `faas deploy` registers the app's functions and
    // compositions with it while it runs, and `faas runs` starts, follows, lists, shows and
    // cancels runs, each step a separate invocation through the local backend.
    let o = faas(&project, &["runs", "--json"]);
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "not_found", "{v}");
    assert!(v["hint"].as_str().unwrap().contains("faas gateway"), "{v}");
    let mut gateway = DevServer::start(&project, &["gateway", "--port", "0"]);
    let gateway_json = project.join(".faas").join("gateway.json");
    wait_for("gateway.json", Duration::from_secs(60), &mut gateway, |_| std::fs::read(&gateway_json).ok());
    let o = faas(&project, &["deploy", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}\n{}", stderr(&o));
    assert_eq!(v["gateway"]["compositions"], serde_json::json!(["checkout"]), "{v}");
    assert_eq!(v["gateway"]["problems"], serde_json::json!([]), "{v}");
    let functions = v["gateway"]["functions"].to_string();
    for f in ["validate", "review", "charge", "receipt", "notify", "checkout"] {
        assert!(functions.contains(&format!("\"{f}\"")), "{f} routed: {v}");
    }
    let o = faas(&project, &["runs", "start", "checkout", "--data", PAID, "--id", "order-1", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}\n{}\n{}", stderr(&o), gateway.output());
    assert_eq!(v["result"], serde_json::json!([{"receipt": "paid for 900 cents"}, {"notified": true}]), "{v}");
    let steps: Vec<&str> =
        v["run"]["history"].as_array().unwrap().iter().map(|s| s["function"].as_str().unwrap()).collect();
    assert_eq!(steps, ["validate", "charge", "receipt", "notify"], "{v}");
    let o = faas(&project, &["runs", "start", "checkout", "--data", PAID]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), r#"[{"receipt":"paid for 900 cents"},{"notified":true}]"#);
    // A step's error fails the run and the command, as an invocation's would.
    let o = faas(&project, &["runs", "start", "checkout", "--data", empty, "--json"]);
    assert!(!o.status.success());
    let v = json(&o);
    assert_eq!(v["error"]["errorMessage"], "an order needs at least one item", "{v}");
    assert!(v["hint"].as_str().unwrap().contains("faas runs show"), "{v}");
    let o = faas(&project, &["runs", "start", "checkout", "--data", "{not json", "--json"]);
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "bad_input", "{v}");
    assert!(v["error"]["errorMessage"].as_str().unwrap().contains("--data is not JSON"), "{v}");
    let o = faas(&project, &["runs", "start", "refund", "--json"]);
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "not_found", "{v}");
    assert!(v["hint"].as_str().unwrap().contains("faas deploy"), "{v}");

    let o = faas(&project, &["runs", "list", "--json"]);
    let v = json(&o);
    assert_eq!(v["runs"].as_array().unwrap().len(), 3, "{v}");
    let o = faas(&project, &["runs", "list", "--status", "failed", "--json"]);
    assert_eq!(json(&o)["runs"].as_array().unwrap().len(), 1);
    let o = faas(&project, &["runs"]);
    let table = stdout(&o);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("order-1") && table.contains("succeeded"), "{table}");
    assert!(table.contains("bad_input: an order needs at least one item"), "{table}");
    let o = faas(&project, &["runs", "show", "order-1"]);
    let text = stdout(&o);
    assert!(text.contains("status       succeeded"), "{text}");
    assert!(text.contains("charge") && text.contains("notify"), "{text}");
    let o = faas(&project, &["runs", "cancel", "order-1"]);
    assert!(stdout(&o).contains("had already ended: succeeded"), "{}", stdout(&o));
    let o = faas(&project, &["runs", "show", "nope", "--json"]);
    assert_eq!(json(&o)["error"]["kind"], "not_found");
    drop(gateway);
    drop(server);

    // `faas dev --no-fuse`: the same answer, each step an invocation (and an activation) of its
    // own while the composition's waits.
    let mut server = DevServer::start(&project, &["dev", "--port", "0", "--no-fuse", "--no-watch"]);
    wait_for("dev.json", Duration::from_secs(20 * 60), &mut server, |_| std::fs::read(&info_path).ok());
    let o = faas(&project, &["invoke", "checkout", "--data", PAID, "--json"]);
    let v = json(&o);
    assert_eq!(
        v["result"],
        serde_json::json!([{"receipt": "paid for 900 cents"}, {"notified": true}]),
        "{v}\n{}",
        server.output()
    );
    let run = v["activationId"].as_str().unwrap().to_string();
    let o = faas(&project, &["activations", "--json"]); // newest first: this run's five
    let list = json(&o);
    let recent = &list["activations"].as_array().unwrap()[..5];
    let mut functions: Vec<&str> = recent.iter().map(|a| a["function"].as_str().unwrap()).collect();
    functions.sort_unstable();
    assert_eq!(functions, ["charge", "checkout", "notify", "receipt", "validate"], "{list}");
    // Each step's record names the composition's activation as its cause, and bills its time.
    for a in recent.iter().filter(|a| a["function"] != "checkout") {
        assert_eq!(a["cause"], run.as_str(), "{a}");
        assert!(a["billed_us"].as_u64().unwrap() > 0, "{a}");
    }

    // A step naming a function that exists nowhere, and compositions calling each other in a
    // cycle, are refused at deploy time, each named, before anything is deployed.
    let broken = CHECKOUT.replace(
        ".composition(\"checkout\", checkout())",
        ".composition(\"checkout\", checkout()).composition(\"lost\", seq([call(\"validate\"), call(\"nowhere\")])).composition(\"ping\", call(\"pong\")).composition(\"pong\", call(\"ping\"))",
    );
    assert_ne!(broken, CHECKOUT);
    std::fs::write(project.join("src").join("main.rs"), broken).unwrap();
    let o = faas(&project, &["deploy", "--json"]);
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "bad_input", "{v}");
    let message = v["error"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("composition `lost` calls `nowhere` (/program/steps/1), which is neither a function of this app nor deployed there"),
        "{message}"
    );
    assert!(message.contains("compositions call each other in a cycle: ping → pong → ping"), "{message}");
}
