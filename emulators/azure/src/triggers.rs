//! Timer triggers, as the timer extension runs them: a function fires on its NCRONTAB schedule
//! (or every interval of a `hh:mm:ss` schedule), one firing at a time, with the reason `Timer
//! fired at <time>` and the `TimerInfo` the extension sends:
//! `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last","Next","LastUpdated"}|null,"IsPastDue":false}`.
//!
//! The schedule monitor (`useMonitor`, on by default, off for schedules that fire more often than
//! once a minute) keeps the status in the site's `data/timers/<fn>.json`: a firing that came due
//! while the emulator was down fires once at start with `IsPastDue: true`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{FunctionConfig, Schedule, Trigger};
use crate::invoke;
use crate::json::{self, Obj, J};
use crate::site::{write_atomic, Site, TimerStatus};

/// The next occurrence of a schedule after `t`.
pub(crate) fn next_after(schedule: &Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Cron(cron) => cron.find_next_occurrence(&t, false).ok(),
        Schedule::Interval(d) => Some(t + chrono::Duration::from_std(*d).ok()?),
    }
}

/// Whether a schedule fires more often than once a minute (the monitor is then off).
fn frequent(schedule: &Schedule) -> bool {
    match schedule {
        Schedule::Interval(d) => *d < Duration::from_secs(60),
        Schedule::Cron(_) => {
            let now = Utc::now();
            match next_after(schedule, now).and_then(|a| next_after(schedule, a).map(|b| (a, b))) {
                Some((a, b)) => (b - a) < chrono::Duration::seconds(60),
                None => false,
            }
        }
    }
}

fn parse(t: &Option<String>) -> Option<DateTime<Utc>> {
    t.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// A timer's `ScheduleStatus`: `(Last, Next, LastUpdated)`.
pub(crate) type ScheduleStatus = (Option<DateTime<Utc>>, DateTime<Utc>, DateTime<Utc>);

/// The `TimerInfo` value: `status` is given when the monitor is on.
pub(crate) fn timer_value(status: Option<ScheduleStatus>, past_due: bool) -> J {
    let mut schedule = Obj::new();
    schedule.push("AdjustForDST", J::V(Value::Bool(true)));
    let status = match status {
        None => J::null(),
        Some((last, next, updated)) => {
            let mut s = Obj::new();
            s.push(
                "Last",
                J::s(last.map(|t| json::local_newtonsoft(&t)).unwrap_or_else(|| "0001-01-01T00:00:00".into())),
            )
            .push("Next", J::s(json::local_newtonsoft(&next)))
            .push("LastUpdated", J::s(json::local_newtonsoft(&updated)));
            J::O(s)
        }
    };
    let mut o = Obj::new();
    o.push("Schedule", J::O(schedule)).push("ScheduleStatus", status).push("IsPastDue", J::V(Value::Bool(past_due)));
    J::O(o)
}

/// Starts a timer-triggered function's timer.
pub(crate) fn spawn(site: Arc<Site>, function: FunctionConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(site, function))
}

struct Timer {
    site: Arc<Site>,
    function: FunctionConfig,
    schedule: Schedule,
    monitor: bool,
    status: TimerStatus,
}

impl Timer {
    fn path(&self) -> std::path::PathBuf {
        self.site.dir.join("data").join("timers").join(format!("{}.json", self.function.name))
    }

    fn save(&self) {
        if !self.monitor {
            return;
        }
        let bytes = serde_json::to_vec_pretty(&self.status).unwrap_or_default();
        if let Err(e) = write_atomic(&self.path(), &bytes) {
            tracing::warn!(site = %self.site.name, function = %self.function.name, error = %e, "cannot write the timer status");
        }
        self.site.timer_status.lock().expect("timer status").insert(self.function.name.clone(), self.status.clone());
    }

    async fn fire(&mut self, scheduled: DateTime<Utc>, past_due: bool) {
        let fired = Utc::now();
        let status = self.monitor.then(|| {
            (
                parse(&self.status.last),
                parse(&self.status.next).unwrap_or(scheduled),
                parse(&self.status.last_updated).unwrap_or(fired),
            )
        });
        let mut data = Obj::new();
        data.push(self.function.trigger_binding().name.clone(), timer_value(status, past_due));
        let mut meta = Obj::new();
        meta.push("sys", invoke::sys(&self.function.name));
        let reason = format!("Timer fired at {}", json::local_roundtrip(&fired));
        let _ = self.site.run(&self.function, data, meta, &reason).await;
        self.status = TimerStatus {
            last: Some(fired.to_rfc3339()),
            next: next_after(&self.schedule, Utc::now()).map(|t| t.to_rfc3339()),
            last_updated: Some(Utc::now().to_rfc3339()),
        };
        self.save();
    }
}

async fn sleep_until(t: DateTime<Utc>) {
    let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

async fn run(site: Arc<Site>, function: FunctionConfig) {
    let Trigger::Timer { schedule, run_on_startup, use_monitor } = function.trigger.clone() else { return };
    let monitor = use_monitor && !frequent(&schedule);
    let mut timer = Timer { site, function, schedule, monitor, status: TimerStatus::default() };
    if monitor {
        if let Ok(bytes) = std::fs::read(timer.path()) {
            timer.status = serde_json::from_slice(&bytes).unwrap_or_default();
        }
        let now = Utc::now();
        match parse(&timer.status.next) {
            Some(next) if next + chrono::Duration::seconds(1) < now => {
                // The firing came due while the host was down.
                timer.fire(next, true).await;
            }
            Some(_) => {}
            None => {
                timer.status = TimerStatus {
                    last: None,
                    next: next_after(&timer.schedule, now).map(|t| t.to_rfc3339()),
                    last_updated: Some(now.to_rfc3339()),
                };
                timer.save();
            }
        }
    }
    if run_on_startup {
        let now = Utc::now();
        timer.fire(now, false).await;
    }
    loop {
        let Some(next) = next_after(&timer.schedule, Utc::now()) else {
            tracing::warn!(function = %timer.function.name, "the schedule has no next occurrence");
            return;
        };
        if timer.monitor {
            timer.status.next = Some(next.to_rfc3339());
        }
        sleep_until(next).await;
        timer.fire(next, false).await;
    }
}

/// The values a blob path pattern (`container/{name}`) takes from a blob path
/// (`container/a.txt` gives `name` = `a.txt`).
pub(crate) fn blob_path_values(pattern: &str, path: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = path;
    let mut pat = pattern;
    loop {
        match pat.find('{') {
            None => return if rest == pat { out } else { Vec::new() },
            Some(open) => {
                let literal = &pat[..open];
                let Some(stripped) = rest.strip_prefix(literal) else { return Vec::new() };
                rest = stripped;
                let Some(close) = pat[open..].find('}') else { return Vec::new() };
                let name = &pat[open + 1..open + close];
                pat = &pat[open + close + 1..];
                let next_literal = pat.split('{').next().unwrap_or("");
                let end =
                    if next_literal.is_empty() { rest.len() } else { rest.find(next_literal).unwrap_or(rest.len()) };
                out.push((name.to_string(), rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_timer_value_is_the_extensions_timer_info() {
        let t = Utc.with_ymd_and_hms(2026, 12, 3, 8, 30, 0).unwrap();
        let v = serde_json::to_string(&timer_value(None, false)).unwrap();
        assert_eq!(v, r#"{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}"#);
        let v = serde_json::to_string(&timer_value(Some((None, t, t)), true)).unwrap();
        assert_eq!(
            v,
            r#"{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"0001-01-01T00:00:00","Next":"2026-12-03T08:30:00+00:00","LastUpdated":"2026-12-03T08:30:00+00:00"},"IsPastDue":true}"#
        );
    }

    #[test]
    fn schedules_give_their_next_occurrence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("host.json"),
            r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"x"}}}"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(
            dir.path().join("t/function.json"),
            r#"{"bindings":[{"type":"timerTrigger","name":"timer","schedule":"0 30 9 * * 1-5"}]}"#,
        )
        .unwrap();
        let app = crate::config::load_app(dir.path(), &Default::default()).unwrap();
        let Trigger::Timer { schedule, .. } = &app.functions[0].trigger else { panic!() };
        // 2026-12-05 is a Saturday: the next weekday 09:30:00 is Monday the 7th.
        let sat = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        assert_eq!(next_after(schedule, sat), Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 30, 0).unwrap()));
        assert!(!frequent(schedule));
        assert!(frequent(&Schedule::Interval(Duration::from_secs(5))));
    }

    #[test]
    fn blob_paths_fill_their_pattern() {
        assert_eq!(blob_path_values("images/{name}", "images/a.png"), [("name".to_string(), "a.png".to_string())]);
        assert_eq!(
            blob_path_values("in/{stem}.{ext}", "in/a.b.txt"),
            [("stem".to_string(), "a".to_string()), ("ext".to_string(), "b.txt".to_string())]
        );
        assert!(blob_path_values("images/{name}", "other/a.png").is_empty());
    }
}
