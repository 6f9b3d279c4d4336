//! The data plane of a function: its own listener at `serviceConfig.uri`, which forwards each
//! request as it is to an instance of the function's current revision, as Cloud Run's front end
//! does, and the instances themselves (processes on faas-supervisor), scaled from zero on
//! demand up to `maxInstanceCount`, each taking `maxInstanceRequestConcurrency` requests at a
//! time, stopped after they stay idle.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use faas_supervisor::{Limit, NotReady, Pipe, Process, ProcessSpec};
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use tokio::io::AsyncBufReadExt as _;

use crate::logs::{RequestLog, Resource, Stream};
use crate::Shared;

/// Largest request Cloud Run accepts (32 MiB; UNCONFIRMED, PROTOCOLS.md §6): beyond, 413.
pub(crate) const MAX_REQUEST: usize = 32 << 20;

/// The HTTP client forwarding to instances.
pub(crate) type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// How a revision runs: everything fixed at deploy time.
#[derive(Debug, Clone)]
pub(crate) struct RevisionSpec {
    pub name: String,
    pub resource: Resource,
    /// The program and arguments, without the per-instance `PORT`.
    pub spec: ProcessSpec,
    pub timeout: Duration,
    pub max_instances: usize,
    pub concurrency: usize,
    pub memory: Option<u64>,
}

/// One revision's instances.
pub(crate) struct Revision {
    pub spec: RevisionSpec,
    instances: Mutex<Vec<Arc<Instance>>>,
    /// `maxInstanceCount × maxInstanceRequestConcurrency` slots; a request holds one until its
    /// answer has been sent.
    slots: Arc<tokio::sync::Semaphore>,
    retired: AtomicBool,
    shared: Weak<Shared>,
}

/// One instance: a process listening on its `PORT`.
pub(crate) struct Instance {
    pub id: String,
    pub port: u16,
    process: Process,
    in_flight: AtomicUsize,
    last_used: Mutex<Instant>,
    ready: tokio::sync::OnceCell<Result<(), String>>,
    startup_timeout: Duration,
}

impl Instance {
    /// Waits until the instance listens on its port (once; later calls answer at once).
    pub async fn ready(&self) -> Result<(), String> {
        self.ready
            .get_or_init(|| async {
                let port = self.port;
                let check =
                    || async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ()) };
                match self.process.ready(self.startup_timeout, check).await {
                    Ok(()) => Ok(()),
                    Err(NotReady::Exited(exit)) => Err(format!(
                        "the container exited ({}) before it listened on the port",
                        exit.describe(faas_supervisor::Wording::Go)
                    )),
                    Err(NotReady::TimedOut(t)) => Err(format!("it did not listen within {t:?}")),
                }
            })
            .await
            .clone()
    }

    fn usable(&self) -> bool {
        self.process.is_running() && !matches!(self.ready.get(), Some(Err(_)))
    }
}

/// A request's hold on an instance; dropping it frees the slot.
pub(crate) struct Slot {
    pub instance: Arc<Instance>,
    revision: Arc<Revision>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.instance.in_flight.fetch_sub(1, Ordering::SeqCst);
        *self.instance.last_used.lock().unwrap() = Instant::now();
        if self.revision.retired.load(Ordering::SeqCst) && self.instance.in_flight.load(Ordering::SeqCst) == 0 {
            self.instance.process.kill();
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Revision {
    pub fn new(spec: RevisionSpec, shared: &Arc<Shared>) -> Arc<Revision> {
        let capacity = spec.max_instances.max(1) * spec.concurrency.max(1);
        let revision = Arc::new(Revision {
            slots: Arc::new(tokio::sync::Semaphore::new(capacity)),
            spec,
            instances: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
            shared: Arc::downgrade(shared),
        });
        if let Some(idle) = shared.options.idle_timeout {
            tokio::spawn(reap(Arc::downgrade(&revision), idle));
        }
        revision
    }

    /// Starts one more instance (the caller holds a gate slot or is the deploy check).
    pub fn start_instance(self: &Arc<Revision>) -> Result<Arc<Instance>, String> {
        let shared = self.shared.upgrade().ok_or("the emulator is shutting down")?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let mut spec =
            self.spec.spec.clone().env("PORT", port.to_string()).pipe(Pipe::FromChild(1)).pipe(Pipe::FromChild(2));
        if let Some(memory) = self.spec.memory {
            spec = spec.limit(Limit::Data, memory);
        }
        let mut process = spec.spawn().map_err(|e| format!("cannot start the container: {e}"))?;
        let id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
        for (fd, stream) in [(1, Stream::Stdout), (2, Stream::Stderr)] {
            if let Some(reader) = process.take_reader(fd) {
                let shared = Arc::downgrade(&shared);
                let resource = self.spec.resource.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(reader).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Some(shared) = shared.upgrade() else { break };
                        if shared.options.echo_logs {
                            eprintln!("[{}] {line}", resource.revision);
                        }
                        shared.logs.lock().unwrap().line(&resource, &id, stream, &line);
                    }
                });
            }
        }
        tracing::debug!(revision = %self.spec.name, pid = process.id(), port, "started an instance");
        let instance = Arc::new(Instance {
            id,
            port,
            process,
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            ready: tokio::sync::OnceCell::new(),
            startup_timeout: shared.options.startup_timeout,
        });
        Ok(instance)
    }

    /// Keeps an instance (the deploy check's) as an idle one.
    pub fn adopt(&self, instance: Arc<Instance>) {
        self.instances.lock().unwrap().push(instance);
    }

    /// A slot on an instance with room, starting one when none has.
    async fn slot(self: &Arc<Revision>, wait: Duration) -> Result<Slot, Rejected> {
        let permit = match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Rejected::Unavailable("the revision has been replaced".into())),
            Err(_) => return Err(Rejected::NoInstance),
        };
        let instance = {
            let mut instances = self.instances.lock().unwrap();
            instances.retain(|i| i.usable());
            let concurrency = self.spec.concurrency.max(1);
            let found = instances
                .iter()
                .filter(|i| i.in_flight.load(Ordering::SeqCst) < concurrency)
                .max_by_key(|i| *i.last_used.lock().unwrap())
                .cloned();
            let instance = match found {
                Some(i) => i,
                None => {
                    let i = self.start_instance().map_err(Rejected::Unavailable)?;
                    instances.push(i.clone());
                    i
                }
            };
            // Taken under the lock: two requests choosing at once must not both see it free.
            instance.in_flight.fetch_add(1, Ordering::SeqCst);
            instance
        };
        let slot = Slot { instance: instance.clone(), revision: self.clone(), _permit: permit };
        // A request can only be served by an instance that started.
        instance.ready().await.map_err(Rejected::Unavailable)?;
        Ok(slot)
    }

    /// Stops idle instances now and busy ones when their requests end (a newer revision serves).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.slots.close();
        let mut instances = self.instances.lock().unwrap();
        for i in instances.drain(..) {
            if i.in_flight.load(Ordering::SeqCst) == 0 {
                i.process.kill();
            }
        }
    }
}

impl Drop for Revision {
    fn drop(&mut self) {
        for i in self.instances.get_mut().unwrap().drain(..) {
            i.process.kill();
        }
    }
}

async fn reap(revision: Weak<Revision>, idle: Duration) {
    let period = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    loop {
        tokio::time::sleep(period).await;
        let Some(revision) = revision.upgrade() else { return };
        let mut instances = revision.instances.lock().unwrap();
        instances.retain(|i| {
            let idle_for = i.last_used.lock().unwrap().elapsed();
            let keep = i.usable() && (i.in_flight.load(Ordering::SeqCst) > 0 || idle_for < idle);
            if !keep {
                tracing::debug!(revision = %revision.spec.name, "stopping an idle instance");
                i.process.kill();
            }
            keep
        });
    }
}

enum Rejected {
    NoInstance,
    Unavailable(String),
}

/// A function's service: its listener and the revision serving now.
pub(crate) struct Service {
    pub addr: SocketAddr,
    pub current: Mutex<Option<Arc<Revision>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Service {
    /// Binds the function's own port and serves it.
    pub async fn bind(shared: &Arc<Shared>) -> std::io::Result<Arc<Service>> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let service = Arc::new(Service { addr, current: Mutex::new(None), task: Mutex::new(None) });
        let weak = Arc::downgrade(&service);
        let shared = Arc::downgrade(shared);
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let (service, shared) = (weak.upgrade(), shared.upgrade());
            async move {
                match (service, shared) {
                    (Some(service), Some(shared)) => forward(&shared, &service, request).await,
                    _ => plain(StatusCode::NOT_FOUND, "The requested URL was not found on this server."),
                }
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *service.task.lock().unwrap() = Some(task);
        Ok(service)
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes `revision` the one serving; the previous one is retired.
    pub fn switch(&self, revision: Arc<Revision>) {
        if let Some(old) = self.current.lock().unwrap().replace(revision) {
            old.retire();
        }
    }

    /// Stops serving and stops every instance.
    pub fn close(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        if let Some(old) = self.current.lock().unwrap().take() {
            old.retire();
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{text}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// A new trace id and span id, as Cloud Run makes them for a request that has none.
fn new_trace() -> (String, String) {
    let id = uuid::Uuid::new_v4();
    (format!("{:032x}", id.as_u128()), (id.as_u128() as u64 >> 1).to_string())
}

/// `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS` → (trace id, span id).
fn parse_trace(value: &str) -> Option<(String, Option<String>)> {
    let (trace, rest) = value.split_once('/').unwrap_or((value, ""));
    let span = rest.split(';').next().filter(|s| !s.is_empty()).map(str::to_string);
    (!trace.is_empty()).then(|| (trace.to_string(), span))
}

/// Forwards one request to an instance and streams its answer back; logs the request.
async fn forward(shared: &Arc<Shared>, service: &Service, request: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let url = format!("{}{}", service.uri(), path);
    let user_agent = parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (trace, span) =
        match parts.headers.get("x-cloud-trace-context").and_then(|v| v.to_str().ok()).and_then(parse_trace) {
            Some((t, s)) => (t, s),
            None => {
                let (t, s) = new_trace();
                if let Ok(v) = HeaderValue::from_str(&format!("{t}/{s};o=1")) {
                    parts.headers.insert("x-cloud-trace-context", v);
                }
                (t, Some(s))
            }
        };
    let revision = service.current.lock().unwrap().clone();
    let mut log = RequestLog {
        method: parts.method.to_string(),
        url,
        status: 0,
        latency: Duration::ZERO,
        request_size: 0,
        response_size: 0,
        user_agent,
        trace: Some(trace),
        span,
    };
    let Some(revision) = revision else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: the function has no active revision");
    };
    let resource = revision.spec.resource.clone();
    let finish = |log: &mut RequestLog, status: StatusCode, instance: Option<&str>| {
        log.status = status.as_u16();
        log.latency = started.elapsed();
        shared.logs.lock().unwrap().request(&resource, instance, log);
    };
    let too_big = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_REQUEST as u64);
    let bytes = if too_big { None } else { axum::body::to_bytes(body, MAX_REQUEST).await.ok() };
    let Some(bytes) = bytes else {
        finish(&mut log, StatusCode::PAYLOAD_TOO_LARGE, None);
        // Google's front end answers an oversized request with its HTML error page; the text
        // is the page's sentence.
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413. That's an error. Your client issued a request that was too large.",
        );
    };
    log.request_size = bytes.len() as u64;
    let deadline = tokio::time::Instant::now() + revision.spec.timeout;
    let slot = match revision.slot(shared.options.max_pending_wait).await {
        Ok(slot) => slot,
        Err(Rejected::NoInstance) => {
            finish(&mut log, StatusCode::TOO_MANY_REQUESTS, None);
            // UNCONFIRMED: Cloud Run's wording when every instance (up to the maximum) is busy.
            return plain(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate exceeded. The request was aborted because there was no available instance.",
            );
        }
        Err(Rejected::Unavailable(why)) => {
            tracing::warn!(revision = %revision.spec.name, "{why}");
            finish(&mut log, StatusCode::SERVICE_UNAVAILABLE, None);
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
    };
    for h in ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te"] {
        parts.headers.remove(h);
    }
    parts.headers.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
    parts.headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let uri = format!("http://127.0.0.1:{}{}", slot.instance.port, path);
    parts.uri = match uri.parse() {
        Ok(u) => u,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "Bad Request"),
    };
    let upstream = Request::from_parts(parts, Body::from(bytes));
    let instance_id = slot.instance.id.clone();
    let answer = tokio::time::timeout_at(deadline, shared.client.request(upstream)).await;
    let response = match answer {
        Err(_) => {
            finish(&mut log, StatusCode::GATEWAY_TIMEOUT, Some(&instance_id));
            return plain(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
        }
        Ok(Err(e)) => {
            tracing::warn!(revision = %revision.spec.name, error = %e, "the instance's answer failed");
            finish(&mut log, StatusCode::SERVICE_UNAVAILABLE, Some(&instance_id));
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "The request failed because either the HTTP response was malformed or connection to the instance had an error.",
            );
        }
        Ok(Ok(r)) => r,
    };
    let (mut head, body) = response.into_parts();
    for h in ["connection", "keep-alive", "transfer-encoding"] {
        head.headers.remove(h);
    }
    log.status = head.status.as_u16();
    // The body streams back until the deadline; the request is logged once it has ended.
    let logger =
        EndOfRequest { shared: Arc::downgrade(shared), resource, log, started, instance: instance_id, _slot: slot };
    let logger = Arc::new(Mutex::new(logger));
    let counter = logger.clone();
    let stream = body.into_data_stream().take_until(tokio::time::sleep_until(deadline)).map(
        move |chunk: Result<Bytes, hyper::Error>| {
            if let Ok(c) = &chunk {
                counter.lock().unwrap().log.response_size += c.len() as u64;
            }
            chunk
        },
    );
    let stream = futures::stream::unfold((Box::pin(stream), Some(logger)), |(mut stream, mut logger)| async move {
        match stream.next().await {
            Some(item) => Some((item, (stream, logger))),
            None => {
                logger.take();
                None
            }
        }
    });
    Response::from_parts(head, Body::from_stream(stream))
}

struct EndOfRequest {
    shared: Weak<Shared>,
    resource: Resource,
    log: RequestLog,
    started: Instant,
    instance: String,
    _slot: Slot,
}

impl Drop for EndOfRequest {
    fn drop(&mut self) {
        self.log.latency = self.started.elapsed();
        if let Some(shared) = self.shared.upgrade() {
            shared.logs.lock().unwrap().request(&self.resource, Some(&self.instance), &self.log);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_headers_parse() {
        assert_eq!(
            parse_trace("105445aa7843bc8bf206b12000100000/1;o=1"),
            Some(("105445aa7843bc8bf206b12000100000".into(), Some("1".into())))
        );
        assert_eq!(parse_trace("abc"), Some(("abc".into(), None)));
        assert_eq!(parse_trace(""), None);
        let (t, s) = new_trace();
        assert_eq!(t.len(), 32);
        assert!(s.parse::<u64>().is_ok());
    }
}
