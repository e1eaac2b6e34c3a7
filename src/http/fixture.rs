//! Conversation fixtures (in the spirit of libhtp's test files), shared by unit tests and the fuzz target.
//!
//! Format, line by line:
//! - Before the first marker: `#` comment lines, blank lines, and the optional keyword line `raw`.
//! - `>>>` (rest of the line ignored) starts a client-to-server data chunk (`Dir::ToServer`); `<<<` starts a
//!   server-to-client chunk (`Dir::ToClient`). Every following line up to the next marker is the chunk's data,
//!   each with its line break.
//! - Line breaks: unless `raw`, a line break in a chunk is `\r\n` whatever the file uses (a `\r` before `\n` in
//!   the file is dropped first, so the file may be LF or CRLF). With `raw`, the bytes are taken verbatim.
//! - A chunk line ending in a backslash (`...\`) has neither the backslash nor its line break: exact bodies.
//! - `><> N` (optionally followed by `>>>` or `<<<`) is a gap of N bytes in that direction, by default the
//!   direction of the last chunk.
//! - `=== END >>>` / `=== END <<<` ends that direction (FIN).
//!
//! A marker must start its line; data lines that start with a marker cannot be expressed (use `raw` tests in code).

use std::net::SocketAddr;
use std::sync::Arc;

use super::{HttpConfig, HttpParser, Transaction};
use crate::capture::Timestamp;
use crate::decode::Encap;
use crate::flow::FlowInfo;
use crate::reassembly::{Dir, StreamEvent};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FixtureEvent {
    Data(Vec<u8>),
    Gap(u64),
    End,
}

fn marker_dir(s: &[u8]) -> Option<Dir> {
    if s.starts_with(b">>>") {
        Some(Dir::ToServer)
    } else if s.starts_with(b"<<<") {
        Some(Dir::ToClient)
    } else {
        None
    }
}

/// Parses a fixture (see the module doc) into events. Never fails: unknown lines before the first marker are
/// ignored, a malformed gap line counts as data.
pub fn parse_fixture(text: &[u8]) -> Vec<(Dir, FixtureEvent)> {
    let mut events: Vec<(Dir, FixtureEvent)> = Vec::new();
    let mut raw = false;
    let mut dir: Option<Dir> = None;
    let mut cur: Vec<u8> = Vec::new();
    let flush = |events: &mut Vec<(Dir, FixtureEvent)>, dir: Option<Dir>, cur: &mut Vec<u8>| {
        if let Some(d) = dir
            && !cur.is_empty()
        {
            events.push((d, FixtureEvent::Data(std::mem::take(cur))));
        }
        cur.clear();
    };
    for line in text.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = body.strip_suffix(b"\r").unwrap_or(body);
        if let Some(d) = marker_dir(bare) {
            flush(&mut events, dir, &mut cur);
            dir = Some(d);
            continue;
        }
        if let Some(rest) = bare.strip_prefix(b"><>") {
            let s = String::from_utf8_lossy(rest);
            let mut it = s.split_whitespace();
            if let Some(n) = it.next().and_then(|n| n.parse::<u64>().ok()) {
                let d = it.next().and_then(|t| marker_dir(t.as_bytes())).or(dir).unwrap_or(Dir::ToServer);
                flush(&mut events, dir, &mut cur);
                events.push((d, FixtureEvent::Gap(n)));
                dir = Some(d);
                continue;
            }
        }
        if let Some(rest) = bare.strip_prefix(b"=== END") {
            let t = String::from_utf8_lossy(rest);
            if let Some(d) = marker_dir(t.trim().as_bytes()) {
                flush(&mut events, dir, &mut cur);
                events.push((d, FixtureEvent::End));
                continue;
            }
        }
        if dir.is_none() {
            if bare.trim_ascii() == b"raw" {
                raw = true;
            }
            continue;
        }
        if raw {
            cur.extend_from_slice(line);
        } else if let Some(joined) = bare.strip_suffix(b"\\") {
            cur.extend_from_slice(joined);
        } else {
            cur.extend_from_slice(bare);
            if line.ends_with(b"\n") {
                cur.extend_from_slice(b"\r\n");
            }
        }
    }
    flush(&mut events, dir, &mut cur);
    events
}

/// A fixed flow for fixtures: 10.0.0.1:40000 -> 10.0.0.2:80, uid `CFixture`.
pub fn fixture_flow() -> Arc<FlowInfo> {
    let client: SocketAddr = SocketAddr::from(([10, 0, 0, 1], 40000));
    let server: SocketAddr = SocketAddr::from(([10, 0, 0, 2], 80));
    Arc::new(FlowInfo {
        uid: "CFixture".to_owned(),
        community_id: String::new(),
        client,
        server,
        encap: Encap::default(),
    })
}

/// Feeds events to a fresh parser (one second apart), then finishes it.
pub fn run_events(events: &[(Dir, FixtureEvent)], cfg: Arc<HttpConfig>) -> (Vec<Transaction>, super::HttpStats) {
    let mut p = HttpParser::new(cfg, fixture_flow());
    let mut out = Vec::new();
    let mut t = 1_000_000_000u64;
    for (dir, ev) in events {
        t += 1_000_000_000;
        let ev = match ev {
            FixtureEvent::Data(d) => StreamEvent::Data(d),
            FixtureEvent::Gap(n) => StreamEvent::Gap(*n),
            FixtureEvent::End => StreamEvent::End,
        };
        p.on_stream(*dir, Timestamp(t), ev, &mut out);
    }
    p.finish(Timestamp(t + 1_000_000_000), &mut out);
    (out, p.stats().clone())
}

/// Parses and runs a fixture with `cfg`.
pub fn run_fixture(text: &[u8], cfg: Arc<HttpConfig>) -> Vec<Transaction> {
    run_events(&parse_fixture(text), cfg).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_format() {
        let f = b"# c\n>>>\nGET / HTTP/1.1\r\nHost: a\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 2\n\nab\\\n><> 5\n=== END >>>\n";
        let ev = parse_fixture(f);
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0], (Dir::ToServer, FixtureEvent::Data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec())));
        assert_eq!(
            ev[1],
            (Dir::ToClient, FixtureEvent::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab".to_vec()))
        );
        assert_eq!(ev[2], (Dir::ToClient, FixtureEvent::Gap(5)));
        assert_eq!(ev[3], (Dir::ToServer, FixtureEvent::End));
        let ev = parse_fixture(b"raw\n>>>\nA\nB");
        assert_eq!(ev, vec![(Dir::ToServer, FixtureEvent::Data(b"A\nB".to_vec()))]);
    }
}
