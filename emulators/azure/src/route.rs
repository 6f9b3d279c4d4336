//! HTTP trigger routes: ASP.NET Core route templates as function.json `route` writes them
//! (`items/{id}`, `items/{id?}`, `files/{*path}`, `{id:int}`, `{name=default}`), matched without
//! regard to the case of literal segments, the more specific template first.

/// One segment of a template.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param { name: String, optional: bool, default: Option<String>, constraints: Vec<String>, catch_all: bool },
}

/// A parsed route template.
///
/// ```text
/// let t = RouteTemplate::parse("items/{id?}").unwrap();
/// assert_eq!(t.matches(&["items"]), Some(vec![("id".into(), None)]));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

impl RouteTemplate {
    /// Parses a template; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<RouteTemplate, String> {
        let trimmed = text.trim_start_matches('~').trim_matches('/');
        let mut segments = Vec::new();
        if !trimmed.is_empty() {
            for raw in trimmed.split('/') {
                segments.push(parse_segment(raw)?);
            }
        }
        // Only the last parameters may be left out, and a catch-all must be last.
        let mut seen_optional = false;
        for (i, s) in segments.iter().enumerate() {
            match s {
                Segment::Param { catch_all: true, name, .. } if i + 1 != segments.len() => {
                    return Err(format!("the catch-all parameter {{*{name}}} must be the last segment"));
                }
                Segment::Param { optional, default, catch_all, .. } if *optional || default.is_some() || *catch_all => {
                    seen_optional = true;
                }
                _ if seen_optional => {
                    return Err("an optional parameter must be followed only by optional parameters".into());
                }
                _ => {}
            }
        }
        Ok(RouteTemplate { text: trimmed.to_string(), segments })
    }

    /// The template's text (without leading or trailing `/`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Matches the (percent-decoded) segments of a path: the route values in template order,
    /// `None` for an optional parameter left out.
    pub fn matches(&self, path: &[String]) -> Option<Vec<(String, Option<String>)>> {
        let mut values = Vec::new();
        let mut at = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(l) => {
                    let got = path.get(at)?;
                    if !got.eq_ignore_ascii_case(l) {
                        return None;
                    }
                    at += 1;
                }
                Segment::Param { name, catch_all: true, default, .. } => {
                    let rest = path[at.min(path.len())..].join("/");
                    at = path.len();
                    values.push((name.clone(), if rest.is_empty() { default.clone() } else { Some(rest) }));
                }
                Segment::Param { name, optional, default, constraints, .. } => match path.get(at) {
                    Some(value) if !value.is_empty() => {
                        if !constraints.iter().all(|c| satisfies(c, value)) {
                            return None;
                        }
                        values.push((name.clone(), Some(value.clone())));
                        at += 1;
                    }
                    _ if *optional || default.is_some() => values.push((name.clone(), default.clone())),
                    _ => return None,
                },
            }
        }
        (at == path.len()).then_some(values)
    }

    /// Orders templates as ASP.NET Core's routing does, roughly: segment by segment, literals
    /// before constrained parameters before parameters before optional ones before catch-alls.
    pub fn precedence(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 1,
                Segment::Param { catch_all: true, .. } => 5,
                Segment::Param { optional: true, .. } => 4,
                Segment::Param { default: Some(_), .. } => 4,
                Segment::Param { constraints, .. } if !constraints.is_empty() => 2,
                Segment::Param { .. } => 3,
            })
            .collect()
    }
}

fn parse_segment(raw: &str) -> Result<Segment, String> {
    if raw.is_empty() {
        return Err("a route cannot have an empty segment (`//`)".into());
    }
    let Some(inner) = raw.strip_prefix('{') else {
        if raw.contains('{') || raw.contains('}') {
            return Err(format!("the segment `{raw}` mixes text and parameters, which this emulator does not support"));
        }
        return Ok(Segment::Literal(raw.to_string()));
    };
    let Some(inner) = inner.strip_suffix('}') else {
        return Err(format!("the segment `{raw}` has an unclosed or mixed parameter"));
    };
    if inner.contains('{') || inner.contains('}') {
        return Err(format!("the segment `{raw}` mixes text and parameters, which this emulator does not support"));
    }
    let (catch_all, inner) = match inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
        Some(rest) => (true, rest),
        None => (false, inner),
    };
    let (inner, default) = match inner.split_once('=') {
        Some((a, d)) => (a, Some(d.to_string())),
        None => (inner, None),
    };
    let (inner, optional) = match inner.strip_suffix('?') {
        Some(a) => (a, true),
        None => (inner, false),
    };
    let mut parts = inner.split(':');
    let name = parts.next().unwrap_or("").to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{raw}` does not name a parameter"));
    }
    let constraints = parts.map(|c| c.trim_end_matches('?').to_ascii_lowercase()).collect();
    Ok(Segment::Param { name, optional, default, constraints, catch_all })
}

/// Whether a route value satisfies one inline constraint (the common ones; unknown ones pass).
fn satisfies(constraint: &str, value: &str) -> bool {
    let (name, arg) = match constraint.split_once('(') {
        Some((n, a)) => (n, a.trim_end_matches(')')),
        None => (constraint, ""),
    };
    let int = || value.parse::<i64>().ok();
    match name {
        "int" | "long" => int().is_some(),
        "double" | "float" | "decimal" => value.parse::<f64>().is_ok(),
        "bool" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "guid" => uuid::Uuid::parse_str(value).is_ok(),
        "alpha" => value.chars().all(|c| c.is_ascii_alphabetic()),
        "min" => int().zip(arg.parse::<i64>().ok()).is_some_and(|(v, m)| v >= m),
        "max" => int().zip(arg.parse::<i64>().ok()).is_some_and(|(v, m)| v <= m),
        "range" => {
            let mut bounds = arg.split(',').map(|b| b.trim().parse::<i64>().ok());
            match (int(), bounds.next().flatten(), bounds.next().flatten()) {
                (Some(v), Some(lo), Some(hi)) => (lo..=hi).contains(&v),
                _ => false,
            }
        }
        "minlength" => arg.parse::<usize>().is_ok_and(|m| value.chars().count() >= m),
        "maxlength" => arg.parse::<usize>().is_ok_and(|m| value.chars().count() <= m),
        "length" => match arg.split_once(',') {
            Some((lo, hi)) => {
                let n = value.chars().count();
                lo.trim().parse::<usize>().is_ok_and(|lo| n >= lo) && hi.trim().parse::<usize>().is_ok_and(|hi| n <= hi)
            }
            None => arg.parse::<usize>().is_ok_and(|m| value.chars().count() == m),
        },
        _ => true,
    }
}

/// Splits a request path (after the route prefix) into percent-decoded segments; a trailing `/`
/// is ignored, as routing ignores it.
pub(crate) fn path_segments(path: &str) -> Vec<String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split('/').map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        path_segments(p)
    }

    #[test]
    fn templates_match_literals_parameters_optionals_and_catch_alls() {
        let t = RouteTemplate::parse("items/{id?}").unwrap();
        assert_eq!(t.matches(&segs("Items")), Some(vec![("id".into(), None)]));
        assert_eq!(t.matches(&segs("items/7/")), Some(vec![("id".into(), Some("7".into()))]));
        assert_eq!(t.matches(&segs("items/7/8")), None);
        let c = RouteTemplate::parse("files/{*path}").unwrap();
        assert_eq!(c.matches(&segs("files/a/b%20c")), Some(vec![("path".into(), Some("a/b c".into()))]));
        assert_eq!(c.matches(&segs("files")), Some(vec![("path".into(), None)]));
        let n = RouteTemplate::parse("n/{id:int}").unwrap();
        assert!(n.matches(&segs("n/x")).is_none());
        assert!(n.matches(&segs("n/12")).is_some());
        assert!(n.precedence() < RouteTemplate::parse("n/{id}").unwrap().precedence());
        let d = RouteTemplate::parse("d/{x=5}").unwrap();
        assert_eq!(d.matches(&segs("d")), Some(vec![("x".into(), Some("5".into()))]));
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(RouteTemplate::parse("a/{*rest}/b").unwrap_err().contains("last"));
        assert!(RouteTemplate::parse("a/{x?}/b").unwrap_err().contains("optional"));
        assert!(RouteTemplate::parse("a/{}").is_err());
        assert!(RouteTemplate::parse("a//b").is_err());
        assert_eq!(RouteTemplate::parse("/a/b/").unwrap().text(), "a/b");
    }
}
