//! The route templates of HTTP triggers (function.json `route`, ASP.NET Core's template syntax as
//! the Functions host uses it), to find the function of a forwarded request from its path.
//!
//! A template is `/`-separated segments: literals (matched in any case), `{name}` (one segment),
//! `{name?}` or `{name=default}` (optional, only at the end), `{name:constraint}` (the
//! constraints `int`, `long`, `bool`, `guid`, `alpha`, `double`, `float`, `decimal` are checked;
//! others accept any value) and a final catch-all `{*name}` / `{**name}`. A segment mixing
//! literal text and parameters (`{file}.{ext}`) matches any one segment and yields no values.
//!
//! ```
//! use faas_runner_azure::host::route::RouteTemplate;
//! let t = RouteTemplate::parse("api/products/{category:alpha}/{id:int?}");
//! let params = t.matches("/API/products/books/42").unwrap();
//! assert_eq!(params["category"].as_deref(), Some("books"));
//! assert_eq!(params["id"].as_deref(), Some("42"));
//! assert_eq!(t.matches("/api/products/books").unwrap()["id"], None);
//! assert!(t.matches("/api/products/books/forty-two").is_none());
//! assert!(t.matches("/api/products").is_none());
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param { name: String, optional: bool, default: Option<String>, constraint: Option<String> },
    CatchAll(String),
    Complex,
}

/// A parsed route template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// The route values of a match: `None` for an optional parameter the path left out.
pub type RouteValues = BTreeMap<String, Option<String>>;

impl RouteTemplate {
    /// Parses `template` (leading and trailing `/` ignored).
    ///
    /// ```
    /// let t = faas_runner_azure::host::route::RouteTemplate::parse("/files/{*path}");
    /// assert_eq!(t.text(), "files/{*path}");
    /// assert_eq!(t.matches("/files/a/b/c.txt").unwrap()["path"].as_deref(), Some("a/b/c.txt"));
    /// ```
    pub fn parse(template: &str) -> RouteTemplate {
        let text = template.trim_matches('/').to_string();
        let segments = text.split('/').filter(|s| !s.is_empty()).map(segment).collect();
        RouteTemplate { text, segments }
    }

    /// The template as parsed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The route values when `path` (a request path, percent-encoded as received) matches.
    ///
    /// ```
    /// let t = faas_runner_azure::host::route::RouteTemplate::parse("users/{id}/{tab=profile}");
    /// assert_eq!(t.matches("/users/a%20b").unwrap()["id"].as_deref(), Some("a b"));
    /// assert_eq!(t.matches("/users/7").unwrap()["tab"].as_deref(), Some("profile"));
    /// assert!(t.matches("/users/7/x/y").is_none());
    /// ```
    pub fn matches(&self, path: &str) -> Option<RouteValues> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let mut values = RouteValues::new();
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => {
                    if !parts.get(i).is_some_and(|p| percent_decode(p).eq_ignore_ascii_case(l)) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Complex => {
                    parts.get(i)?;
                    i += 1;
                }
                Segment::Param { name, optional, default, constraint } => match parts.get(i) {
                    Some(p) => {
                        let value = percent_decode(p);
                        if !constraint.as_deref().is_none_or(|c| satisfies(c, &value)) {
                            return None;
                        }
                        values.insert(name.clone(), Some(value));
                        i += 1;
                    }
                    None if *optional || default.is_some() => {
                        values.insert(name.clone(), default.clone());
                    }
                    None => return None,
                },
                Segment::CatchAll(name) => {
                    let rest: Vec<String> = parts[i.min(parts.len())..].iter().map(|p| percent_decode(p)).collect();
                    values.insert(name.clone(), (!rest.is_empty()).then(|| rest.join("/")));
                    i = parts.len();
                }
            }
        }
        (i == parts.len()).then_some(values)
    }

    /// Orders templates the way ASP.NET Core tries them: segment by segment, a literal before a
    /// constrained parameter before a parameter before an optional one before a catch-all; then
    /// the longer template first.
    ///
    /// ```
    /// use faas_runner_azure::host::route::RouteTemplate;
    /// let mut ts = ["{*all}", "items/{id}", "items/new", "items/{id:int}"].map(RouteTemplate::parse).to_vec();
    /// ts.sort_by(RouteTemplate::precedence);
    /// let order: Vec<&str> = ts.iter().map(|t| t.text()).collect();
    /// assert_eq!(order, ["items/new", "items/{id:int}", "items/{id}", "{*all}"]);
    /// ```
    pub fn precedence(a: &RouteTemplate, b: &RouteTemplate) -> Ordering {
        let rank = |s: &Segment| match s {
            Segment::Literal(_) => 0,
            Segment::Complex => 1,
            Segment::Param { constraint: Some(_), optional: false, default: None, .. } => 2,
            Segment::Param { optional: false, default: None, .. } => 3,
            Segment::Param { .. } => 4,
            Segment::CatchAll(_) => 5,
        };
        for (x, y) in a.segments.iter().zip(&b.segments) {
            match rank(x).cmp(&rank(y)) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        b.segments.len().cmp(&a.segments.len())
    }
}

fn segment(s: &str) -> Segment {
    let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).filter(|i| !i.contains(['{', '}'])) else {
        return if s.contains('{') { Segment::Complex } else { Segment::Literal(s.to_string()) };
    };
    if let Some(name) = inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
        let name = name.split([':', '=', '?']).next().unwrap_or_default();
        return Segment::CatchAll(name.to_string());
    }
    let (inner, optional) = match inner.strip_suffix('?') {
        Some(i) => (i, true),
        None => (inner, false),
    };
    let (inner, default) = match inner.split_once('=') {
        Some((i, d)) => (i, Some(d.to_string())),
        None => (inner, None),
    };
    let (name, constraint) = match inner.split_once(':') {
        Some((n, c)) => (n, Some(c.to_string())),
        None => (inner, None),
    };
    Segment::Param { name: name.to_string(), optional, default, constraint }
}

/// Whether `value` satisfies the (first) constraint of `constraints` (`int`, `alpha:minlength(2)`, ...).
fn satisfies(constraints: &str, value: &str) -> bool {
    constraints.split(':').all(|c| match c.to_ascii_lowercase().as_str() {
        "int" => value.parse::<i32>().is_ok(),
        "long" => value.parse::<i64>().is_ok(),
        "bool" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "guid" => uuid::Uuid::parse_str(value).is_ok(),
        "alpha" => !value.is_empty() && value.chars().all(|c| c.is_ascii_alphabetic()),
        "double" | "float" | "decimal" => value.parse::<f64>().is_ok(),
        _ => true,
    })
}

/// Percent-decodes one path segment or query component (invalid escapes are kept as they are,
/// bytes that are not UTF-8 become U+FFFD).
///
/// ```
/// use faas_runner_azure::host::route::percent_decode;
/// assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
/// assert_eq!(percent_decode("100%"), "100%");
/// ```
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parameters_and_catch_alls() {
        let t = RouteTemplate::parse("api/hello");
        assert!(t.matches("/api/hello").unwrap().is_empty());
        assert!(t.matches("/api/hello/").is_some(), "a trailing slash is ignored");
        assert!(t.matches("/api/hellos").is_none());
        let guid = RouteTemplate::parse("orders/{id:guid}");
        assert!(guid.matches("/orders/5b1c2f6e-7a3d-4a8e-9f00-0123456789ab").is_some());
        assert!(guid.matches("/orders/7").is_none());
        let empty_rest = RouteTemplate::parse("files/{*path}");
        assert_eq!(empty_rest.matches("/files").unwrap()["path"], None);
        let complex = RouteTemplate::parse("files/{name}.{ext}");
        assert!(complex.matches("/files/a.txt").unwrap().is_empty());
        let root = RouteTemplate::parse("");
        assert!(root.matches("/").is_some());
        assert!(root.matches("/x").is_none());
    }

    #[test]
    fn percent_escapes_at_the_end_are_decoded() {
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
