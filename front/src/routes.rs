//! The declared HTTP routes of the deployed functions (`Trigger::Http`) and how a request is
//! matched against them.
//!
//! A route is a method (or any) and a path pattern: literal segments match themselves, a
//! `{name}` segment matches any one segment, and a final `{*rest}` matches one or more
//! remaining segments. A trailing `/` on the request path is ignored. Routes are tried in the
//! order the runner lists the functions, then in each function's declaration order; the first
//! match wins.

use faas_api::{FunctionInfo, Trigger};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

/// One declared route.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    method: Option<String>,
    pattern: String,
    segments: Vec<Segment>,
    /// The function the route invokes.
    pub(crate) function: String,
}

impl Route {
    fn new(method: Option<&str>, pattern: &str, function: &str) -> Route {
        let parts = split(pattern);
        let last = parts.len().saturating_sub(1);
        let segments = parts
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.starts_with("{*") && s.ends_with('}') && i == last {
                    Segment::Rest
                } else if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        Route {
            method: method.map(|m| m.to_ascii_uppercase()),
            pattern: pattern.to_string(),
            segments,
            function: function.to_string(),
        }
    }

    fn matches_path(&self, path: &[&str]) -> bool {
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Rest => return path.len() > i,
                Segment::Param => {
                    if i >= path.len() || path[i].is_empty() {
                        return false;
                    }
                }
                Segment::Literal(l) => {
                    if path.get(i) != Some(&l.as_str()) {
                        return false;
                    }
                }
            }
            i += 1;
        }
        i == path.len()
    }

    fn matches_method(&self, method: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
    }

    /// `GET /users/{id} → user`.
    pub(crate) fn describe(&self) -> String {
        format!("{} {} → {}", self.method.as_deref().unwrap_or("ANY"), self.pattern, self.function)
    }
}

/// `/a/b/` → `["a", "b"]`; `/` → `[]`.
fn split(path: &str) -> Vec<&str> {
    let p = path.strip_prefix('/').unwrap_or(path);
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() { vec![] } else { p.split('/').collect() }
}

/// The routes of a set of deployed functions.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Every `Trigger::Http` of `functions`, in order.
    pub(crate) fn from_functions(functions: &[FunctionInfo]) -> RouteTable {
        let routes = functions
            .iter()
            .flat_map(|f| {
                f.spec.triggers.iter().filter_map(|t| match t {
                    Trigger::Http { method, route } => Some(Route::new(method.as_deref(), route, &f.spec.name)),
                    Trigger::Event { .. } => None,
                })
            })
            .collect();
        RouteTable { routes }
    }

    /// The first route matching `method` and `path`.
    pub(crate) fn find(&self, method: &str, path: &str) -> Option<&Route> {
        let parts = split(path);
        self.routes.iter().find(|r| r.matches_method(method) && r.matches_path(&parts))
    }

    /// Human descriptions of every route, in match order.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.routes.iter().map(Route::describe).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::FunctionSpec;

    fn table(routes: &[(&str, Option<&str>, &str)]) -> RouteTable {
        let functions: Vec<FunctionInfo> = routes
            .iter()
            .map(|(name, method, route)| {
                let mut spec = FunctionSpec::new(*name);
                spec.triggers.push(Trigger::Http { method: method.map(str::to_string), route: route.to_string() });
                FunctionInfo { spec, state: "Active".into() }
            })
            .collect();
        RouteTable::from_functions(&functions)
    }

    #[test]
    fn literal_param_and_rest_segments() {
        let t = table(&[
            ("user", Some("GET"), "/users/{id}"),
            ("files", None, "/files/{*path}"),
            ("root", Some("GET"), "/"),
        ]);
        assert_eq!(t.find("GET", "/users/42").unwrap().function, "user");
        assert_eq!(t.find("get", "/users/42/").unwrap().function, "user");
        assert!(t.find("GET", "/users").is_none());
        assert!(t.find("GET", "/users/42/x").is_none());
        assert!(t.find("POST", "/users/42").is_none(), "method mismatch");
        assert_eq!(t.find("DELETE", "/files/a/b/c").unwrap().function, "files");
        assert!(t.find("GET", "/files").is_none(), "rest needs at least one segment");
        assert_eq!(t.find("GET", "/").unwrap().function, "root");
        assert!(t.find("GET", "/nope").is_none());
    }

    #[test]
    fn first_declared_match_wins() {
        let t = table(&[("specific", Some("GET"), "/items/new"), ("generic", Some("GET"), "/items/{id}")]);
        assert_eq!(t.find("GET", "/items/new").unwrap().function, "specific");
        assert_eq!(t.find("GET", "/items/7").unwrap().function, "generic");
    }

    #[test]
    fn empty_segments_do_not_fill_params() {
        let t = table(&[("user", Some("GET"), "/users/{id}/posts")]);
        assert!(t.find("GET", "/users//posts").is_none());
        assert_eq!(t.find("GET", "/users/1/posts").unwrap().function, "user");
    }

    #[test]
    fn descriptions_name_method_pattern_and_function() {
        let t = table(&[("user", Some("get"), "/users/{id}"), ("any", None, "/any")]);
        assert_eq!(t.describe(), vec!["GET /users/{id} → user".to_string(), "ANY /any → any".to_string()]);
    }
}
