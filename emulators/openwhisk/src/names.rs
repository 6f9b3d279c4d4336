//! Entity names and paths: the checks of apache/openwhisk
//! common/scala/src/main/scala/org/apache/openwhisk/core/entity/EntityPath.scala (`EntityName`:
//! `\A([\w]|[\w][\w@ .-]*[\w@.-]+)\z`, at most 256 characters) and the fully qualified forms
//! `/namespace/[package/]name`.

use crate::error::ApiError;

/// Longest entity name.
const MAX_NAME: usize = 256;

/// Checks one path segment (a namespace, package or entity name).
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<char> = name.chars().collect();
    if chars.len() > MAX_NAME {
        return Err(ApiError::bad_request(format!(
            "name longer than allowed: {} > {MAX_NAME} characters.",
            chars.len()
        )));
    }
    let ok = match chars.as_slice() {
        [] => false,
        [one] => word(*one),
        [first, middle @ .., last] => {
            word(*first)
                && middle.iter().all(|c| word(*c) || "@ .-".contains(*c))
                && (word(*last) || "@.-".contains(*last))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(crate::error::ENTITY_NAME_ILLEGAL))
    }
}

/// An entity of the emulator's namespace: an action or package member, a trigger, a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Name {
    pub package: Option<String>,
    pub name: String,
}

impl Name {
    /// The key in the entity maps: `name` or `package/name`.
    pub fn key(&self) -> String {
        match &self.package {
            Some(p) => format!("{p}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The record's `namespace` field: `guest` or `guest/package`.
    pub fn namespace_path(&self, namespace: &str) -> String {
        match &self.package {
            Some(p) => format!("{namespace}/{p}"),
            None => namespace.to_string(),
        }
    }

    /// `guest/[package/]name`, as the `path` annotation and rule summaries write it.
    pub fn path(&self, namespace: &str) -> String {
        format!("{}/{}", self.namespace_path(namespace), self.name)
    }

    /// `/guest/[package/]name`.
    pub fn qualified(&self, namespace: &str) -> String {
        format!("/{}", self.path(namespace))
    }

    /// Parses the rest of an `/actions/...` path: `name` or `package/name`.
    pub fn from_path(rest: &str) -> Result<Name, ApiError> {
        let segments: Vec<&str> = rest.split('/').collect();
        match segments.as_slice() {
            [name] => {
                check_name(name)?;
                Ok(Name { package: None, name: name.to_string() })
            }
            [package, name] => {
                check_name(package)?;
                check_name(name)?;
                Ok(Name { package: Some(package.to_string()), name: name.to_string() })
            }
            _ => Err(ApiError::not_found()),
        }
    }

    /// Parses a reference as sequences and rules give it: `/ns/name`, `/ns/pkg/name`, or
    /// relative to the caller's namespace, `name` or `pkg/name`. `_` is the caller's namespace;
    /// another namespace is refused with 403.
    pub fn from_reference(reference: &str, namespace: &str) -> Result<Name, ApiError> {
        let malformed = || {
            ApiError::bad_request(
                "The fully qualified name of the entity must contain at least the namespace and the name of the entity.",
            )
        };
        let (ns, rest) = match reference.strip_prefix('/') {
            Some(abs) => abs.split_once('/').ok_or_else(malformed)?,
            None => ("_", reference),
        };
        if ns != "_" && ns != namespace {
            check_name(ns)?;
            return Err(ApiError::forbidden());
        }
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() > 2 || segments.iter().any(|s| s.is_empty()) {
            return Err(malformed());
        }
        Name::from_path(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_openwhisk_entity_names() {
        for ok in ["a", "hello", "hello-world", "a.b", "x@y", "with space x", "_"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a ", "a/b", "a$", &"x".repeat(257)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_resolve_in_our_namespace() {
        let n = Name::from_reference("/_/pkg/a", "guest").unwrap();
        assert_eq!((n.key(), n.qualified("guest")), ("pkg/a".to_string(), "/guest/pkg/a".to_string()));
        assert_eq!(Name::from_reference("/guest/a", "guest").unwrap().key(), "a");
        assert_eq!(Name::from_reference("a", "guest").unwrap().path("guest"), "guest/a");
        assert_eq!(Name::from_reference("/other/a", "guest").unwrap_err().status, 403);
        assert_eq!(Name::from_reference("/guest", "guest").unwrap_err().status, 400);
        assert_eq!(Name::from_reference("/guest/a/b/c", "guest").unwrap_err().status, 400);
    }
}
