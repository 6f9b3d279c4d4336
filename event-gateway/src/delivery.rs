//! Delivery: workers claim due deliveries from the store, send each to its subscription's sink, and finish
//! it with `ack` (delivered, dead-lettered or dropped) or `retry_at` (another attempt later).
//!
//! Status handling follows the Knative data-plane contract ([`classify`]): 2xx is done; 404, 408, 409,
//! 429, every 5xx and an attempt without an answer (timeout, connection refused) are retried; any other
//! status is final. Retries wait an exponential back-off with full jitter and a cap ([`backoff`]), or the
//! sink's `Retry-After` when it asks for longer (up to `retry_after_max`, see [`next_delay`]). When retries
//! are exhausted or the status is final, the event goes to the subscription's dead-letter sink with the
//! Knative extensions `knativeerrordest`, `knativeerrorcode` and `knativeerrordata`; without a dead-letter
//! sink it is dropped (logged, counted as `dropped`). If the dead-letter sink itself fails, the delivery is
//! scheduled again (nothing is lost; the sink may see the event again).
//!
//! A delivery whose subscription was deleted meanwhile is acknowledged and dropped (logged).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use faas_gateway_store::{Delivery, EventStore};
use rand::Rng;
use sha2::Digest;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::conductor::RunError;
use crate::metrics::{DeliveryResult, Metrics};
use crate::registry::RegistryHandle;
use crate::sink::{Attempt, SinkClient, ERROR_BODY_LIMIT};
use crate::subscription::{DeliveryPolicy, Sink};

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The sink took the event.
    Done,
    /// Try again later (if retries are left).
    Retry,
    /// Do not retry: dead-letter now.
    Final,
}

/// Classifies an attempt by the Knative data-plane contract.
///
/// ```
/// use faas_gateway::delivery::{classify_status, Verdict};
/// assert_eq!(classify_status(Some(204)), Verdict::Done);
/// assert_eq!(classify_status(Some(429)), Verdict::Retry);
/// assert_eq!(classify_status(Some(503)), Verdict::Retry);
/// assert_eq!(classify_status(None), Verdict::Retry); // timeout or no connection
/// assert_eq!(classify_status(Some(400)), Verdict::Final);
/// assert_eq!(classify_status(Some(410)), Verdict::Final);
/// ```
pub fn classify_status(status: Option<u16>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Done,
        Some(404 | 408 | 409 | 429) | Some(500..=599) | None => Verdict::Retry,
        Some(_) => Verdict::Final,
    }
}

/// [`classify_status`] of an [`Attempt`].
pub fn classify(attempt: &Attempt) -> Verdict {
    classify_status(attempt.status)
}

/// The upper bound of the back-off before attempt `attempt + 1` (attempts count from 0):
/// `min(cap, base · 2^attempt)`, without overflow.
///
/// ```
/// use std::time::Duration;
/// use faas_gateway::delivery::backoff_ceiling;
/// let (b, c) = (Duration::from_millis(200), Duration::from_secs(60));
/// assert_eq!(backoff_ceiling(b, c, 0), Duration::from_millis(200));
/// assert_eq!(backoff_ceiling(b, c, 3), Duration::from_millis(1600));
/// assert_eq!(backoff_ceiling(b, c, 40), c);
/// ```
pub fn backoff_ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    if attempt >= 32 {
        return cap;
    }
    base.checked_mul(factor).map_or(cap, |d| d.min(cap))
}

/// Exponential back-off with full jitter: a uniformly random wait in `[0, backoff_ceiling(base, cap, attempt)]`.
pub fn backoff(base: Duration, cap: Duration, attempt: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = backoff_ceiling(base, cap, attempt);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.gen_range(0..=nanos))
}

/// Parses a `Retry-After` value, delay-seconds or an HTTP date, into a wait from `now` (a date in the past
/// is a zero wait). Anything else is `None`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use faas_gateway::delivery::parse_retry_after;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
/// assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurd values saturate; the policy caps them anyway.
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX / 2)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before the next attempt, after attempt number `attempt` (from 0) failed: the jittered back-off,
/// or the sink's `Retry-After` (capped at `retry_after_max`) when that is longer.
pub fn next_delay(
    policy: &DeliveryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let jittered = backoff(policy.backoff_base, policy.backoff_max, attempt, rng);
    match retry_after {
        Some(asked) => jittered.max(asked.min(policy.retry_after_max)),
        None => jittered,
    }
}

/// Adds the Knative dead-letter extensions to a JSON-format event: `knativeerrordest` (the sink that
/// failed), `knativeerrorcode` (its last status, when it answered) and `knativeerrordata` (base64 of the
/// first KiB of its answer, or of the failure's description when it gave none).
///
/// ```
/// let mut event = serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"});
/// let attempt = faas_gateway::sink::Attempt {
///     status: Some(400), retry_after: None, body: bytes::Bytes::from_static(b"nope"),
///     detail: String::new(), timed_out: false,
/// };
/// faas_gateway::delivery::add_error_context(&mut event, "http://127.0.0.1:9/x", &attempt);
/// assert_eq!(event["knativeerrordest"], "http://127.0.0.1:9/x");
/// assert_eq!(event["knativeerrorcode"], "400");
/// assert_eq!(event["knativeerrordata"], "bm9wZQ==");
/// ```
pub fn add_error_context(event: &mut serde_json::Value, sink: &str, attempt: &Attempt) {
    let Some(obj) = event.as_object_mut() else { return };
    obj.insert("knativeerrordest".into(), sink.into());
    match attempt.status {
        Some(status) => {
            obj.insert("knativeerrorcode".into(), status.to_string().into());
        }
        None => {
            obj.remove("knativeerrorcode");
        }
    }
    let data: &[u8] = if attempt.body.is_empty() { attempt.detail.as_bytes() } else { &attempt.body };
    let data = &data[..data.len().min(ERROR_BODY_LIMIT)];
    obj.insert("knativeerrordata".into(), base64::engine::general_purpose::STANDARD.encode(data).into());
}

/// Everything a delivery worker needs.
pub struct Deliverer {
    /// Where deliveries come from.
    pub store: Arc<dyn EventStore>,
    /// Subscriptions and function routes.
    pub registry: RegistryHandle,
    /// Sends to sinks.
    pub sinks: Arc<SinkClient>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The gateway's default policy (each subscription may override parts of it).
    pub defaults: DeliveryPolicy,
    /// Deliveries in flight at most.
    pub concurrency: usize,
    /// Runs the continuations of compositions (deliveries to [`crate::conductor::CONDUCTOR_TARGET`]).
    pub conductor: Arc<crate::conductor::Conductor>,
    /// The compositions `composition:NAME` sinks start runs of.
    pub compositions: crate::compositions::Compositions,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").field("concurrency", &self.concurrency).finish_non_exhaustive()
    }
}

/// How long to wait in one `claim` call for work to appear.
const CLAIM_WAIT: Duration = Duration::from_millis(500);
/// Most deliveries taken in one claim.
const CLAIM_BATCH: usize = 64;

impl Deliverer {
    /// The lease taken on claimed deliveries: long enough for an attempt and a dead-letter send at the
    /// longest attempt timeout of the defaults and every subscription, plus a margin.
    fn lease(&self) -> Duration {
        let longest = self
            .registry
            .subscriptions()
            .iter()
            .filter_map(|s| s.delivery.as_ref().map(|o| self.defaults.with(o).attempt_timeout))
            .fold(self.defaults.attempt_timeout, Duration::max);
        longest * 2 + Duration::from_secs(5)
    }

    /// Runs the delivery loop until `shutdown` turns true, then waits for the deliveries in flight (each
    /// bounded by its attempt timeout). Deliveries claimed but not finished are not lost: their lease
    /// expires and they come back.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = shutdown.changed() => break,
            };
            let mut held = vec![first];
            while held.len() < CLAIM_BATCH {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => held.push(p),
                    Err(_) => break,
                }
            }
            let claimed = tokio::select! {
                c = self.store.claim(held.len(), self.lease(), CLAIM_WAIT) => c,
                _ = shutdown.changed() => break,
            };
            match claimed {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        let permit = held.pop().expect("claimed no more than the permits held");
                        let this = self.clone();
                        let span = tracing::info_span!(
                            "delivery",
                            key = %delivery.key,
                            subscription = %delivery.target,
                            attempt = delivery.attempt
                        );
                        tasks.spawn(
                            async move {
                                this.deliver(delivery).await;
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming deliveries failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn finish_ack(&self, delivery: &Delivery) {
        if let Err(e) = self.store.ack(&delivery.key).await {
            tracing::warn!(error = %e, "ack failed; the delivery may be repeated");
        }
    }

    async fn finish_retry(&self, delivery: &Delivery, wait: Duration) {
        if let Err(e) = self.store.retry_at(&delivery.key, SystemTime::now() + wait).await {
            tracing::warn!(error = %e, "scheduling a retry failed; the delivery comes back when its lease expires");
        }
    }

    /// Sends `event` to the sink named by `sink` (an `http(s)://` URL or `function:NAME`).
    async fn send(
        &self,
        sink: &str,
        settings: Option<&crate::subscription::HttpSettings>,
        event: &serde_json::Value,
        timeout: Duration,
    ) -> Attempt {
        let parsed = match Sink::parse(sink) {
            Ok(s) => s,
            Err(e) => {
                return Attempt {
                    status: Some(400),
                    retry_after: None,
                    body: Bytes::new(),
                    detail: format!("sink `{sink}` is invalid: {e}"),
                    timed_out: false,
                }
            }
        };
        match parsed {
            Sink::Http(url) => {
                let (method, headers) = match settings {
                    Some(s) => (s.method.clone().unwrap_or_else(|| "POST".into()), s.headers.clone()),
                    None => ("POST".to_string(), Default::default()),
                };
                self.sinks.send_http(url.as_str(), &method, &headers, event, timeout).await
            }
            Sink::Function(name) => {
                let Some(route) = self.registry.function(&name) else {
                    return Attempt {
                        status: Some(404),
                        retry_after: None,
                        body: Bytes::new(),
                        detail: format!("function `{name}` is not registered with the gateway"),
                        timed_out: false,
                    };
                };
                let target = route.target.clone().unwrap_or_else(|| route.name.clone());
                let traceparent = event.get("traceparent").and_then(|v| v.as_str()).map(str::to_string);
                let body = Bytes::from(serde_json::to_vec(event).unwrap_or_default());
                self.sinks.send_function(&route.backend, &target, body, traceparent, timeout).await
            }
            Sink::Composition(name) => self.start_run(&name, event).await,
        }
    }

    /// A delivery to `composition:NAME`: starts a durable run of the registered composition, the event
    /// (structured JSON) as its input. The run's id is derived from the composition and the event's
    /// `source` and `id`, so a delivery made again (after a crash before its acknowledgement) starts no
    /// second run. The delivery is done once the run is started, not when it ends.
    async fn start_run(&self, name: &str, event: &serde_json::Value) -> Attempt {
        let answer = |status: Option<u16>, detail: String| Attempt {
            status,
            retry_after: None,
            body: Bytes::new(),
            detail,
            timed_out: false,
        };
        let program = match self.compositions.get(name).await {
            Ok(Some(registered)) => registered.program,
            Ok(None) => return answer(Some(404), format!("no composition `{name}` is registered with the gateway")),
            Err(e) => return answer(None, e.message),
        };
        let text = |k: &str| event[k].as_str().unwrap_or_default().to_string();
        let key = format!("{name}\0{}\0{}", text("source"), text("id"));
        let digest = crate::conductor::hex(&sha2::Sha256::digest(key.as_bytes())[..20]);
        let id = format!("event-{digest}");
        match self.conductor.start(name, &program, event.clone(), Some(id.clone())).await {
            Ok(_) | Err(RunError::Exists(_)) => {
                answer(Some(202), format!("run `{id}` of composition `{name}` started"))
            }
            Err(RunError::Invalid(m)) => answer(Some(400), m),
            Err(RunError::Store(m)) => answer(None, m),
        }
    }

    /// One delivery, start to finish.
    async fn deliver(&self, delivery: Delivery) {
        if delivery.target == crate::conductor::CONDUCTOR_TARGET {
            self.conductor.transition(&self.sinks, delivery).await;
            return;
        }
        let Some(subscription) = self.registry.subscription(&delivery.target) else {
            tracing::info!("subscription deleted since the event arrived; delivery dropped");
            self.metrics.delivery(DeliveryResult::Dropped);
            self.finish_ack(&delivery).await;
            return;
        };
        let policy = match &subscription.delivery {
            Some(overrides) => self.defaults.with(overrides),
            None => self.defaults.clone(),
        };
        let event: serde_json::Value = match serde_json::from_slice(&delivery.body) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "stored event is not JSON; delivery dropped");
                self.metrics.delivery(DeliveryResult::Dropped);
                self.finish_ack(&delivery).await;
                return;
            }
        };
        let attempt =
            self.send(&subscription.sink, subscription.protocolsettings.as_ref(), &event, policy.attempt_timeout).await;
        let verdict = classify(&attempt);
        tracing::debug!(status = ?attempt.status, detail = %attempt.detail, ?verdict, "attempt finished");
        match verdict {
            Verdict::Done => {
                self.metrics.delivery(DeliveryResult::Delivered);
                let latency = SystemTime::now().duration_since(delivery.received_at).unwrap_or_default();
                self.metrics.latency(latency);
                self.finish_ack(&delivery).await;
            }
            Verdict::Retry if delivery.attempt < policy.retries => {
                let wait = next_delay(&policy, delivery.attempt, attempt.retry_after, &mut rand::thread_rng());
                tracing::info!(status = ?attempt.status, detail = %attempt.detail, ?wait, "delivery failed; will retry");
                self.metrics.delivery(DeliveryResult::Retried);
                self.finish_retry(&delivery, wait).await;
            }
            _ => self.dead_letter(&delivery, &subscription.sink, &policy, event, &attempt).await,
        }
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        sink: &str,
        policy: &DeliveryPolicy,
        mut event: serde_json::Value,
        attempt: &Attempt,
    ) {
        let Some(deadletter) = &policy.deadletter else {
            tracing::warn!(
                status = ?attempt.status,
                detail = %attempt.detail,
                attempts = delivery.attempt + 1,
                "delivery failed for good and the subscription has no dead-letter sink; event dropped"
            );
            self.metrics.delivery(DeliveryResult::Dropped);
            self.finish_ack(delivery).await;
            return;
        };
        add_error_context(&mut event, sink, attempt);
        let dl = self.send(deadletter, None, &event, policy.attempt_timeout).await;
        if classify(&dl) == Verdict::Done {
            tracing::warn!(
                status = ?attempt.status,
                detail = %attempt.detail,
                attempts = delivery.attempt + 1,
                deadletter = %deadletter,
                "delivery failed for good; event dead-lettered"
            );
            self.metrics.delivery(DeliveryResult::Deadlettered);
            self.finish_ack(delivery).await;
        } else {
            let wait = backoff(policy.backoff_base, policy.backoff_max, delivery.attempt, &mut rand::thread_rng());
            tracing::error!(
                deadletter = %deadletter,
                status = ?dl.status,
                detail = %dl.detail,
                ?wait,
                "the dead-letter sink failed too; the delivery will be tried again"
            );
            self.metrics.delivery(DeliveryResult::Retried);
            self.finish_retry(delivery, wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_stays_within_full_jitter_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (base_ms, cap_ms) in [(1u64, 10u64), (200, 60_000), (50, 50), (1000, 3000), (7, 1_000_000)] {
            let (base, cap) = (Duration::from_millis(base_ms), Duration::from_millis(cap_ms));
            for n in 0..70u32 {
                let bound =
                    Duration::from_millis(cap_ms.min(base_ms.saturating_mul(1u64.checked_shl(n).unwrap_or(u64::MAX))));
                let bound = if n >= 63 { cap } else { bound };
                assert_eq!(backoff_ceiling(base, cap, n), bound, "base {base_ms} cap {cap_ms} n {n}");
                let mut max_seen = Duration::ZERO;
                let mut min_seen = Duration::MAX;
                for _ in 0..200 {
                    let d = backoff(base, cap, n, &mut rng);
                    assert!(d <= bound, "{d:?} > {bound:?} (n {n})");
                    max_seen = max_seen.max(d);
                    min_seen = min_seen.min(d);
                }
                // Full jitter: the draws spread over the whole range, not just near the bound.
                assert!(min_seen < bound / 4 + Duration::from_nanos(1), "n {n}: min {min_seen:?} bound {bound:?}");
                assert!(max_seen > bound / 2, "n {n}: max {max_seen:?} bound {bound:?}");
            }
        }
    }

    #[test]
    fn next_delay_honours_retry_after_up_to_the_max() {
        let policy = DeliveryPolicy {
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(100),
            retry_after_max: Duration::from_secs(5),
            ..DeliveryPolicy::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for n in 0..10 {
            let d = next_delay(&policy, n, Some(Duration::from_secs(2)), &mut rng);
            assert_eq!(d, Duration::from_secs(2));
            let d = next_delay(&policy, n, Some(Duration::from_secs(86_400)), &mut rng);
            assert_eq!(d, Duration::from_secs(5));
            let d = next_delay(&policy, n, None, &mut rng);
            assert!(d <= Duration::from_millis(100));
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now).map(|d| d > Duration::from_secs(1 << 40)),
            Some(true)
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(100));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn status_table() {
        for s in [200, 201, 202, 204] {
            assert_eq!(classify_status(Some(s)), Verdict::Done, "{s}");
        }
        for s in [404, 408, 409, 429, 500, 502, 503, 504] {
            assert_eq!(classify_status(Some(s)), Verdict::Retry, "{s}");
        }
        for s in [400, 401, 403, 410, 413, 415, 422, 301] {
            assert_eq!(classify_status(Some(s)), Verdict::Final, "{s}");
        }
        assert_eq!(classify_status(None), Verdict::Retry);
    }
}
