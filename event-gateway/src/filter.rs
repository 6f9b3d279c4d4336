//! Subscription filters in the CloudEvents Subscriptions API dialects (CloudEvents Subscriptions API, https://github.com/cloudevents/spec/blob/main/subscriptions/spec.md, §3.2.4 filters).
//!
//! A filter is a JSON object with exactly one dialect key:
//!
//! | dialect  | value                                   | true when                                           |
//! |----------|-----------------------------------------|-----------------------------------------------------|
//! | `exact`  | `{"attribute": "value", ...}` (≥ 1)     | every listed attribute equals its value             |
//! | `prefix` | `{"attribute": "value", ...}` (≥ 1)     | every listed attribute starts with its value        |
//! | `suffix` | `{"attribute": "value", ...}` (≥ 1)     | every listed attribute ends with its value          |
//! | `all`    | `[filter, ...]` (≥ 1)                   | every nested filter is true                         |
//! | `any`    | `[filter, ...]` (≥ 1)                   | at least one nested filter is true                  |
//! | `not`    | `filter`                                | the nested filter is false                          |
//!
//! Comparisons are case-sensitive, on the attribute's canonical string form (`time` as RFC 3339 in UTC
//! with a `Z` suffix, the form the gateway stores and delivers; booleans `true`/`false`; integers in decimal).
//! Attribute names must be valid CloudEvents names (lower-case letters and digits) and values non-empty.
//! An attribute the event does not carry never matches `exact`, `prefix` or `suffix`.
//!
//! Filters nest to at most [`MAX_DEPTH`] levels. The optional `sql` (CESQL) dialect is not supported yet and
//! is rejected, as is any other unknown dialect, so that a subscription never silently matches more than
//! its author meant.
//!
//! ```
//! use cloudevents::EventBuilder;
//! use faas_gateway::filter::Filter;
//! use serde_json::json;
//!
//! let f = Filter::from_json(&json!({"any": [{"exact": {"type": "com.example.a"}}, {"prefix": {"subject": "orders/"}}]})).unwrap();
//! let event = cloudevents::EventBuilderV10::new()
//!     .id("1").source("/shop").ty("com.example.b").subject("orders/42")
//!     .build().unwrap();
//! assert!(f.matches(&event));
//!
//! let err = Filter::from_json(&json!({"all": []})).unwrap_err();
//! assert_eq!(err.to_string(), "all: must hold at least one filter");
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Event};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Maximum nesting depth of `all`/`any`/`not` (a filter at the top level has depth 1).
pub const MAX_DEPTH: usize = 32;

/// The dialects this gateway understands, in the order error messages list them.
pub const DIALECTS: [&str; 6] = ["exact", "prefix", "suffix", "all", "any", "not"];

/// A parsed, validated filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every attribute equals its value.
    Exact(BTreeMap<String, String>),
    /// Every attribute starts with its value.
    Prefix(BTreeMap<String, String>),
    /// Every attribute ends with its value.
    Suffix(BTreeMap<String, String>),
    /// Every nested filter is true.
    All(Vec<Filter>),
    /// At least one nested filter is true.
    Any(Vec<Filter>),
    /// The nested filter is false.
    Not(Box<Filter>),
}

/// Why a filter was refused: the JSON path of the offending part and the problem.
///
/// Displays as `path: message` (or just the message for a problem at the root of a filter parsed
/// with [`Filter::from_json`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct FilterError {
    /// JSON path of the offending value, e.g. `filters[2].all[0].exact`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError { path: path.to_string(), message: message.into() }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Filter {
    /// Parses and validates a filter expression; error paths are relative to `value`.
    pub fn from_json(value: &Value) -> Result<Filter, FilterError> {
        Filter::from_json_at(value, "")
    }

    /// Parses and validates a filter expression found at JSON path `path` (used as the prefix of error
    /// paths, e.g. `filters[2]`).
    ///
    /// ```
    /// use faas_gateway::filter::Filter;
    /// let err = Filter::from_json_at(&serde_json::json!({"sql": "type = 'x'"}), "filters[2]").unwrap_err();
    /// assert_eq!(err.path, "filters[2]");
    /// assert_eq!(err.message, "the `sql` (CESQL) dialect is not supported yet");
    /// ```
    pub fn from_json_at(value: &Value, path: &str) -> Result<Filter, FilterError> {
        parse(value, path, 1)
    }

    /// The filter in its JSON encoding (`{"<dialect>": ...}`); [`Filter::from_json`] reads it back.
    pub fn to_json(&self) -> Value {
        let attrs = |m: &BTreeMap<String, String>| {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
        };
        let list = |v: &[Filter]| Value::Array(v.iter().map(Filter::to_json).collect());
        let (key, value) = match self {
            Filter::Exact(m) => ("exact", attrs(m)),
            Filter::Prefix(m) => ("prefix", attrs(m)),
            Filter::Suffix(m) => ("suffix", attrs(m)),
            Filter::All(v) => ("all", list(v)),
            Filter::Any(v) => ("any", list(v)),
            Filter::Not(f) => ("not", f.to_json()),
        };
        let mut obj = serde_json::Map::with_capacity(1);
        obj.insert(key.to_string(), value);
        Value::Object(obj)
    }

    /// Evaluates the filter against an event.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::Exact(m) => m.iter().all(|(k, v)| attribute(event, k).is_some_and(|a| a == v.as_str())),
            Filter::Prefix(m) => m.iter().all(|(k, v)| attribute(event, k).is_some_and(|a| a.starts_with(v.as_str()))),
            Filter::Suffix(m) => m.iter().all(|(k, v)| attribute(event, k).is_some_and(|a| a.ends_with(v.as_str()))),
            Filter::All(v) => v.iter().all(|f| f.matches(event)),
            Filter::Any(v) => v.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
        }
    }
}

/// The canonical string form of an attribute or extension of `event`, `None` when it is absent.
/// Borrowed for string-valued attributes; only `time` and integer extensions allocate.
///
/// ```
/// use cloudevents::EventBuilder;
/// let event = cloudevents::EventBuilderV10::new().id("1").source("/s").ty("t")
///     .time("2018-04-05T03:56:24Z").extension("count", 3i64).build().unwrap();
/// assert_eq!(faas_gateway::filter::attribute(&event, "time").as_deref(), Some("2018-04-05T03:56:24Z"));
/// assert_eq!(faas_gateway::filter::attribute(&event, "count").as_deref(), Some("3"));
/// assert_eq!(faas_gateway::filter::attribute(&event, "subject"), None);
/// ```
pub fn attribute<'a>(event: &'a Event, name: &str) -> Option<Cow<'a, str>> {
    match name {
        "id" => Some(Cow::Borrowed(event.id())),
        "source" => Some(Cow::Borrowed(event.source().as_str())),
        "type" => Some(Cow::Borrowed(event.ty())),
        "specversion" => Some(Cow::Borrowed(match event.specversion() {
            cloudevents::event::SpecVersion::V03 => "0.3",
            cloudevents::event::SpecVersion::V10 => "1.0",
        })),
        "subject" => event.subject().map(Cow::Borrowed),
        "datacontenttype" => event.datacontenttype().map(Cow::Borrowed),
        "dataschema" => event.dataschema().map(|u| Cow::Borrowed(u.as_str())),
        "time" => event.time().map(|t| Cow::Owned(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        _ => event.extension(name).map(|v| match v {
            ExtensionValue::String(s) => Cow::Borrowed(s.as_str()),
            ExtensionValue::Boolean(true) => Cow::Borrowed("true"),
            ExtensionValue::Boolean(false) => Cow::Borrowed("false"),
            ExtensionValue::Integer(i) => Cow::Owned(i.to_string()),
        }),
    }
}

fn parse(value: &Value, path: &str, depth: usize) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("filters nest deeper than {MAX_DEPTH} levels")));
    }
    let obj = match value {
        Value::Object(obj) => obj,
        other => {
            return Err(err(
                path,
                format!("a filter must be a JSON object with one dialect key, not {}", faas_api::json_kind(other)),
            ))
        }
    };
    let mut keys = obj.keys();
    let (key, inner) = match (keys.next(), keys.next()) {
        (None, _) => {
            return Err(err(path, format!("empty filter: expected exactly one dialect key ({})", DIALECTS.join(", "))))
        }
        (Some(a), Some(b)) => {
            return Err(err(
                path,
                format!("a filter holds exactly one dialect, found `{a}` and `{b}`; combine them with `all`"),
            ))
        }
        (Some(k), None) => (k.as_str(), &obj[k]),
    };
    let here = join(path, key);
    match key {
        "exact" => attributes(inner, &here).map(Filter::Exact),
        "prefix" => attributes(inner, &here).map(Filter::Prefix),
        "suffix" => attributes(inner, &here).map(Filter::Suffix),
        "all" => nested_list(inner, &here, depth).map(Filter::All),
        "any" => nested_list(inner, &here, depth).map(Filter::Any),
        "not" => match inner {
            Value::Object(_) => Ok(Filter::Not(Box::new(parse(inner, &here, depth + 1)?))),
            other => Err(err(
                &here,
                format!("must hold exactly one filter (a JSON object), not {}", faas_api::json_kind(other)),
            )),
        },
        "sql" => Err(err(path, "the `sql` (CESQL) dialect is not supported yet")),
        other => {
            Err(err(path, format!("unsupported filter dialect `{other}`; supported dialects: {}", DIALECTS.join(", "))))
        }
    }
}

fn attributes(value: &Value, path: &str) -> Result<BTreeMap<String, String>, FilterError> {
    let obj = match value {
        Value::Object(obj) => obj,
        other => {
            return Err(err(
                path,
                format!("must be an object of attribute names to values, not {}", faas_api::json_kind(other)),
            ))
        }
    };
    if obj.is_empty() {
        return Err(err(path, "must name at least one attribute"));
    }
    let mut out = BTreeMap::new();
    for (name, v) in obj {
        if name.is_empty() {
            return Err(err(path, "attribute name is empty"));
        }
        if let Err(e) = faas_api::event::validate_attribute_name(name) {
            return Err(err(path, e.message()));
        }
        let at = join(path, name);
        match v {
            Value::String(s) if s.is_empty() => return Err(err(&at, "value is empty")),
            Value::String(s) => {
                out.insert(name.clone(), s.clone());
            }
            other => return Err(err(&at, format!("value must be a string, not {}", faas_api::json_kind(other)))),
        }
    }
    Ok(out)
}

fn nested_list(value: &Value, path: &str, depth: usize) -> Result<Vec<Filter>, FilterError> {
    let items = match value {
        Value::Array(items) => items,
        other => return Err(err(path, format!("must be an array of filters, not {}", faas_api::json_kind(other)))),
    };
    if items.is_empty() {
        return Err(err(path, "must hold at least one filter"));
    }
    items.iter().enumerate().map(|(i, item)| parse(item, &format!("{path}[{i}]"), depth + 1)).collect()
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        let value = Value::deserialize(d)?;
        Filter::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::EventBuilder;
    use serde_json::json;

    fn event() -> Event {
        cloudevents::EventBuilderV10::new()
            .id("42")
            .source("https://example.com/orders")
            .ty("com.example.order.created")
            .subject("orders/eu/42")
            .time("2024-05-01T10:00:00Z")
            .extension("region", "eu-west-1")
            .extension("priority", 7i64)
            .extension("urgent", true)
            .build()
            .unwrap()
    }

    fn f(v: Value) -> Filter {
        Filter::from_json(&v).unwrap()
    }

    fn e(v: Value) -> String {
        Filter::from_json(&v).unwrap_err().to_string()
    }

    #[test]
    fn exact_matches_every_listed_attribute_case_sensitively() {
        assert!(f(json!({"exact": {"type": "com.example.order.created"}})).matches(&event()));
        assert!(f(json!({"exact": {"type": "com.example.order.created", "subject": "orders/eu/42"}})).matches(&event()));
        assert!(
            !f(json!({"exact": {"type": "com.example.order.created", "subject": "orders/eu/43"}})).matches(&event())
        );
        assert!(!f(json!({"exact": {"type": "COM.example.order.created"}})).matches(&event()));
        assert!(!f(json!({"exact": {"type": "com.example.order"}})).matches(&event()));
    }

    #[test]
    fn every_attribute_kind_is_compared_in_canonical_form() {
        let ev = event();
        assert!(f(json!({"exact": {"id": "42", "specversion": "1.0"}})).matches(&ev));
        assert!(f(json!({"exact": {"source": "https://example.com/orders"}})).matches(&ev));
        assert!(f(json!({"exact": {"time": "2024-05-01T10:00:00Z"}})).matches(&ev));
        assert!(f(json!({"exact": {"region": "eu-west-1", "priority": "7", "urgent": "true"}})).matches(&ev));
        assert!(!f(json!({"exact": {"urgent": "false"}})).matches(&ev));
    }

    #[test]
    fn a_missing_attribute_never_matches() {
        for dialect in ["exact", "prefix", "suffix"] {
            let filter = f(json!({dialect: {"nosuchext": "x"}}));
            assert!(!filter.matches(&event()), "{dialect}");
            // ... and `not` of it is therefore true.
            assert!(Filter::Not(Box::new(filter)).matches(&event()), "{dialect}");
        }
        assert!(!f(json!({"exact": {"dataschema": "https://x"}})).matches(&event()));
    }

    #[test]
    fn prefix_and_suffix() {
        assert!(f(json!({"prefix": {"type": "com.example."}})).matches(&event()));
        assert!(f(json!({"prefix": {"type": "com.example.order.created"}})).matches(&event()));
        assert!(!f(json!({"prefix": {"type": "org.example."}})).matches(&event()));
        assert!(f(json!({"prefix": {"type": "com.", "subject": "orders/"}})).matches(&event()));
        assert!(!f(json!({"prefix": {"type": "com.", "subject": "invoices/"}})).matches(&event()));
        assert!(f(json!({"suffix": {"type": ".created"}})).matches(&event()));
        assert!(!f(json!({"suffix": {"type": ".deleted"}})).matches(&event()));
        assert!(!f(json!({"suffix": {"type": ".CREATED"}})).matches(&event()));
        assert!(f(json!({"suffix": {"source": "/orders", "subject": "/42"}})).matches(&event()));
    }

    #[test]
    fn all_any_not() {
        let yes = json!({"exact": {"id": "42"}});
        let no = json!({"exact": {"id": "43"}});
        assert!(f(json!({"all": [yes, yes]})).matches(&event()));
        assert!(!f(json!({"all": [yes, no]})).matches(&event()));
        assert!(f(json!({"any": [no, yes]})).matches(&event()));
        assert!(!f(json!({"any": [no, no]})).matches(&event()));
        assert!(f(json!({"not": no})).matches(&event()));
        assert!(!f(json!({"not": yes})).matches(&event()));
    }

    #[test]
    fn deep_nesting_evaluates_and_round_trips() {
        let v = json!({"all": [
            {"any": [{"exact": {"type": "nope"}}, {"not": {"not": {"prefix": {"subject": "orders/"}}}}]},
            {"not": {"any": [{"suffix": {"region": "-2"}}, {"exact": {"urgent": "false"}}]}}
        ]});
        let filter = f(v.clone());
        assert!(filter.matches(&event()));
        assert_eq!(filter.to_json(), v);
        let back: Filter = serde_json::from_value(serde_json::to_value(&filter).unwrap()).unwrap();
        assert_eq!(back, filter);
    }

    #[test]
    fn nesting_is_limited() {
        let mut v = json!({"exact": {"id": "42"}});
        for _ in 1..MAX_DEPTH {
            v = json!({"not": v});
        }
        assert!(Filter::from_json(&v).is_ok(), "{MAX_DEPTH} levels are allowed");
        let err = Filter::from_json(&json!({"not": v})).unwrap_err();
        assert!(err.message.contains(&format!("deeper than {MAX_DEPTH}")), "{err}");
    }

    #[test]
    fn unknown_and_unsupported_dialects_are_rejected() {
        assert_eq!(e(json!({"sql": "type = 'x'"})), "the `sql` (CESQL) dialect is not supported yet");
        assert_eq!(
            e(json!({"regex": {"type": ".*"}})),
            "unsupported filter dialect `regex`; supported dialects: exact, prefix, suffix, all, any, not"
        );
        assert!(e(json!({"exact": {"type": "a"}, "prefix": {"type": "b"}})).contains("exactly one dialect"));
        assert!(e(json!({})).contains("empty filter"));
        assert!(e(json!("exact")).contains("must be a JSON object"));
        assert!(e(json!({"Exact": {"type": "a"}})).contains("unsupported filter dialect `Exact`"));
    }

    #[test]
    fn bad_attribute_maps_are_rejected_with_their_path() {
        assert_eq!(e(json!({"exact": {"": "x"}})), "exact: attribute name is empty");
        assert!(e(json!({"prefix": {"Type": "x"}})).starts_with("prefix: CloudEvent attribute name `Type` is invalid"));
        assert!(e(json!({"suffix": {"my-ext": "x"}})).contains("`my-ext` is invalid"));
        assert_eq!(e(json!({"exact": {"type": ""}})), "exact.type: value is empty");
        assert_eq!(e(json!({"exact": {"type": 3}})), "exact.type: value must be a string, not a number");
        assert_eq!(e(json!({"exact": {}})), "exact: must name at least one attribute");
        assert!(e(json!({"exact": ["type"]})).starts_with("exact: must be an object"));
    }

    #[test]
    fn bad_nesting_is_rejected_with_its_path() {
        assert_eq!(e(json!({"all": []})), "all: must hold at least one filter");
        assert_eq!(e(json!({"any": []})), "any: must hold at least one filter");
        assert_eq!(e(json!({"any": {"exact": {"id": "1"}}})), "any: must be an array of filters, not an object");
        assert_eq!(
            e(json!({"not": [{"exact": {"id": "1"}}]})),
            "not: must hold exactly one filter (a JSON object), not an array"
        );
        let err = Filter::from_json_at(&json!({"all": [{"any": [{"exact": {"id": "1"}}, {"foo": 1}]}]}), "filters[2]")
            .unwrap_err();
        assert_eq!(err.path, "filters[2].all[0].any[1]");
        assert!(err.message.contains("unsupported filter dialect `foo`"));
        let err = Filter::from_json_at(&json!({"all": [{"exact": {"": "x"}}]}), "filters[0]").unwrap_err();
        assert_eq!(err.path, "filters[0].all[0].exact");
    }

    #[test]
    fn deserialize_reports_the_problem() {
        let err = serde_json::from_value::<Filter>(json!({"any": []})).unwrap_err();
        assert!(err.to_string().contains("any: must hold at least one filter"), "{err}");
    }
}
