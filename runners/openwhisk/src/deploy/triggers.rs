//! The app's CloudEvent subscriptions as OpenWhisk triggers and rules (apache/openwhisk
//! `docs/triggers_rules.md`): one trigger per distinct filter of the app, one rule per function
//! subscribed to it, so that firing the trigger (`wsk trigger fire`, a feed, an alarm) with a
//! structured CloudEvent as its parameters activates every subscribed action, OpenWhisk's own
//! fan-out.
//!
//! - A trigger is named after the filter: `{app}-{type}` for a filter on an exact type only,
//!   else `{app}-{type prefix or "all"}-{8 hex digits of the filter's digest}` ([`trigger_name`]);
//!   it is annotated `faas:app` and `faas:filter` (the filter as JSON). OpenWhisk applies no
//!   filter: the trigger's name says what it is for, and the event gateway remains the router
//!   that matches source and subject.
//! - A rule is named `{trigger}-to-{function}`, annotated `faas:app` and `faas:function`.
//!
//! A deploy makes the namespace hold exactly the app's triggers and rules: missing ones are
//! created, changed ones overwritten, those of the app that it no longer declares deleted (rules
//! first). Entities of the same name that are not the app's are never taken over: the deploy is
//! refused before anything is sent.

use std::collections::{BTreeMap, BTreeSet};

use faas_api::{Error, EventFilter, FunctionSpec, Progress, Trigger};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::client::Client;
use super::{APP_ANNOTATION, FUNCTION_ANNOTATION};
use crate::wire;

/// The annotation holding a trigger's filter.
pub const FILTER_ANNOTATION: &str = "faas:filter";
/// OpenWhisk's longest entity name (`EntityName.ENTITY_NAME_MAX_LENGTH`).
const MAX_NAME: usize = 256;

/// A name made of `text` that OpenWhisk takes (`EntityName`: word characters, `@`, `.`, `-` and
/// spaces, not starting or ending with a space or a dot).
fn entity_name(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || "_@.-".contains(c) { c } else { '_' }).collect();
    let cleaned = cleaned.trim_matches(|c| c == '.' || c == '-').to_string();
    if cleaned.len() <= MAX_NAME {
        return cleaned;
    }
    let digest = &faas_packaging::sha256_hex(text.as_bytes())[..8];
    format!("{}-{digest}", &cleaned[..MAX_NAME - 9])
}

/// The trigger of `filter` in `app`.
///
/// ```
/// use faas_api::EventFilter;
/// use faas_runner_openwhisk::deploy::trigger_name;
/// assert_eq!(trigger_name("shop", &EventFilter::new().event_type("order.created")), "shop-order.created");
/// let wild = trigger_name("shop", &EventFilter::new().event_type("order.*"));
/// assert!(wild.starts_with("shop-order-") && wild.len() == "shop-order-".len() + 8, "{wild}");
/// assert!(trigger_name("shop", &EventFilter::new()).starts_with("shop-all-"));
/// ```
pub fn trigger_name(app: &str, filter: &EventFilter) -> String {
    match (&filter.event_type, &filter.source, &filter.subject) {
        (Some(t), None, None) if !t.ends_with('*') => entity_name(&format!("{app}-{t}")),
        (t, _, _) => {
            let prefix = t.as_deref().map(|t| t.trim_end_matches('*').trim_end_matches('.')).filter(|t| !t.is_empty());
            let filter_json = serde_json::to_string(filter).expect("JSON");
            let digest = &faas_packaging::sha256_hex(filter_json.as_bytes())[..8];
            let base = entity_name(&format!("{app}-{}", prefix.unwrap_or("all")));
            let base = &base[..base.len().min(MAX_NAME - 9)];
            format!("{base}-{digest}")
        }
    }
}

fn rule_name(trigger: &str, function: &str) -> String {
    entity_name(&format!("{trigger}-to-{function}"))
}

/// What the app declares: its triggers with their filters, its rules with (trigger, function).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Declared {
    triggers: BTreeMap<String, EventFilter>,
    rules: BTreeMap<String, (String, String)>,
}

impl Declared {
    pub(crate) fn of(app: &str, functions: &[FunctionSpec]) -> Declared {
        let mut declared = Declared::default();
        for f in functions {
            for t in &f.triggers {
                if let Trigger::Event { filter } = t {
                    let trigger = trigger_name(app, filter);
                    declared.rules.insert(rule_name(&trigger, &f.name), (trigger.clone(), f.name.clone()));
                    declared.triggers.insert(trigger, filter.clone());
                }
            }
        }
        declared
    }
}

fn annotation<'a>(entity: &'a Value, key: &str) -> Option<&'a Value> {
    entity["annotations"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

fn owned_by(entity: &Value, app: &str) -> bool {
    annotation(entity, APP_ANNOTATION).and_then(Value::as_str) == Some(app)
}

/// The triggers and rules of the namespace, read once.
pub(crate) struct Existing {
    triggers: BTreeMap<String, Value>,
    rules: BTreeMap<String, Value>,
}

impl Existing {
    pub(crate) async fn read(client: &Client) -> Result<Existing, Error> {
        let by_name = |list: Vec<Value>| -> BTreeMap<String, Value> {
            list.into_iter().filter_map(|e| Some((e["name"].as_str()?.to_string(), e))).collect()
        };
        Ok(Existing {
            triggers: by_name(client.list_all("triggers").await?),
            rules: by_name(client.list_all("rules").await?),
        })
    }

    /// Refuses a declared name that another app or a user already holds.
    pub(crate) fn check(&self, app: &str, declared: &Declared) -> Result<(), Error> {
        let taken = |kind: &str, name: &str, entity: Option<&Value>| match entity {
            Some(e) if !owned_by(e, app) => Err(Error::bad_input(format!(
                "a {kind} named `{name}` exists and is not the app `{app}`'s (no `{APP_ANNOTATION}` annotation \
                 naming it); delete or rename it, then deploy again"
            ))
            .with_type("NameTaken")),
            _ => Ok(()),
        };
        for name in declared.triggers.keys() {
            taken("trigger", name, self.triggers.get(name))?;
        }
        for name in declared.rules.keys() {
            taken("rule", name, self.rules.get(name))?;
        }
        Ok(())
    }
}

/// Makes the namespace hold exactly the `declared` triggers and rules of `app`.
pub(crate) async fn sync(
    client: &Client,
    app: &str,
    declared: &Declared,
    existing: &Existing,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let ns = &client.settings().namespace;
    for (name, filter) in &declared.triggers {
        let filter_json = serde_json::to_value(filter).expect("JSON");
        if existing.triggers.get(name).and_then(|t| annotation(t, FILTER_ANNOTATION)) == Some(&filter_json) {
            continue;
        }
        progress.step(&format!("creating trigger {name}"));
        let body = json!({
            "name": name,
            "annotations": [{"key": APP_ANNOTATION, "value": app}, {"key": FILTER_ANNOTATION, "value": filter_json}],
            "parameters": [],
            "publish": false,
        });
        let path = format!("triggers/{}?overwrite=true", wire::url_path(name));
        client
            .expect(Method::PUT, &path, Some(body.to_string().into_bytes()), &format!("creating trigger `{name}`"))
            .await?;
    }
    for (name, (trigger, function)) in &declared.rules {
        let action = client.settings().action_name(function);
        if let Some(rule) = existing.rules.get(name) {
            let same = rule["trigger"]["name"] == trigger.as_str()
                && rule["action"]["name"] == function.as_str()
                && rule["action"]["path"].as_str().map(|p| p.split_once('/').map(|(_, pkg)| pkg))
                    == Some(client.settings().package.as_deref())
                && rule["status"] == "active";
            if same {
                continue;
            }
        }
        progress.step(&format!("creating rule {name}: {trigger} → {action}"));
        let body = json!({
            "name": name,
            "trigger": format!("/{ns}/{trigger}"),
            "action": format!("/{ns}/{action}"),
            "status": "active",
            "annotations": [{"key": APP_ANNOTATION, "value": app}, {"key": FUNCTION_ANNOTATION, "value": function}],
            "publish": false,
        });
        let path = format!("rules/{}?overwrite=true", wire::url_path(name));
        client
            .expect(Method::PUT, &path, Some(body.to_string().into_bytes()), &format!("creating rule `{name}`"))
            .await?;
    }
    let stale_rules = existing.rules.iter().filter(|(n, r)| owned_by(r, app) && !declared.rules.contains_key(*n));
    for (name, _) in stale_rules {
        progress.step(&format!("deleting rule {name}: the app no longer declares it"));
        delete(client, "rules", name).await?;
    }
    let stale_triggers =
        existing.triggers.iter().filter(|(n, t)| owned_by(t, app) && !declared.triggers.contains_key(*n));
    for (name, _) in stale_triggers {
        progress.step(&format!("deleting trigger {name}: the app no longer declares it"));
        delete(client, "triggers", name).await?;
    }
    Ok(())
}

/// Deletes the rules that activate `function` (the action `action`), and then each faas trigger
/// they were on that no rule uses any more.
pub(crate) async fn remove_function(client: &Client, function: &str) -> Result<(), Error> {
    let existing = Existing::read(client).await?;
    let package = client.settings().package.as_deref();
    let mut freed = BTreeSet::new();
    for (name, rule) in &existing.rules {
        let ours = annotation(rule, FUNCTION_ANNOTATION).and_then(Value::as_str) == Some(function)
            && rule["action"]["name"] == function
            && rule["action"]["path"].as_str().map(|p| p.split_once('/').map(|(_, pkg)| pkg)) == Some(package);
        if ours {
            delete(client, "rules", name).await?;
            freed.insert(rule["trigger"]["name"].as_str().unwrap_or_default().to_string());
        }
    }
    for trigger in freed {
        let still_used = existing.rules.values().any(|r| {
            r["trigger"]["name"] == trigger.as_str()
                && annotation(r, FUNCTION_ANNOTATION).and_then(Value::as_str) != Some(function)
        });
        let faas_trigger = existing.triggers.get(&trigger).is_some_and(|t| annotation(t, APP_ANNOTATION).is_some());
        if faas_trigger && !still_used {
            delete(client, "triggers", &trigger).await?;
        }
    }
    Ok(())
}

/// DELETE of one entity; one already gone is fine.
async fn delete(client: &Client, collection: &str, name: &str) -> Result<(), Error> {
    let path = format!("{collection}/{}", wire::url_path(name));
    let answer = client.call(Method::DELETE, &path, None, std::time::Duration::from_secs(30)).await?;
    match answer.status {
        s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
        s => Err(wire::api_error(&format!("deleting {collection} `{name}`"), s.as_u16(), &answer.body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_entity_names() {
        assert_eq!(entity_name("a/b c:d."), "a_b_c_d");
        let long = "x".repeat(300);
        let name = entity_name(&long);
        assert_eq!(name.len(), MAX_NAME);
        let t = trigger_name("app", &EventFilter::new().event_type("a").source("/shop"));
        assert!(t.starts_with("app-a-") && t != trigger_name("app", &EventFilter::new().event_type("a")), "{t}");
    }

    #[test]
    fn one_trigger_per_filter_and_one_rule_per_subscriber() {
        let mut a = FunctionSpec::new("a");
        let mut b = FunctionSpec::new("b");
        let created = EventFilter::new().event_type("order.created");
        a.triggers.push(Trigger::Event { filter: created.clone() });
        b.triggers.push(Trigger::Event { filter: created.clone() });
        b.triggers.push(Trigger::Http { method: None, route: "/b".into() });
        let d = Declared::of("shop", &[a, b]);
        assert_eq!(d.triggers.keys().collect::<Vec<_>>(), ["shop-order.created"]);
        assert_eq!(d.rules.keys().collect::<Vec<_>>(), ["shop-order.created-to-a", "shop-order.created-to-b"]);
    }
}
