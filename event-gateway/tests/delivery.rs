//! Delivery: the Knative status table case by case, back-off, Retry-After, dead-letter context, dedupe,
//! fan-out, traceparent and metrics — all through real sockets against recording sinks.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;

const WAIT: Duration = Duration::from_secs(30);

fn subscription(id: &str, ty: &str, sink: &str, extra: &str) -> String {
    format!(
        r#"
[[gateway.subscriptions]]
id = "{id}"
types = ["{ty}"]
sink = "{sink}"
protocol = "HTTP"
{extra}
"#
    )
}

#[tokio::test]
async fn status_table_case_by_case() {
    // retries = 2: a retried status is tried 3 times, then dead-lettered; a final one once.
    let done = [200u16, 201, 202, 204];
    let retried = [404u16, 408, 409, 429, 500, 502, 503, 504];
    let final_ = [400u16, 401, 403, 410, 413];
    let dlq = RecordingSink::ok().await;
    let mut sinks = Vec::new();
    let mut text = format!(
        r#"
[gateway.delivery]
retries = 2
backoffBase = "10ms"
backoffMax = "40ms"
attemptTimeout = "300ms"
deadletter = "{}"
"#,
        dlq.url()
    );
    for status in done.iter().chain(&retried).chain(&final_) {
        let sink = RecordingSink::start(Vec::new(), Reply::status(*status).body("sink says no")).await;
        text += &subscription(&format!("s{status}"), &format!("status.{status}"), &sink.url(), "");
        sinks.push((*status, sink));
    }
    // A sink slower than the attempt timeout.
    let slow = RecordingSink::start(Vec::new(), Reply::status(200).delay(Duration::from_secs(3))).await;
    text += &subscription("slow", "status.timeout", &slow.url(), "");
    let gw = start_gateway(&text).await;

    for (status, _) in &sinks {
        let (code, _) = post_structured(&gw.url, &event(&format!("e{status}"), &format!("status.{status}"))).await;
        assert_eq!(code, 202);
    }
    let (code, _) = post_structured(&gw.url, &event("etimeout", "status.timeout")).await;
    assert_eq!(code, 202);

    let expected_dlq = retried.len() + final_.len() + 1;
    let dead = dlq.wait_for(expected_dlq, WAIT).await;
    for (status, sink) in &sinks {
        let attempts = if done.contains(status) {
            1
        } else if retried.contains(status) {
            3
        } else {
            1
        };
        let got = sink.wait_for(attempts, WAIT).await;
        let in_dlq = dead.iter().filter(|r| r.ce_id() == format!("e{status}")).count();
        if done.contains(status) {
            assert_eq!(in_dlq, 0, "{status} is success");
        } else {
            assert_eq!(in_dlq, 1, "{status} ends in the dead-letter sink");
        }
        // No extra attempts after the verdict.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sink.count(), attempts, "{status}: attempts at the sink ({} seen first)", got.len());
    }
    slow.wait_for(3, WAIT).await;
    let timeout_dead = dead.iter().find(|r| r.ce_id() == "etimeout").expect("timed-out event dead-lettered");
    assert!(timeout_dead.header("ce-knativeerrorcode").is_none(), "no status for a timeout");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slow.count(), 3, "a timeout is retried, then dead-lettered");

    let metrics = client().get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "faas_gateway_events_received_total"), (sinks.len() + 1) as f64);
    assert_eq!(
        metric(&metrics, r#"faas_gateway_deliveries_total{result="delivered"}"#),
        done.len() as f64,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, r#"faas_gateway_deliveries_total{result="deadlettered"}"#), expected_dlq as f64);
    assert_eq!(
        metric(&metrics, r#"faas_gateway_deliveries_total{result="retried"}"#),
        ((retried.len() + 1) * 2) as f64
    );
    assert_eq!(metric(&metrics, "faas_gateway_backlog"), 0.0);
    assert!(metric(&metrics, "faas_gateway_delivery_latency_seconds_count") >= done.len() as f64, "{metrics}");
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn dead_lettered_event_carries_knative_error_context_and_original_attributes() {
    let dlq = RecordingSink::ok().await;
    let long_error = "E".repeat(3000);
    let failing = RecordingSink::start(Vec::new(), Reply::status(503).body(&long_error)).await;
    let text = format!(
        r#"
[gateway.delivery]
retries = 1
backoffBase = "10ms"
backoffMax = "20ms"
deadletter = "{}"
"#,
        dlq.url()
    ) + &subscription("fails", "order.created", &failing.url(), "");
    let gw = start_gateway(&text).await;
    let mut e = event("dl-1", "order.created");
    e["subject"] = "orders/7".into();
    e["region"] = "eu".into();
    assert_eq!(post_structured(&gw.url, &e).await.0, 202);
    let got = dlq.wait_for(1, WAIT).await;
    let d = &got[0];
    assert_eq!(failing.count(), 2, "first attempt + 1 retry");
    assert_eq!(d.header("ce-id"), Some("dl-1"));
    assert_eq!(d.header("ce-source"), Some("/tests"));
    assert_eq!(d.header("ce-type"), Some("order.created"));
    assert_eq!(d.header("ce-subject"), Some("orders/7"));
    assert_eq!(d.header("ce-region"), Some("eu"));
    assert_eq!(d.header("ce-knativeerrordest"), Some(failing.url().as_str()));
    assert_eq!(d.header("ce-knativeerrorcode"), Some("503"));
    let data = base64::engine::general_purpose::STANDARD.decode(d.header("ce-knativeerrordata").unwrap()).unwrap();
    assert_eq!(data, vec![b'E'; 1024], "the first KiB of the error body");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&d.body).unwrap(), serde_json::json!({"id": "dl-1"}));
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured_in_seconds_and_http_date_and_capped() {
    let dlq = RecordingSink::ok().await;
    let due = std::time::Instant::now() + Duration::from_secs(2);
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    let seconds = RecordingSink::start(vec![Reply::status(429).header("retry-after", "1")], Reply::status(200)).await;
    let dated = RecordingSink::start(vec![Reply::status(503).header("retry-after", &date)], Reply::status(200)).await;
    let huge = RecordingSink::start(vec![Reply::status(429).header("retry-after", "86400")], Reply::status(200)).await;
    let text = format!(
        r#"
[gateway.delivery]
retries = 3
backoffBase = "10ms"
backoffMax = "20ms"
retryAfterMax = "2s"
deadletter = "{}"
"#,
        dlq.url()
    ) + &subscription("seconds", "ra.seconds", &seconds.url(), "")
        + &subscription("dated", "ra.date", &dated.url(), "")
        + &subscription("huge", "ra.huge", &huge.url(), "");
    let gw = start_gateway(&text).await;
    for (id, ty) in [("r1", "ra.seconds"), ("r2", "ra.date"), ("r3", "ra.huge")] {
        assert_eq!(post_structured(&gw.url, &event(id, ty)).await.0, 202);
    }
    let s = seconds.wait_for(2, WAIT).await;
    let gap = s[1].at - s[0].at;
    assert!(gap >= Duration::from_millis(950), "Retry-After: 1 → waited {gap:?}");
    let d = dated.wait_for(2, WAIT).await;
    // The HTTP date has one-second resolution: the retry comes no earlier than a second before
    // it (measured against the date, not the first attempt, whose time depends on how long the
    // gateway took to start).
    let early = due.saturating_duration_since(d[1].at);
    assert!(early <= Duration::from_secs(1), "Retry-After as an HTTP date → retried {early:?} before the date");
    let h = huge.wait_for(2, WAIT).await;
    let gap = h[1].at - h[0].at;
    assert!(gap >= Duration::from_millis(1900), "capped at retryAfterMax = 2s, waited {gap:?}");
    assert!(gap < Duration::from_secs(25), "a day-long Retry-After is capped (waited {gap:?})");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(dlq.count(), 0);
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn backoff_grows_between_attempts_and_respects_the_cap() {
    // base 100 ms, cap 400 ms: gaps are within [0, min(cap, base·2^n)] plus scheduling slack.
    let dlq = RecordingSink::ok().await;
    let sink = RecordingSink::start(Vec::new(), Reply::status(500)).await;
    let text = format!(
        r#"
[gateway.delivery]
retries = 5
backoffBase = "100ms"
backoffMax = "400ms"
deadletter = "{}"
"#,
        dlq.url()
    ) + &subscription("flaky", "flaky", &sink.url(), "");
    let gw = start_gateway(&text).await;
    assert_eq!(post_structured(&gw.url, &event("b1", "flaky")).await.0, 202);
    let got = sink.wait_for(6, WAIT).await;
    dlq.wait_for(1, WAIT).await;
    let total = got[5].at - got[0].at;
    // The upper bounds sum to 100+200+400+400+400 = 1.5 s; allow generous slack for a loaded machine.
    assert!(total < Duration::from_secs(15), "5 jittered back-offs under a 400 ms cap took {total:?}");
    assert_eq!(sink.count(), 6, "first attempt + 5 retries, no more");
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn duplicates_are_delivered_once_and_fan_out_reaches_each_matching_subscription_once() {
    let a = RecordingSink::ok().await;
    let b = RecordingSink::ok().await;
    let other = RecordingSink::ok().await;
    let text = subscription("a", "order.created", &a.url(), "")
        + &subscription("b", "order.created", &b.url(), "")
        + &subscription("other", "order.deleted", &other.url(), "");
    let gw = start_gateway(&text).await;
    let e = event("dup-1", "order.created");
    let (s1, body1) = post_structured(&gw.url, &e).await;
    let (s2, body2) = post_structured(&gw.url, &e).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(body1, serde_json::json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(body2, serde_json::json!({"accepted": 0, "duplicates": 1}));
    // Same id from another source is a different event.
    let mut e2 = event("dup-1", "order.created");
    e2["source"] = "/elsewhere".into();
    assert_eq!(post_structured(&gw.url, &e2).await.1["accepted"], 1);
    a.wait_for(2, WAIT).await;
    b.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.count(), 2);
    assert_eq!(b.count(), 2);
    assert_eq!(other.count(), 0, "a non-matching subscription gets nothing");
    let sources: Vec<String> = a.received().iter().map(|r| r.header("ce-source").unwrap().to_string()).collect();
    assert!(sources.contains(&"/tests".to_string()) && sources.contains(&"/elsewhere".to_string()));
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn traceparent_reaches_every_delivery() {
    let a = RecordingSink::ok().await;
    let b = RecordingSink::ok().await;
    let text = subscription("a", "traced", &a.url(), "") + &subscription("b", "traced", &b.url(), "");
    let gw = start_gateway(&text).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = client()
        .post(format!("{}/", gw.url))
        .header("content-type", "application/cloudevents+json")
        .header("traceparent", traceparent)
        .body(event("tp-1", "traced").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // An event that already carries its own traceparent extension keeps it.
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut e = event("tp-2", "traced");
    e["traceparent"] = own.into();
    assert_eq!(post_structured(&gw.url, &e).await.0, 202);
    for sink in [&a, &b] {
        let got = sink.wait_for(2, WAIT).await;
        let one = got.iter().find(|r| r.ce_id() == "tp-1").unwrap();
        assert_eq!(one.header("traceparent"), Some(traceparent));
        assert_eq!(one.header("ce-traceparent"), Some(traceparent));
        let two = got.iter().find(|r| r.ce_id() == "tp-2").unwrap();
        assert_eq!(two.header("traceparent"), Some(own));
    }
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn subscription_headers_and_no_deadletter_drop() {
    // protocolsettings headers are sent; a final failure without a dead-letter sink is dropped (counted).
    let sink = RecordingSink::start(vec![Reply::status(400)], Reply::status(200)).await;
    let text = subscription("h", "hdr", &sink.url(), "protocolsettings = { headers = { \"x-api-key\" = \"k1\" } }");
    let gw = start_gateway(&text).await;
    assert_eq!(post_structured(&gw.url, &event("h1", "hdr")).await.0, 202);
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some("k1"));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = client().get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
        if metric(&metrics, r#"faas_gateway_deliveries_total{result="dropped"}"#) == 1.0 {
            assert_eq!(metric(&metrics, "faas_gateway_backlog"), 0.0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "drop not counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1, "400 is not retried");
    gw.gateway.shutdown().await;
}
