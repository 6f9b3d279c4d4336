//! `LambdaRunner::activations`: activation records rebuilt from CloudWatch Logs.

use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use faas_api::{Activation, ActivationQuery, Error, Runner};

use super::LambdaRunner;

/// How far back `activations` looks when listing.
pub const LOGS_WINDOW: Duration = Duration::from_secs(3600);
/// How far back `activations` looks for one request id (async retries can span hours).
pub const LOGS_ID_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Most log events read for one query; the newest are kept.
const MAX_LOG_EVENTS: usize = 20_000;

impl LambdaRunner {
    /// Activation records read from CloudWatch Logs (`/aws/lambda/<function>`, FilterLogEvents), see
    /// [`crate::logs`]. Without an id, the last [`LOGS_WINDOW`] is read; with an id, every attempt of that
    /// request id in the last [`LOGS_ID_WINDOW`].
    pub(super) async fn activations_from_logs(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        let functions = match &query.function {
            Some(f) => vec![f.clone()],
            None => self.list().await?.into_iter().map(|f| f.spec.name).collect(),
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut all = Vec::new();
        for function in functions {
            let group = format!("/aws/lambda/{}", self.lambda_name(&function));
            let events = match &query.id {
                Some(id) => {
                    let since = now.saturating_sub(LOGS_ID_WINDOW).as_millis() as i64;
                    let starts =
                        self.log_events(&group, since, &[], Some(format!("\"START RequestId: {id}\""))).await?;
                    let Some(first) = starts.iter().map(|e| e.timestamp_ms).min() else { continue };
                    let mut streams: Vec<String> = starts.into_iter().map(|e| e.stream).collect();
                    streams.sort();
                    streams.dedup();
                    self.log_events(&group, first as i64, &streams, None).await?
                }
                None => {
                    let since = now.saturating_sub(LOGS_WINDOW).as_millis() as i64;
                    self.log_events(&group, since, &[], None).await?
                }
            };
            all.extend(
                crate::logs::parse(&function, events)
                    .into_iter()
                    .filter(|a| query.id.as_ref().is_none_or(|id| &a.id == id)),
            );
        }
        all.sort_by(|a, b| b.start_ms.cmp(&a.start_ms).then(b.attempt.cmp(&a.attempt)));
        all.truncate(query.limit.unwrap_or(50));
        Ok(all)
    }

    /// Log events of `group` since `since_ms` (epoch ms), in the given streams (all when empty),
    /// matching `pattern`; the newest [`MAX_LOG_EVENTS`]. A group that does not exist yet (a function
    /// never invoked) has no events.
    async fn log_events(
        &self,
        group: &str,
        since_ms: i64,
        streams: &[String],
        pattern: Option<String>,
    ) -> Result<Vec<crate::logs::LogEvent>, Error> {
        let mut out = std::collections::VecDeque::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = self
                .logs
                .filter_log_events()
                .log_group_name(group)
                .start_time(since_ms)
                .set_filter_pattern(pattern.clone())
                .set_next_token(token.take());
            if !streams.is_empty() {
                call = call.set_log_stream_names(Some(streams.to_vec()));
            }
            let page = match call.send().await {
                Ok(p) => p,
                Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(vec![]),
                Err(e) => return Err(self.sdk_error("CloudWatch Logs FilterLogEvents", group, e)),
            };
            for e in page.events() {
                out.push_back(crate::logs::LogEvent {
                    stream: e.log_stream_name().unwrap_or_default().to_string(),
                    timestamp_ms: e.timestamp().unwrap_or(0).max(0) as u64,
                    message: e.message().unwrap_or_default().to_string(),
                });
                if out.len() > MAX_LOG_EVENTS {
                    out.pop_front();
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out.into())
    }
}
