//! A shard's JSON document from its CloudWatch Logs stream. The awslogs driver makes one
//! event per line of output and splits a line longer than an event holds into several events
//! without a line break, so the events are joined back ([`joined`]) and the first JSON value
//! that starts a line is the document ([`document`]). A stream may appear, or fill, after
//! the task has stopped: [`fetch`] reads it again until the document is whole or time is up.

use std::time::Duration;

use serde_json::Value;

/// The most the awslogs driver puts in one event (256 KiB less CloudWatch's 26 bytes of
/// overhead): a longer line arrives as several events of this size.
pub const MAX_EVENT_BYTES: usize = 262_144 - 26;
/// The most of a stream read (a shard's document is a few tens of KiB).
pub const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// The stream's text: events joined by line breaks, except after a full-size event (a line
/// the driver split).
pub fn joined(events: &[String]) -> String {
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        text.push_str(e);
        let split = e.len() >= MAX_EVENT_BYTES;
        if i + 1 < events.len() && !split {
            text.push('\n');
        }
    }
    text
}

/// The first JSON object starting a line of `text` that has a `probe.shard` section.
pub fn document(text: &str) -> Option<Value> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('{') {
            let mut values =
                serde_json::Deserializer::from_str(&text[offset..]).into_iter::<Value>();
            if let Some(Ok(v)) = values.next() {
                if v.get("probe").and_then(|p| p.get("shard")).is_some() {
                    return Some(v);
                }
            }
        }
        offset += line.len();
    }
    None
}

/// Every event of the stream, from the head, page by page until the token repeats; `None`
/// when the stream does not exist (yet).
async fn read_stream(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> anyhow::Result<Option<Vec<String>>> {
    let mut events = Vec::new();
    let mut bytes = 0;
    let mut token: Option<String> = None;
    loop {
        let r = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await;
        let out = match r {
            Ok(o) => o,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(crate::aws::sdk_error("GetLogEvents", e)),
        };
        for ev in out.events() {
            let m = ev.message().unwrap_or_default();
            bytes += m.len();
            events.push(m.to_string());
        }
        let next = out.next_forward_token().map(str::to_string);
        if next.is_none() || next == token || bytes > MAX_STREAM_BYTES {
            return Ok(Some(events));
        }
        token = next;
    }
}

/// The shard's document from `stream`, read every `poll` until it is whole or `wait` has
/// passed; `Err` says what was there instead.
pub async fn fetch(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    wait: Duration,
    poll: Duration,
) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let why = match read_stream(logs, group, stream).await {
            Ok(Some(events)) => match document(&joined(&events)) {
                Some(doc) => return Ok(doc),
                None if events.is_empty() => "its log stream is empty".to_string(),
                None => format!(
                    "its log stream ({} event(s)) holds no whole shard document",
                    events.len()
                ),
            },
            Ok(None) => format!("its log stream {group}:{stream} does not exist"),
            Err(e) => crate::exit::message_of(&e),
        };
        if tokio::time::Instant::now() + poll > deadline {
            return Err(format!(
                "{} after {}",
                crate::outside::Outside::new(&why).shown(400),
                crate::gateway::fmt_duration(wait)
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// How far a running shard is, from the last progress line in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `probe: N/M open, …`
    Opening { open: u64, of: u64 },
    /// `probe: holding N session(s)…`: every session it will open has opened.
    Holding { held: u64 },
}

impl Progress {
    /// Sessions open now.
    pub fn open(self) -> u64 {
        match self {
            Progress::Opening { open, .. } => open,
            Progress::Holding { held } => held,
        }
    }
}

/// The last progress line among `lines` (a shard's stderr, timestamped), if any.
pub fn progress_of(lines: &[String]) -> Option<Progress> {
    lines.iter().rev().find_map(|l| {
        // The shard's own line: `probe: …` at the start, or after its timestamp; not the
        // same words echoed inside some other line.
        let (head, rest) = l.split_once("probe: ")?;
        if !(head.is_empty() || (head.ends_with(' ') && !head.trim_end().contains(' '))) {
            return None;
        }
        if let Some(h) = rest.strip_prefix("holding ") {
            let held = h.split(' ').next()?.parse().ok()?;
            return Some(Progress::Holding { held });
        }
        let (counts, _) = rest.split_once(" open")?;
        let (open, of) = counts.split_once('/')?;
        Some(Progress::Opening {
            open: open.parse().ok()?,
            of: of.parse().ok()?,
        })
    })
}

/// Lines read from a stream's end for its progress.
const TAIL: i32 = 20;

/// The last progress of the shard writing `stream` (`None`: no line yet, or the read failed:
/// progress is a courtesy, never a verdict).
pub async fn last_progress(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> Option<Progress> {
    let out = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(TAIL)
        .send()
        .await
        .ok()?;
    let lines: Vec<String> = out
        .events()
        .iter()
        .map(|e| e.message().unwrap_or_default().to_string())
        .collect();
    progress_of(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_split_over_events_and_lines_is_found() {
        let doc = serde_json::json!({"probe": {"shard": {"run_id": "r"}}, "command": "verify"});
        let pretty = serde_json::to_string_pretty(&doc).unwrap();
        let mut events: Vec<String> = vec!["waiting 1m until --start-at".into()];
        events.extend(pretty.lines().map(str::to_string));
        events.push("a line after".into());
        assert_eq!(document(&joined(&events)), Some(doc.clone()));
        // One long line split by the driver at full-size events.
        let long = format!(
            "{{\"pad\": \"{}\", \"probe\": {{\"shard\": 1}}}}",
            "x".repeat(MAX_EVENT_BYTES * 2)
        );
        let parts: Vec<String> = long
            .as_bytes()
            .chunks(MAX_EVENT_BYTES)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert_eq!(parts.len(), 3);
        assert!(document(&joined(&parts)).is_some());
        // Cut short: no document; a document without probe.shard is not one.
        let half: Vec<String> = pretty.lines().take(2).map(str::to_string).collect();
        assert_eq!(document(&joined(&half)), None);
        assert_eq!(document("{\"probe\": {}}\n"), None);
    }

    #[test]
    fn progress_lines_are_read_from_the_end() {
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(progress_of(&lines(&["waiting 1m until --start-at"])), None);
        assert_eq!(
            progress_of(&lines(&[
                "2026-12-05T10:00:01Z probe: 120/500 open, 300 handshakes/s, 0 error(s)",
                "2026-12-05T10:00:02Z probe: 480/500 open, 310 handshakes/s, 2 error(s)",
            ])),
            Some(Progress::Opening { open: 480, of: 500 })
        );
        assert_eq!(
            progress_of(&lines(&[
                "2026-12-05T10:00:02Z probe: 480/500 open, 310 handshakes/s, 2 error(s)",
                "2026-12-05T10:00:03Z probe: holding 498 session(s), 1 s of 20m, 0 heartbeat(s) acked, 2 error(s)",
                "{",
            ])),
            Some(Progress::Holding { held: 498 })
        );
        assert_eq!(progress_of(&lines(&["probe: x/y open"])), None);
        // The words inside another line are not the shard's progress.
        assert_eq!(
            progress_of(&lines(&[
                "2026-12-05T10:00:03Z warning: server said probe: holding 9 session(s)"
            ])),
            None
        );
    }
}
