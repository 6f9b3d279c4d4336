//! Helpers shared by the fuzz targets: structure-aware generators of JSON and text from the bytes
//! libFuzzer hands a target, biased towards the names and values our parsers look for.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// A string: one of `pool` most of the time, else arbitrary text (short, any Unicode).
pub fn pick_string(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<String> {
    if !pool.is_empty() && u.ratio(3, 4)? {
        let base = *u.choose(pool)?;
        // Sometimes glue something onto a known value, to walk past prefix/suffix checks.
        if u.ratio(1, 8)? {
            let tail: String = u.arbitrary()?;
            return Ok(format!("{base}{tail}"));
        }
        return Ok(base.to_string());
    }
    let s: String = u.arbitrary()?;
    Ok(s.chars().take(40).collect())
}

/// What [`json_value`] draws from.
pub struct JsonShape<'a> {
    /// Object member names to prefer.
    pub keys: &'a [&'a str],
    /// String values to prefer.
    pub strings: &'a [&'a str],
    /// Deepest nesting generated (objects and arrays).
    pub max_depth: u32,
}

/// An arbitrary JSON value shaped by `shape`, never deeper than `shape.max_depth`.
pub fn json_value(u: &mut Unstructured<'_>, shape: &JsonShape<'_>, depth: u32) -> Result<Value> {
    let leaf_only = depth >= shape.max_depth;
    let choice = if leaf_only { u.int_in_range(0..=5)? } else { u.int_in_range(0..=7)? };
    Ok(match choice {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(match u.int_in_range(0..=3)? {
            0 => Number::from(u.arbitrary::<i32>()?),
            1 => Number::from(u.arbitrary::<i64>()?),
            2 => Number::from(u.arbitrary::<u64>()?),
            _ => Number::from_f64(u.arbitrary::<f64>()?).unwrap_or_else(|| Number::from(0)),
        }),
        3 | 4 | 5 => Value::String(pick_string(u, shape.strings)?),
        6 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(json_value(u, shape, depth + 1)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(json_object(u, shape, depth + 1)?),
    })
}

/// An arbitrary JSON object shaped by `shape`.
pub fn json_object(u: &mut Unstructured<'_>, shape: &JsonShape<'_>, depth: u32) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=6)?;
    let mut map = Map::new();
    for _ in 0..n {
        let key = pick_string(u, shape.keys)?;
        let value = json_value(u, shape, depth)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// The rest of the input as bytes.
pub fn rest(u: Unstructured<'_>) -> Vec<u8> {
    u.take_rest().to_vec()
}

/// A server the fuzz target started once for the whole fuzzing process, and a blocking HTTP
/// client of it (the targets that drive an emulator over a real socket).
pub struct Live {
    /// The runtime the server runs on (one worker thread) and requests are sent from.
    pub runtime: tokio::runtime::Runtime,
    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    client: faas_host::client::HttpClient,
}

impl Live {
    /// Starts a server with `start` on a new runtime; `start` returns what must be kept alive
    /// (the server's handle) and its base URL.
    pub fn start<T, F>(start: impl FnOnce() -> F) -> (Live, T)
    where
        F: std::future::Future<Output = (T, String)>,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (handle, url) = runtime.block_on(start());
        (Live { runtime, url, client: faas_host::client::HttpClient::new() }, handle)
    }

    /// Sends a request with `headers` (and `content-type: application/json`) and reads the
    /// whole answer.
    pub fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (http::StatusCode, http::HeaderMap, bytes::Bytes) {
        let mut req = http::Request::builder().method(method).uri(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .unwrap_or_else(|e| panic!("bad request URI {path:?}: {e}"));
        let (head, body) = self.runtime.block_on(self.client.send(req, 64 << 20)).expect("the server answers");
        (head.status, head.headers, body)
    }
}

/// `path` if an HTTP client can send it as a request target (it starts with `/` and
/// `http::uri::PathAndQuery` accepts it), or `/` otherwise: a fuzzed raw path such as
/// `/f?MaxItems=0y>` holds bytes no client puts on the wire, so sending it tests nothing.
///
/// ```
/// assert_eq!(faas_fuzz::sendable_path("/a?b=c".into()), "/a?b=c");
/// assert_eq!(faas_fuzz::sendable_path("/a?b=`>".into()), "/");
/// ```
pub fn sendable_path(path: String) -> String {
    if path.starts_with('/') && path.parse::<http::uri::PathAndQuery>().is_ok() {
        path
    } else {
        "/".into()
    }
}

/// `s` with every byte but ASCII letters, digits and those in `keep` percent-encoded.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    s.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() || keep.contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}
