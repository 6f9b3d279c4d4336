//! JSON as the Functions host writes it: objects with their members in the order .NET writes
//! them (serde_json's own map sorts its keys), binding data merged without regard to case as the
//! host's dictionaries do, and the text .NET's formatters give dates and scalars.

use chrono::{DateTime, Timelike, Utc};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// A JSON value whose objects keep their members in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J {
    /// Any JSON (objects inside it are written in serde_json's key order).
    V(Value),
    /// An ordered object.
    O(Obj),
    /// An array of ordered values.
    A(Vec<J>),
}

impl J {
    /// A JSON string.
    pub fn s(text: impl Into<String>) -> J {
        J::V(Value::String(text.into()))
    }

    /// JSON `null`.
    pub fn null() -> J {
        J::V(Value::Null)
    }

    /// The same value as serde_json's (member order is lost).
    #[cfg(test)]
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl From<Obj> for J {
    fn from(o: Obj) -> J {
        J::O(o)
    }
}

impl From<Value> for J {
    fn from(v: Value) -> J {
        J::V(v)
    }
}

/// An object with its members in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Obj(pub Vec<(String, J)>);

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj(Vec::new())
    }

    /// Appends a member (no check for an existing one).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<J>) -> &mut Obj {
        self.0.push((key.into(), value.into()));
        self
    }

    /// Sets a member as a dictionary with `StringComparer.OrdinalIgnoreCase` does: an existing
    /// key of any case keeps its place and its spelling and takes the new value.
    pub fn set_ci(&mut self, key: &str, value: impl Into<J>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// Whether a member of that name (any case) exists.
    pub fn contains_ci(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
    }
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::V(v) => v.serialize(s),
            J::O(o) => o.serialize(s),
            J::A(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// What the host sends for a string value: its JSON text, as a string
/// (`JsonConvert.SerializeObject("Ada")` is `"Ada"` with the quotes).
pub(crate) fn text_value(text: &str) -> J {
    J::s(serde_json::to_string(text).unwrap_or_default())
}

/// What the host sends for a number value: its text, as a string (`4` → `"4"`).
pub(crate) fn number_value(n: impl std::fmt::Display) -> J {
    J::s(n.to_string())
}

/// The .NET text of a JSON scalar, as `(string)JToken` gives it: strings as they are, `True` /
/// `False`, numbers in the invariant culture (a whole double without its `.0`). `None` for
/// `null`, arrays and objects.
pub(crate) fn dotnet_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            (_, _, Some(f)) => format!("{f}"),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// The top-level properties of a JSON object text as the host adds them to the binding data
/// (`Utility.ApplyBindingData`): objects stay objects, arrays and nulls are skipped, every other
/// value becomes its .NET text and then, as a value sent to the handler, its JSON text.
pub(crate) fn json_properties(text: &str) -> Vec<(String, J)> {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return Vec::new();
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(trimmed) else { return Vec::new() };
    // serde_json's map has lost the text's order; take the keys in the order they appear.
    let mut keys: Vec<(usize, &String)> = map.keys().map(|k| (key_position(trimmed, k), k)).collect();
    keys.sort();
    let mut out = Vec::new();
    for (_, key) in keys {
        let value = &map[key];
        match value {
            Value::Object(_) => out.push((key.clone(), J::V(value.clone()))),
            Value::Array(_) | Value::Null => {}
            other => {
                if let Some(t) = dotnet_text(other) {
                    out.push((key.clone(), text_value(&t)));
                }
            }
        }
    }
    out
}

/// Where the member `key` first appears in a JSON text (an approximation good enough to keep
/// the members in the order the sender wrote them).
fn key_position(text: &str, key: &str) -> usize {
    let quoted = serde_json::to_string(key).unwrap_or_default();
    text.find(&quoted).unwrap_or(usize::MAX)
}

/// Seven fraction digits (.NET ticks) of a time.
fn ticks(t: &DateTime<Utc>) -> u32 {
    t.nanosecond() % 1_000_000_000 / 100
}

/// `DateTime.UtcNow` as Newtonsoft writes it (`"o"`-like, trailing zeros of the fraction
/// dropped): `2026-12-01T19:22:58.907293Z`.
pub(crate) fn utc_roundtrip(t: &DateTime<Utc>) -> String {
    format!("{}{}Z", t.format("%Y-%m-%dT%H:%M:%S"), trimmed_fraction(ticks(t)))
}

/// A local time (the host runs in UTC) as Newtonsoft writes it: `2022-10-11T10:52:00.003967+00:00`.
pub(crate) fn local_newtonsoft(t: &DateTime<Utc>) -> String {
    format!("{}{}+00:00", t.format("%Y-%m-%dT%H:%M:%S"), trimmed_fraction(ticks(t)))
}

/// A local time as `ToString("o")` writes it: `2026-12-03T08:30:00.0012345+00:00`.
pub(crate) fn local_roundtrip(t: &DateTime<Utc>) -> String {
    format!("{}.{:07}+00:00", t.format("%Y-%m-%dT%H:%M:%S"), ticks(t))
}

/// The FileLogger's time stamp: `2026-12-03T08:30:00.123`.
pub(crate) fn log_stamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

fn trimmed_fraction(ticks: u32) -> String {
    if ticks == 0 {
        return String::new();
    }
    let digits = format!("{ticks:07}");
    format!(".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn objects_keep_their_order_and_merge_without_case() {
        let mut o = Obj::new();
        o.push("Url", J::s("u")).push("Method", J::s("GET"));
        o.set_ci("url", J::s("v"));
        o.set_ci("Query", J::s("q"));
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"Url":"v","Method":"GET","Query":"q"}"#);
        assert!(o.contains_ci("QUERY"));
    }

    #[test]
    fn values_are_sent_as_their_json_text() {
        assert_eq!(text_value("Ada"), J::s("\"Ada\""));
        assert_eq!(number_value(4), J::s("4"));
        let props = json_properties(r#"{"name":"Ada","n":5,"ok":true,"f":1.0,"o":{"a":1},"l":[1],"z":null}"#);
        let text = serde_json::to_string(&J::O(Obj(props))).unwrap();
        assert_eq!(text, r#"{"name":"\"Ada\"","n":"\"5\"","ok":"\"True\"","f":"\"1\"","o":{"a":1}}"#);
        assert!(json_properties("[1,2]").is_empty());
        assert!(json_properties("not json").is_empty());
    }

    #[test]
    fn times_are_written_as_dotnet_writes_them() {
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 19, 22, 58).unwrap() + chrono::Duration::nanoseconds(907_293_000);
        assert_eq!(utc_roundtrip(&t), "2026-12-01T19:22:58.907293Z");
        assert_eq!(local_roundtrip(&t), "2026-12-01T19:22:58.9072930+00:00");
        assert_eq!(local_newtonsoft(&t), "2026-12-01T19:22:58.907293+00:00");
        assert_eq!(log_stamp(&t), "2026-12-01T19:22:58.907");
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(utc_roundtrip(&whole), "2026-01-02T03:04:05Z");
    }
}
