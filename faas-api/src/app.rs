//! [`App`]: a set of named functions and their declared triggers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use cloudevents::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::handler::{BoxHandler, EventFn, Handler, Invocation, Raw, ServiceHandler, Typed};
use crate::runner::Capability;
use crate::{Context, Error, Payload};

/// The longest function name accepted anywhere (Lambda's limit for a bare name).
pub const MAX_FUNCTION_NAME: usize = 64;

/// Checks a function name: 1–64 characters from `[A-Za-z0-9_-]`, starting with a letter or digit.
///
/// ```
/// assert!(faas_api::validate_function_name("hello-world_2").is_ok());
/// assert!(faas_api::validate_function_name("a/b").unwrap_err().message().contains("`/`"));
/// assert!(faas_api::validate_function_name("").is_err());
/// ```
pub fn validate_function_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::bad_input("function name is empty"));
    }
    if name.len() > MAX_FUNCTION_NAME {
        return Err(Error::bad_input(format!(
            "function name `{}…` is {} characters long; the limit is {MAX_FUNCTION_NAME}",
            &name[..name.char_indices().nth(16).map(|(i, _)| i).unwrap_or(name.len())],
            name.chars().count()
        )));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(Error::bad_input(format!(
            "function name `{name}` contains `{c}`; use letters, digits, `-` and `_` only"
        )));
    }
    if name.starts_with(['-', '_']) {
        return Err(Error::bad_input(format!("function name `{name}` must start with a letter or digit")));
    }
    Ok(())
}

/// How a function takes its input, as reported in the [`Manifest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerKind {
    /// JSON in, JSON out.
    Typed,
    /// Bytes with a content type in and out.
    Raw,
    /// A CloudEvent in, an optional CloudEvent out.
    Event,
    /// A `tower::Service`.
    Service,
}

/// A CloudEvent filter on `type`, `source` and `subject`. Each given attribute must match
/// exactly, or, when the value ends in `*`, start with the part before it. An empty filter
/// matches every event.
///
/// ```
/// use faas_api::EventFilter;
/// let f = EventFilter::new().event_type("com.example.order.*").source("/shop");
/// assert!(f.matches_attrs("com.example.order.created", "/shop", None));
/// assert!(!f.matches_attrs("com.example.user.created", "/shop", None));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// The event `type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The event `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The event `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl EventFilter {
    /// A filter that matches everything.
    pub fn new() -> Self {
        Self::default()
    }
    /// Requires `type` to match `pattern`.
    pub fn event_type(mut self, pattern: impl Into<String>) -> Self {
        self.event_type = Some(pattern.into());
        self
    }
    /// Requires `source` to match `pattern`.
    pub fn source(mut self, pattern: impl Into<String>) -> Self {
        self.source = Some(pattern.into());
        self
    }
    /// Requires `subject` to match `pattern`.
    pub fn subject(mut self, pattern: impl Into<String>) -> Self {
        self.subject = Some(pattern.into());
        self
    }

    /// Whether an event with these attributes matches.
    pub fn matches_attrs(&self, event_type: &str, source: &str, subject: Option<&str>) -> bool {
        fn one(pattern: &Option<String>, value: Option<&str>) -> bool {
            match (pattern, value) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(p), Some(v)) => match p.strip_suffix('*') {
                    Some(prefix) => v.starts_with(prefix),
                    None => p == v,
                },
            }
        }
        one(&self.event_type, Some(event_type)) && one(&self.source, Some(source)) && one(&self.subject, subject)
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Event) -> bool {
        use cloudevents::AttributesReader;
        self.matches_attrs(event.ty(), &event.source().to_string(), event.subject())
    }
}

/// A declared way to reach a function besides calling it by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// An HTTP route: `method` (any when absent) and a path like `/hello` or `/users/{id}`.
    Http {
        /// Upper-case HTTP method, or none for any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The route path, starting with `/`.
        route: String,
    },
    /// CloudEvents matching a filter.
    Event {
        /// The filter.
        filter: EventFilter,
    },
}

/// One function of an [`App`], as described to runners (no handler attached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDescription {
    /// Logical name.
    pub name: String,
    /// Input style.
    pub handler: HandlerKind,
    /// Declared triggers.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Capabilities the function needs from its backend.
    #[serde(default)]
    pub requires: Vec<Capability>,
}

/// The machine-readable description of an app binary: what `FAAS_DESCRIBE=1 ./app` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The faas version the binary was built with.
    pub faas_version: String,
    /// Functions in declaration order.
    pub functions: Vec<FunctionDescription>,
}

impl Manifest {
    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&FunctionDescription> {
        self.functions.iter().find(|f| f.name == name)
    }
}

#[derive(Clone)]
struct Function {
    description: FunctionDescription,
    handler: BoxHandler,
}

/// A set of named functions plus their declared triggers.
///
/// ```
/// use faas_api::{App, Context, Error};
/// #[derive(serde::Deserialize)] struct Hello { name: String }
/// #[derive(serde::Serialize)] struct Reply { message: String }
/// async fn hello(_cx: Context, req: Hello) -> Result<Reply, Error> {
///     Ok(Reply { message: format!("Hello, {}!", req.name) })
/// }
/// let app = App::new().function("hello", hello).route("hello", "POST", "/hello");
/// assert_eq!(app.names(), vec!["hello"]);
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let reply = app.call_json("hello", &serde_json::json!({"name": "Ada"})).await.unwrap();
/// assert_eq!(reply, serde_json::json!({"message": "Hello, Ada!"}));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct App {
    functions: BTreeMap<String, Function>,
    order: Vec<String>,
    problems: Vec<String>,
}

impl App {
    /// An empty app.
    pub fn new() -> App {
        App::default()
    }

    fn add(mut self, name: &str, handler_kind: HandlerKind, handler: BoxHandler) -> App {
        if let Err(e) = validate_function_name(name) {
            self.problems.push(e.message().to_string());
            return self;
        }
        if self.functions.contains_key(name) {
            self.problems.push(format!("function `{name}` is defined twice"));
            return self;
        }
        let description =
            FunctionDescription { name: name.to_string(), handler: handler_kind, triggers: vec![], requires: vec![] };
        self.functions.insert(name.to_string(), Function { description, handler });
        self.order.push(name.to_string());
        self
    }

    /// Adds a typed JSON function: the input is decoded into `Req` (a decoding failure is a
    /// bad-input error naming the problem) and the `Resp` is encoded as JSON.
    pub fn function<F, Fut, Req, Resp, E>(self, name: &str, f: F) -> App
    where
        F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        E: Into<Error> + Send + 'static,
    {
        self.add(name, HandlerKind::Typed, Arc::new(Typed::new(f)))
    }

    /// Adds a raw-bytes function.
    pub fn raw<F, Fut, E>(self, name: &str, f: F) -> App
    where
        F: Fn(Context, Payload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Payload, E>> + Send + 'static,
        E: Into<Error> + Send + 'static,
    {
        self.add(name, HandlerKind::Raw, Arc::new(Raw::new(f)))
    }

    /// Adds a CloudEvent function.
    pub fn event<F, Fut, E>(self, name: &str, f: F) -> App
    where
        F: Fn(Context, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Event>, E>> + Send + 'static,
        E: Into<Error> + Send + 'static,
    {
        self.add(name, HandlerKind::Event, Arc::new(EventFn::new(f))).requires(name, Capability::CloudEvents)
    }

    /// Adds a `tower::Service` as a function.
    ///
    /// ```
    /// use faas_api::{App, Error, Payload, handler::Invocation};
    /// let svc = tower::service_fn(|inv: Invocation| async move { Ok::<_, Error>(inv.payload) });
    /// let app = App::new().service("echo", svc);
    /// assert_eq!(app.names(), vec!["echo"]);
    /// ```
    pub fn service<S>(self, name: &str, service: S) -> App
    where
        S: tower::Service<Invocation, Response = Payload> + Clone + Send + Sync + 'static,
        S::Error: Into<Error> + Send + 'static,
        S::Future: Send + 'static,
    {
        self.add(name, HandlerKind::Service, Arc::new(ServiceHandler::new(service)))
    }

    /// Adds any [`Handler`].
    pub fn handler(self, name: &str, kind: HandlerKind, handler: impl Handler) -> App {
        self.add(name, kind, Arc::new(handler))
    }

    fn describe_mut(&mut self, name: &str) -> Option<&mut FunctionDescription> {
        self.functions.get_mut(name).map(|f| &mut f.description)
    }

    fn with_description(mut self, name: &str, what: &str, edit: impl FnOnce(&mut FunctionDescription)) -> App {
        match self.describe_mut(name) {
            Some(d) => edit(d),
            None => self.problems.push(format!("{what} names `{name}`, which is not a function of this app")),
        }
        self
    }

    /// Declares an HTTP route for function `name`; `method` `"*"` or `""` means any method.
    pub fn route(self, name: &str, method: &str, route: &str) -> App {
        let method = match method.trim() {
            "" | "*" => None,
            m => Some(m.to_ascii_uppercase()),
        };
        if !route.starts_with('/') {
            let mut app = self;
            app.problems.push(format!("route `{route}` of `{name}` must start with `/`"));
            return app;
        }
        let trigger = Trigger::Http { method, route: route.to_string() };
        self.with_description(name, "route", |d| d.triggers.push(trigger))
    }

    /// Declares that function `name` receives the CloudEvents matching `filter`.
    pub fn subscribe(self, name: &str, filter: EventFilter) -> App {
        self.with_description(name, "subscription", |d| d.triggers.push(Trigger::Event { filter }))
    }

    /// Declares that function `name` needs `capability` from its backend. A runner that does not
    /// claim it refuses to deploy the function.
    pub fn requires(self, name: &str, capability: Capability) -> App {
        self.with_description(name, "capability", |d| {
            if !d.requires.contains(&capability) {
                d.requires.push(capability)
            }
        })
    }

    /// Function names in declaration order.
    pub fn names(&self) -> Vec<&str> {
        self.order.iter().map(String::as_str).collect()
    }

    /// Whether the app has a function called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Mistakes made while building the app (bad names, duplicates, triggers for unknown
    /// functions). Hosts refuse to start an app that has any.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Checks that the app was built without mistakes.
    pub fn validate(&self) -> Result<(), Error> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::bad_input(format!("the app is invalid: {}", self.problems.join("; "))))
        }
    }

    /// The app's manifest.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            faas_version: env!("CARGO_PKG_VERSION").to_string(),
            functions: self.order.iter().map(|n| self.functions[n].description.clone()).collect(),
        }
    }

    /// The handler of function `name`.
    pub fn handler_of(&self, name: &str) -> Option<BoxHandler> {
        self.functions.get(name).map(|f| f.handler.clone())
    }

    /// A not-found error for `name` that lists the known functions.
    pub fn not_found(&self, name: &str) -> Error {
        not_found_error(name, self.names())
    }

    /// Runs function `name` with panics turned into crash errors. No deadline is enforced here;
    /// hosts do that.
    pub async fn call(&self, name: &str, cx: Context, payload: Payload) -> Result<Payload, Error> {
        let handler = self.handler_of(name).ok_or_else(|| self.not_found(name))?;
        crate::handler::call_catching_panics(handler.as_ref(), Invocation { cx, payload }).await
    }

    /// Convenience for tests: calls `name` with a JSON value and decodes the JSON reply.
    pub async fn call_json<T: Serialize>(&self, name: &str, input: &T) -> Result<serde_json::Value, Error> {
        let payload = Payload::json(input)?;
        let cx = Context::builder(name).build();
        let reply = self.call(name, cx, payload).await?;
        if reply.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        reply.json_as()
    }
}

/// The functions among `specs` whose event triggers match `event`, in order, each once.
///
/// ```
/// use faas_api::{app::functions_matching, EventFilter, FunctionSpec, Trigger};
/// use faas_api::cloudevents::{EventBuilder, EventBuilderV10};
/// let mut f = FunctionSpec::new("on_order");
/// f.triggers.push(Trigger::Event { filter: EventFilter::new().event_type("order.*") });
/// let e = EventBuilderV10::new().id("1").source("/shop").ty("order.created").build().unwrap();
/// assert_eq!(functions_matching(&[f], &e), vec!["on_order".to_string()]);
/// ```
pub fn functions_matching(specs: &[crate::FunctionSpec], event: &Event) -> Vec<String> {
    specs
        .iter()
        .filter(|s| s.triggers.iter().any(|t| matches!(t, Trigger::Event { filter } if filter.matches(event))))
        .map(|s| s.name.clone())
        .collect()
}

/// A not-found error for function `name` listing `known`.
pub fn not_found_error<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Error {
    let known: Vec<&str> = known.into_iter().collect();
    let list = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Error::not_found(format!("no function named `{name}`; known functions: {list}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hello(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> {
        Ok(v)
    }

    #[test]
    fn duplicate_and_bad_names_and_dangling_triggers_are_reported() {
        let app = App::new()
            .function("a", hello)
            .function("a", hello)
            .function("b/c", hello)
            .route("missing", "GET", "/x")
            .route("a", "GET", "nope");
        let problems = app.problems().join("\n");
        assert!(problems.contains("`a` is defined twice"), "{problems}");
        assert!(problems.contains("contains `/`"), "{problems}");
        assert!(problems.contains("`missing`"), "{problems}");
        assert!(problems.contains("must start with `/`"), "{problems}");
        assert!(app.validate().is_err());
    }

    #[tokio::test]
    async fn unknown_function_lists_known_ones() {
        let app = App::new().function("a", hello).function("b", hello);
        let err = app.call("zzz", Context::builder("zzz").build(), Payload::empty()).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        assert!(err.message().contains("known functions: a, b"), "{}", err.message());
    }

    #[tokio::test]
    async fn malformed_json_is_bad_input_naming_the_parse_error() {
        let app = App::new().function("a", hello);
        let err =
            app.call("a", Context::builder("a").build(), Payload::new(&b"{\"x\": }"[..], None)).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BadInput);
        assert!(err.message().starts_with("malformed JSON: expected value at line 1 column 7"), "{}", err.message());
    }

    #[test]
    fn manifest_lists_functions_in_declaration_order_with_triggers() {
        let app = App::new()
            .function("z", hello)
            .function("a", hello)
            .route("a", "post", "/a")
            .subscribe("z", EventFilter::new().event_type("t"));
        let m = app.manifest();
        assert_eq!(m.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["z", "a"]);
        assert_eq!(
            m.function("a").unwrap().triggers,
            vec![Trigger::Http { method: Some("POST".into()), route: "/a".into() }]
        );
        let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
