//! The local child protocol from the pool's side: what it reads of a function process. The
//! process's output lines, split per invocation by the end-of-invocation marker
//! (`faas_supervisor::LineLog`, which reads with bounded buffers), and the answers to its
//! requests (`faas_host::wire::error_from_response`, `payload`), on output and answers a function
//! (buggy or hostile) may write.
//!
//! Invariants, besides "no panic":
//! - the lines read are those of a whole-buffer model: split at `\n`, `\r\n` trimmed, invalid
//!   UTF-8 replaced, the text before a marker kept, each cut to `max_line` bytes; a line longer
//!   than the buffers keeps its first bytes, and its marker when it is among its last ones;
//! - no line holds the marker, none is longer than `max_line`, at most `max_lines` come back;
//! - every portable error reads back from its response parts as itself; any answer reads as an
//!   error whose kind is the body's, else the `faas-error` header's, else the status's.
#![no_main]

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use faas_api::{Error, ErrorKind};
use faas_fuzz::pick_string;
use faas_host::wire::{self, SENTINEL};
use faas_supervisor::{LineCapture, LineLog};
use libfuzzer_sys::fuzz_target;

/// What `LineLog` keeps of a line beyond `max_line`: the marker and an id of this many bytes.
const MAX_MARKER_ID: usize = 256;

fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The lines of `out` as a reader holding each whole line would see them.
fn model(out: &[u8], max_line: usize) -> Vec<String> {
    let marker = SENTINEL;
    let head_cap = max_line + marker.len() + MAX_MARKER_ID;
    let tail_cap = marker.len() + MAX_MARKER_ID;
    let mut lines = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let end = rest.iter().position(|b| *b == b'\n').map_or(rest.len(), |at| at + 1);
        let raw = &rest[..end];
        rest = &rest[end..];
        let trim = |mut b: &[u8]| {
            while let Some(x) = b.strip_suffix(b"\n").or_else(|| b.strip_suffix(b"\r")) {
                b = x;
            }
            b.to_vec()
        };
        let (head, tail) = if raw.len() <= head_cap {
            (trim(raw), None)
        } else {
            let tail = &raw[head_cap.max(raw.len().saturating_sub(tail_cap))..];
            (raw[..head_cap].to_vec(), Some(trim(tail)))
        };
        let line = String::from_utf8_lossy(&head).to_string();
        let (text, ended) = match line.find(marker) {
            Some(at) => (line[..at].to_string(), true),
            None => {
                let in_tail = tail.as_deref().map(String::from_utf8_lossy).is_some_and(|t| t.contains(marker));
                (line.clone(), in_tail)
            }
        };
        let text = cut(&text, max_line).to_string();
        if !text.is_empty() || !ended {
            lines.push(text);
        }
    }
    lines
}

fn output(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=10)? {
        match u.int_in_range(0..=4)? {
            0 => out.extend_from_slice(format!("{SENTINEL} {}\n", pick_string(u, &["a1", "", " x "])?).as_bytes()),
            1 => {
                // A long run without a newline, sometimes ended by a marker.
                let n = u.int_in_range(0..=2000)?;
                out.extend(std::iter::repeat_n(*u.choose(b"a\xff\xc3 ")?, n));
            }
            2 => out.extend_from_slice(SENTINEL.as_bytes()),
            3 => out.extend_from_slice(if u.arbitrary()? { b"\n" } else { b"\r\n" }),
            _ => {
                let n = u.int_in_range(0..=40)?;
                out.extend_from_slice(u.bytes(n)?);
            }
        }
    }
    Ok(out)
}

fn check_lines(u: &mut Unstructured<'_>) -> Result<()> {
    let max_line = u.int_in_range(1..=300)?;
    let max_lines = u.int_in_range(1..=20)?;
    let out = output(u)?;
    let capture = LineCapture { marker: Some(SENTINEL.into()), echo: None, max_line, max_lines };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let got = rt.block_on(async {
        let mut log = LineLog::start(std::io::Cursor::new(out.clone()), std::io::Cursor::new(Vec::new()), capture);
        log.until_closed(Duration::from_secs(10)).await
    });
    let mut want = model(&out, max_line);
    let keep = want.len().saturating_sub(max_lines);
    want.drain(..keep);
    assert_eq!(got, want, "output {:?}", String::from_utf8_lossy(&out));
    for line in &got {
        assert!(line.len() <= max_line && !line.contains(SENTINEL), "{line:?}");
    }
    Ok(())
}

const KINDS: &[ErrorKind] = &[
    ErrorKind::BadInput,
    ErrorKind::Unauthorized,
    ErrorKind::NotFound,
    ErrorKind::PayloadTooLarge,
    ErrorKind::Throttled,
    ErrorKind::Timeout,
    ErrorKind::Function,
    ErrorKind::Crash,
    ErrorKind::BackendUnavailable,
];

fn check_answers(u: &mut Unstructured<'_>) -> Result<()> {
    let kind = *u.choose(KINDS)?;
    let e = Error::new(kind, pick_string(u, &["boom", "", "\u{0}\n\"", "é"])?);
    let e = if u.arbitrary()? { e.with_type(pick_string(u, &["ProbeError", ""])?) } else { e };
    let (status, headers, body) = wire::error_parts(&e);
    assert_eq!(wire::error_from_response(status, &headers, &body), e);

    let status = http::StatusCode::from_u16(u.int_in_range(100..=999)?).unwrap();
    let mut headers = http::HeaderMap::new();
    if u.arbitrary()? {
        let kind = pick_string(u, &["function", "timeout", "nope", "BAD_INPUT"])?;
        if let Ok(v) = http::HeaderValue::from_str(&kind) {
            headers.insert(wire::ERROR_KIND, v);
        }
    }
    let body = u.bytes(u.len().min(64))?.to_vec();
    let read = wire::error_from_response(status, &headers, &body);
    let want = match Error::from_json(&body) {
        Some(e) => e.kind(),
        None => match wire::header(&headers, wire::ERROR_KIND).and_then(ErrorKind::parse) {
            Some(kind) => kind,
            None => Error::from_http(status.as_u16(), &body).kind(),
        },
    };
    assert_eq!(read.kind(), want);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.int_in_range(0..=2u8) {
        Ok(0) => check_answers(&mut u),
        _ => check_lines(&mut u),
    };
});
