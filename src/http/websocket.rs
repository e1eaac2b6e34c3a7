//! WebSocket (RFC 6455) after a `101` answer to `Upgrade: websocket`: frames are counted per direction, and
//! each text message (unmasked, reassembled across continuation frames, capped like a body) becomes a
//! transaction of its own flagged `websocket_message`, so that the analyzers see what a websocket API carries:
//! a client message as a request body, a server message as a response body. Binary and control frames are
//! counted and skipped.

use super::HttpConfig;
use super::body::BodyAcc;
use super::transaction::{Flag, Headers, Transaction};

/// The websocket half of an upgraded connection: both directions' parsers and what a message transaction
/// inherits from the handshake.
pub(super) struct WsConn {
    sides: [WsSide; 2],
    counts: [WsCounts; 2],
    uri: String,
    path: String,
    host: Option<String>,
    /// Message transactions waiting for the parser's next drain.
    pub out: Vec<Transaction>,
}

impl WsConn {
    pub fn new(handshake: &Transaction) -> WsConn {
        WsConn {
            sides: Default::default(),
            counts: Default::default(),
            uri: handshake.uri.clone(),
            path: handshake.path.clone(),
            host: handshake.host().map(str::to_owned),
            out: Vec::new(),
        }
    }

    pub fn counts(&self, s: usize) -> &WsCounts {
        self.counts.get(s.min(1)).unwrap_or(&self.counts[0])
    }

    pub fn lost(&self, s: usize) -> bool {
        self.sides.get(s).is_some_and(|x| x.lost)
    }

    /// See [`WsSide::feed`].
    pub fn feed(&mut self, s: usize, cfg: &HttpConfig, d: &[u8], done: &mut Vec<BodyAcc>) -> usize {
        match (self.sides.get_mut(s), self.counts.get_mut(s)) {
            (Some(side), Some(counts)) => side.feed(cfg, d, counts, done),
            _ => d.len(),
        }
    }

    /// Fills a message transaction: the handshake's target and host (its query was analysed with it, and its
    /// credentials are not repeated), no method (there is no request line), the direction's body.
    pub fn message(&self, tx: &mut Transaction, from_client: bool) {
        tx.has_request = true;
        tx.has_response = !from_client;
        tx.uri = self.uri.clone();
        tx.path = self.path.clone();
        if let Some(h) = &self.host {
            let mut headers = Headers::default();
            headers.push("Host", h);
            tx.request_headers = headers;
        }
        tx.flags.set(Flag::WEBSOCKET_MESSAGE);
    }
}

const OP_CONT: u8 = 0;
const OP_TEXT: u8 = 1;

/// Frame parser of one direction.
#[derive(Default)]
pub(super) struct WsSide {
    hdr: [u8; 14],
    hdr_len: usize,
    /// Payload bytes left in the current frame (after its header).
    left: u64,
    in_payload: bool,
    mask: Option<[u8; 4]>,
    mask_pos: usize,
    /// The current frame carries (part of) a text message.
    text_frame: bool,
    fin: bool,
    /// The message being reassembled, when it is text.
    msg: Option<BodyAcc>,
    /// The stream stopped being websocket (a reserved opcode): the rest is counted, not parsed.
    lost: bool,
}

/// Counters of one direction's frames.
#[derive(Default)]
pub(super) struct WsCounts {
    pub frames: u64,
    pub text_messages: u64,
    pub invalid: u64,
}

impl WsSide {
    /// Feeds stream bytes; completed text messages are pushed to `done`. Returns the bytes left unparsed (the
    /// stream is not websocket any more).
    pub fn feed(&mut self, cfg: &HttpConfig, mut d: &[u8], counts: &mut WsCounts, done: &mut Vec<BodyAcc>) -> usize {
        while !d.is_empty() && !self.lost {
            if !self.in_payload {
                let n = self.fill_header(d);
                d = d.get(n..).unwrap_or(&[]);
                if let Some(full) = self.header_len()
                    && self.hdr_len >= full
                {
                    self.start_frame(cfg, counts);
                    if self.in_payload && self.left == 0 {
                        self.end_frame(counts, done);
                    }
                }
                continue;
            }
            let take = usize::try_from(self.left).unwrap_or(usize::MAX).min(d.len());
            let (piece, rest) = d.split_at(take);
            d = rest;
            self.left -= take as u64;
            if self.text_frame
                && let Some(acc) = self.msg.as_mut()
            {
                match self.mask {
                    Some(key) => {
                        // Unmasked a slice at a time: the capture cap bounds the copy.
                        let mut buf = [0u8; 512];
                        for chunk in piece.chunks(buf.len()) {
                            for (i, (o, b)) in buf.iter_mut().zip(chunk).enumerate() {
                                *o = b ^ key.get((self.mask_pos + i) % 4).copied().unwrap_or(0);
                            }
                            self.mask_pos = (self.mask_pos + chunk.len()) % 4;
                            acc.data(buf.get(..chunk.len()).unwrap_or(&[]));
                        }
                    }
                    None => acc.data(piece),
                }
            }
            if self.left == 0 {
                self.end_frame(counts, done);
            }
        }
        d.len()
    }

    fn fill_header(&mut self, d: &[u8]) -> usize {
        let want = self.header_len().unwrap_or(2);
        let n = want.saturating_sub(self.hdr_len).min(d.len());
        if let (Some(dst), Some(src)) = (self.hdr.get_mut(self.hdr_len..self.hdr_len + n), d.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.hdr_len += n;
        n
    }

    /// The full header length once its first two bytes are known.
    fn header_len(&self) -> Option<usize> {
        if self.hdr_len < 2 {
            return None;
        }
        let b1 = self.hdr.get(1).copied().unwrap_or(0);
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Some(2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 })
    }

    fn start_frame(&mut self, cfg: &HttpConfig, counts: &mut WsCounts) {
        let h = self.hdr;
        let b0 = h[0];
        let b1 = h[1];
        let opcode = b0 & 0x0f;
        counts.frames += 1;
        // Opcodes 3-7 and 11-15 are reserved: not websocket (or a stream we lost), stop parsing it.
        if matches!(opcode, 3..=7 | 11..=15) {
            counts.invalid += 1;
            self.lost = true;
            return;
        }
        let (len, at) = match b1 & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => (u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]), 10),
            n => (u64::from(n), 2),
        };
        let k = |i: usize| h.get(at + i).copied().unwrap_or(0);
        self.mask = (b1 & 0x80 != 0).then(|| [k(0), k(1), k(2), k(3)]);
        self.mask_pos = 0;
        self.fin = b0 & 0x80 != 0;
        self.left = len;
        self.in_payload = true;
        // RSV1 on a text frame is permessage-deflate, whose window spans messages: such messages are counted, not
        // handed over as if they were text.
        let plain = b0 & 0x70 == 0;
        self.text_frame = match opcode {
            OP_TEXT if !plain => {
                self.msg = None;
                false
            }
            OP_TEXT => {
                // A new text message (an unfinished one before it is dropped: the sender broke the rules).
                self.msg = Some(BodyAcc::new(cfg, None));
                true
            }
            OP_CONT => self.msg.is_some(),
            // Control frames may sit between the fragments of a message; binary messages are skipped.
            8..=10 => false,
            _ => {
                self.msg = None;
                false
            }
        };
    }

    fn end_frame(&mut self, counts: &mut WsCounts, done: &mut Vec<BodyAcc>) {
        self.in_payload = false;
        self.hdr_len = 0;
        if self.text_frame
            && self.fin
            && let Some(m) = self.msg.take()
        {
            counts.text_messages += 1;
            done.push(m);
        }
        self.text_frame = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![if fin { 0x80 } else { 0 } | op];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => v.push(m | n as u8),
            n if n < 65536 => {
                v.push(m | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(m | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                v.extend_from_slice(&k);
                v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => v.extend_from_slice(payload),
        }
        v
    }

    #[test]
    fn text_messages_are_unmasked_and_reassembled_byte_by_byte() {
        let cfg = HttpConfig::default();
        let k = Some([1, 2, 3, 4]);
        let mut wire = frame(false, OP_TEXT, k, b"{\"email\":");
        wire.extend(frame(true, 9, k, b"ping"));
        wire.extend(frame(true, OP_CONT, k, b"\"a@b.example\"}"));
        wire.extend(frame(true, 2, k, &[0, 1, 2]));
        wire.extend(frame(true, OP_TEXT, None, &vec![b'x'; 300]));
        wire.extend(frame(true, OP_TEXT, None, b""));
        for step in [1, 3, wire.len()] {
            let (mut side, mut counts, mut done) = (WsSide::default(), WsCounts::default(), Vec::new());
            for c in wire.chunks(step) {
                side.feed(&cfg, c, &mut counts, &mut done);
            }
            assert_eq!(counts.frames, 6, "step {step}");
            assert_eq!(counts.text_messages, 3);
            assert_eq!(done[0].captured, b"{\"email\":\"a@b.example\"}");
            assert_eq!(done[1].len, 300);
            assert_eq!(done[2].len, 0);
        }
    }

    #[test]
    fn upgraded_connection_hands_text_messages_to_the_analyzers() {
        use crate::http::fixture::{FixtureEvent, run_events};
        use crate::reassembly::Dir;
        let hs = b"GET /chat?room=1 HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Cookie: s=1\r\n\r\n";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        let mut server = ok.to_vec();
        server.extend(frame(true, OP_TEXT, None, b"{\"ssn\":\"078-05-1120\"}"));
        let mut client = frame(true, OP_TEXT, Some([9, 8, 7, 6]), b"' OR 1=1 --");
        client.extend(frame(true, 2, Some([9, 8, 7, 6]), b"bin"));
        let events = vec![
            (Dir::ToServer, FixtureEvent::Data(hs.to_vec())),
            (Dir::ToClient, FixtureEvent::Data(server)),
            (Dir::ToServer, FixtureEvent::Data(client)),
            (Dir::ToServer, FixtureEvent::End),
            (Dir::ToClient, FixtureEvent::End),
        ];
        let (txs, stats) = run_events(&events, std::sync::Arc::new(HttpConfig::default()));
        assert_eq!(txs.len(), 3, "{txs:?}");
        assert!(txs[0].flags.has(Flag::UPGRADED) && !txs[0].flags.has(Flag::WEBSOCKET_MESSAGE));
        let (srv, cli) = (&txs[1], &txs[2]);
        assert!(srv.flags.has(Flag::WEBSOCKET_MESSAGE) && cli.flags.has(Flag::WEBSOCKET_MESSAGE));
        assert_eq!(srv.response_body, b"{\"ssn\":\"078-05-1120\"}");
        assert_eq!(cli.request_body, b"' OR 1=1 --");
        assert_eq!((cli.uri.as_str(), cli.host()), ("/chat?room=1", Some("ws.example")));
        assert!(cli.request_headers.get("cookie").is_none(), "credentials are not repeated per message");
        let r = cli.record();
        assert_eq!((r.method, r.status), (None, None));
        assert_eq!((stats.websocket_frames_client, stats.websocket_frames_server), (2, 1));
        assert_eq!((stats.websocket_messages, stats.flags.get(Flag::WEBSOCKET_MESSAGE)), (2, 2));
    }

    #[test]
    fn reserved_opcode_stops_parsing() {
        let cfg = HttpConfig::default();
        let (mut side, mut counts, mut done) = (WsSide::default(), WsCounts::default(), Vec::new());
        side.feed(&cfg, b"\x83\x00\x81\x01a", &mut counts, &mut done);
        assert_eq!((counts.frames, counts.invalid, done.len()), (1, 1, 0));
    }
}
