//! Findings as a SOC reads them: one line per kind of data exposed at one place of one API operation
//! within a window, not one line per value seen.
//!
//! An API that returns personal data returns it on every call: a line per transaction (or per value) says
//! the same thing thousands of times and costs more to write than the scan that found it. So detections of
//! the same (host, method, endpoint, type, location, field) — JSON array indices folded to `[*]` — within
//! `finding_window` (packet time) are one finding, held from its first detection and emitted when the
//! window since then has passed (next tick) or at the end of the run, like the detect analyzer's alerts and
//! Zeek's notice suppression. It carries `count` (detections), `tx_count` (transactions), `first_seen`,
//! `last_seen`, the first `max_finding_transactions` transaction references and the keyed hashes of the
//! first `max_finding_hashes` distinct values; `ts`, `uid`, `path`, `evidence` and `hash` describe the
//! first detection. `finding_window = "0s"` emits one finding per transaction × type × location × field at
//! once. When the held table is full (`max_held_findings`) a new finding is emitted at once, unaggregated
//! (counted, never dropped).
//!
//! Lines are written by hand into the record buffer (no `serde_json::Value`, no intermediate struct); the
//! fixed part of a finding is rendered once when it is created. Masking and hashing run once per finding,
//! plus one hash per repeat until the hash list is full.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use foldhash::HashMap;

use crate::analyzer::Record;

/// Caps and window of the aggregation, from `[sensitive]`.
#[derive(Clone, Debug)]
pub struct Caps {
    /// Seconds (packet time); 0: no aggregation across transactions.
    pub window: f64,
    pub max_held: usize,
    pub max_transactions: usize,
    pub max_hashes: usize,
}

/// One aggregated finding.
#[derive(Debug)]
pub struct Group {
    due: f64,
    /// Packet time of the detection `uid`, `path`, `evidence` and `hash` describe.
    first_ts: f64,
    first_seen: f64,
    last_seen: f64,
    uid: String,
    trans_depth: u64,
    /// The members fixed at creation, rendered once: `"type":…,"evidence":…,"hash":…` (no braces).
    head: Vec<u8>,
    confidence: f32,
    count: u64,
    tx_count: u64,
    last_seq: u64,
    /// The earliest transactions of the finding, by [`TxKey`], in that order: whatever order the workers
    /// handed them in, the same references come out.
    transactions: Vec<TxKey>,
    /// The distinct value hashes seen earliest (each under the earliest transaction it was seen in), sorted.
    hashes: Vec<(TxKey, [u8; 16])>,
}

/// A transaction's place in the capture: packet time, then flow uid and depth to break ties.
#[derive(Clone, Debug, PartialEq)]
struct TxKey {
    ts: f64,
    uid: String,
    trans_depth: u64,
}

impl TxKey {
    fn of(hit: &Hit<'_>) -> TxKey {
        TxKey { ts: hit.ts, uid: hit.uid.to_owned(), trans_depth: hit.trans_depth }
    }
    /// `hit` comes before `self`.
    fn after(&self, hit: &Hit<'_>) -> bool {
        self.ts
            .total_cmp(&hit.ts)
            .then_with(|| self.uid.as_str().cmp(hit.uid))
            .then(self.trans_depth.cmp(&hit.trans_depth))
            == std::cmp::Ordering::Greater
    }
}

/// What a new finding is made of; strings are borrowed, copied into the rendered head once.
pub struct NewFinding<'a> {
    pub ty: &'a str,
    pub category: &'a str,
    pub signature_id: &'a str,
    pub severity: &'a str,
    pub method: Option<&'a str>,
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub endpoint: Option<&'a str>,
    pub location: &'a str,
    pub field: &'a str,
    pub evidence: &'a str,
    pub hash: [u8; 16],
    pub raw: Option<&'a str>,
}

/// One detection (one value in one transaction, with its repeats there) being added.
pub struct Hit<'a> {
    pub ts: f64,
    pub uid: &'a str,
    pub trans_depth: u64,
    pub confidence: f32,
    pub count: u32,
    /// The transaction's sequence number in this run (distinct values of one transaction count it once).
    pub seq: u64,
}

impl Group {
    pub fn new(f: &NewFinding<'_>, hit: &Hit<'_>, window: f64) -> Group {
        let mut head = Vec::with_capacity(256);
        for (k, v) in [
            ("type", Some(f.ty)),
            ("category", Some(f.category)),
            ("signature_id", Some(f.signature_id)),
            ("severity", Some(f.severity)),
            ("method", f.method),
            ("host", f.host),
            ("path", Some(f.path)),
            ("endpoint", f.endpoint),
            ("location", Some(f.location)),
            ("field", Some(f.field)),
            ("evidence", Some(f.evidence)),
        ] {
            if !head.is_empty() {
                head.push(b',');
            }
            put_str(&mut head, k);
            head.push(b':');
            match v {
                Some(v) => put_str(&mut head, v),
                None => head.extend_from_slice(b"null"),
            }
        }
        head.extend_from_slice(b",\"hash\":");
        put_hash(&mut head, &f.hash);
        if let Some(raw) = f.raw {
            head.extend_from_slice(b",\"value\":");
            put_str(&mut head, raw);
        }
        Group {
            due: hit.ts + window,
            first_ts: hit.ts,
            first_seen: hit.ts,
            last_seen: hit.ts,
            uid: hit.uid.to_owned(),
            trans_depth: hit.trans_depth,
            head,
            confidence: hit.confidence,
            count: u64::from(hit.count),
            tx_count: 1,
            last_seq: hit.seq,
            transactions: vec![TxKey::of(hit)],
            hashes: vec![(TxKey::of(hit), f.hash)],
        }
    }

    /// Whether the hash of `hit`'s value could still be kept (else the caller need not compute it): room
    /// left, or `hit` is earlier than the latest kept.
    pub fn wants_hash(&self, hit: &Hit<'_>, caps: &Caps) -> bool {
        self.hashes.len() < caps.max_hashes || self.hashes.last().is_some_and(|(k, _)| k.after(hit))
    }

    /// Adds a detection; `hash` is that of its value when [`Group::wants_hash`] said so.
    pub fn add(&mut self, hit: &Hit<'_>, hash: Option<[u8; 16]>, caps: &Caps) {
        self.count += u64::from(hit.count);
        self.confidence = self.confidence.max(hit.confidence);
        self.first_seen = self.first_seen.min(hit.ts);
        self.last_seen = self.last_seen.max(hit.ts);
        if hit.seq != self.last_seq {
            self.last_seq = hit.seq;
            self.tx_count += 1;
            let at = self.transactions.partition_point(|k| !k.after(hit));
            if at < caps.max_transactions {
                self.transactions.insert(at, TxKey::of(hit));
                self.transactions.truncate(caps.max_transactions);
            }
        }
        if let Some(h) = hash {
            match self.hashes.iter().position(|(_, x)| *x == h) {
                // Seen already: it moves up if this transaction is earlier.
                Some(i) if self.hashes.get(i).is_some_and(|(k, _)| k.after(hit)) => {
                    self.hashes.remove(i);
                }
                Some(_) => return,
                None => {}
            }
            let at = self.hashes.partition_point(|(k, _)| !k.after(hit));
            if at < caps.max_hashes {
                self.hashes.insert(at, (TxKey::of(hit), h));
                self.hashes.truncate(caps.max_hashes);
            }
        }
    }

    /// Whether `hit` precedes the detection this finding describes as its first (packet time, then
    /// transaction reference: the same choice whatever the order the workers saw them in).
    pub fn is_after(&self, hit: &Hit<'_>) -> bool {
        (self.first_ts, self.uid.as_str(), self.trans_depth) > (hit.ts, hit.uid, hit.trans_depth)
    }

    /// Makes `new` (built from `hit`) the first detection of this finding, and adds `hit`.
    pub fn take_first(&mut self, new: Group, hit: &Hit<'_>, caps: &Caps) {
        self.first_ts = new.first_ts;
        self.uid = new.uid;
        self.trans_depth = new.trans_depth;
        self.head = new.head;
        let hash = new.hashes.first().map(|(_, h)| *h);
        self.add(hit, hash, caps);
    }

    /// The finding as one JSON object.
    pub fn render(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ts\":");
        put_f64(out, self.first_ts);
        out.extend_from_slice(b",\"uid\":");
        put_str(out, &self.uid);
        out.extend_from_slice(b",\"trans_depth\":");
        put_u64(out, self.trans_depth);
        out.push(b',');
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b",\"confidence\":");
        put_f64(out, (f64::from(self.confidence) * 100.0).round() / 100.0);
        out.extend_from_slice(b",\"count\":");
        put_u64(out, self.count);
        out.extend_from_slice(b",\"tx_count\":");
        put_u64(out, self.tx_count);
        out.extend_from_slice(b",\"first_seen\":");
        put_f64(out, self.first_seen);
        out.extend_from_slice(b",\"last_seen\":");
        put_f64(out, self.last_seen);
        out.extend_from_slice(b",\"transactions\":[");
        for (i, k) in self.transactions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"uid\":");
            put_str(out, &k.uid);
            out.extend_from_slice(b",\"trans_depth\":");
            put_u64(out, k.trans_depth);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"hashes\":[");
        for (i, (_, h)) in self.hashes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            put_hash(out, h);
        }
        out.extend_from_slice(b"]}");
    }

    pub fn record(&self) -> Record {
        let mut json = Vec::with_capacity(self.head.len() + 256);
        self.render(&mut json);
        Record { stream: "findings", json }
    }
}

struct Table {
    map: HashMap<Vec<u8>, Group>,
    /// Earliest `due` in the map (a tick before it has nothing to do).
    next_due: f64,
}

/// The findings held for aggregation, shared by every worker.
pub struct Held {
    table: Mutex<Table>,
    pub caps: Caps,
    /// Findings emitted at once because the table was full.
    pub cap_hits: AtomicU64,
    /// Workers alive: the last one to finish emits what is held.
    pub live_workers: AtomicUsize,
}

impl Held {
    pub fn new(caps: Caps) -> Held {
        Held {
            table: Mutex::new(Table { map: HashMap::default(), next_due: f64::INFINITY }),
            caps,
            cap_hits: AtomicU64::new(0),
            live_workers: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The held table, locked for one transaction's detections (one lock per transaction).
    pub fn lock_tx(&self) -> HeldTx<'_> {
        HeldTx { table: self.lock(), caps: &self.caps, cap_hits: &self.cap_hits }
    }

    /// The held findings due at `now` (all with `None`), oldest first.
    pub fn take_due(&self, now: Option<f64>) -> Vec<Group> {
        let mut t = self.lock();
        if now.is_some_and(|n| n < t.next_due) || t.map.is_empty() {
            return Vec::new();
        }
        let mut due: Vec<Group> = t.map.extract_if(|_, g| now.is_none_or(|n| g.due <= n)).map(|(_, g)| g).collect();
        let next = t.map.values().map(|g| g.due).fold(f64::INFINITY, f64::min);
        t.next_due = next;
        due.sort_by(|a, b| a.first_seen.total_cmp(&b.first_seen).then_with(|| a.head.cmp(&b.head)));
        due
    }
}

/// The held table, locked for one transaction.
pub struct HeldTx<'a> {
    table: std::sync::MutexGuard<'a, Table>,
    caps: &'a Caps,
    cap_hits: &'a AtomicU64,
}

impl HeldTx<'_> {
    /// The held finding of `key`, if any.
    pub fn get(&mut self, key: &[u8]) -> Option<&mut Group> {
        self.table.map.get_mut(key)
    }

    /// Holds a new finding; when the table is full it is handed back to be emitted at once.
    pub fn insert(&mut self, key: &[u8], g: Group) -> Option<Group> {
        if self.table.map.len() >= self.caps.max_held {
            self.cap_hits.fetch_add(1, Ordering::Relaxed);
            return Some(g);
        }
        self.table.next_due = self.table.next_due.min(g.due);
        self.table.map.insert(key.to_vec(), g);
        None
    }
}

/// A JSON string: one scan and one copy when nothing needs escaping (the usual case), else serde_json's
/// escapes.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f) {
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    use std::io::Write as _;
    let _ = write!(out, "{n}");
}

/// serde_json's float formatting (shortest round trip; `null` when not finite), so lines read back equal.
fn put_f64(out: &mut Vec<u8>, x: f64) {
    let _ = serde_json::to_writer(&mut *out, &x);
}

/// 32 lowercase hex digits, quoted.
fn put_hash(out: &mut Vec<u8>, h: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in h {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
    out.push(b'"');
}

/// The field as findings are grouped by: JSON array indices folded (`$.items[3].email` → `$.items[*].email`),
/// so every element of a list is one place. Path segments (`segment[2]`) and names keep their text.
pub fn group_field(field: &str) -> std::borrow::Cow<'_, str> {
    if !field.starts_with('$') || !field.contains('[') {
        return field.into();
    }
    let b = field.as_bytes();
    let mut out = String::with_capacity(field.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b.get(i) == Some(&b'[') {
            let mut j = i + 1;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if j > i + 1 && b.get(j) == Some(&b']') {
                out.push_str(field.get(last..i).unwrap_or(""));
                out.push_str("[*]");
                last = j + 1;
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(field.get(last..).unwrap_or(""));
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps { window: 300.0, max_held: 2, max_transactions: 2, max_hashes: 2 }
    }

    fn nf(hash: u8) -> NewFinding<'static> {
        NewFinding {
            ty: "email",
            category: "pii",
            signature_id: "pii.email",
            severity: "medium",
            method: Some("GET"),
            host: None,
            path: "/u/\"1\"",
            endpoint: Some("/u/{id}"),
            location: "response.body",
            field: "$.a[*].email",
            evidence: "j***@e***.com",
            hash: [hash; 16],
            raw: None,
        }
    }

    fn hit(ts: f64, uid: &str) -> Hit<'_> {
        Hit { ts, uid, trans_depth: 1, confidence: 0.9, count: 2, seq: u64::from(uid.bytes().last().unwrap_or(0)) }
    }

    #[test]
    fn group_counts_and_bounds_its_lists() {
        let c = caps();
        let mut g = Group::new(&nf(1), &hit(10.0, "C1"), c.window);
        g.add(&hit(11.0, "C1"), Some([2; 16]), &c);
        g.add(&hit(12.0, "C2"), Some([3; 16]), &c);
        g.add(&hit(13.0, "C3"), Some([1; 16]), &c);
        let v: serde_json::Value = serde_json::from_slice(&g.record().json).unwrap();
        assert_eq!(v["count"], 8);
        assert_eq!(v["tx_count"], 3);
        assert_eq!(v["transactions"].as_array().unwrap().len(), 2);
        assert_eq!(v["hashes"].as_array().unwrap().len(), 2);
        assert_eq!(v["hash"], "01010101010101010101010101010101");
        assert_eq!(v["path"], "/u/\"1\"");
        assert_eq!(v["host"], serde_json::Value::Null);
        assert_eq!(
            (v["first_seen"].as_f64(), v["last_seen"].as_f64(), v["ts"].as_f64()),
            (Some(10.0), Some(13.0), Some(10.0))
        );
        assert!(!g.wants_hash(&hit(14.0, "C4"), &c), "full, and later than every kept hash");
        assert!(g.wants_hash(&hit(9.0, "C0"), &c), "earlier than a kept hash");
    }

    /// Workers hand a finding's transactions over in any order: the references and hashes kept are the
    /// earliest by packet time either way.
    #[test]
    fn kept_references_and_hashes_do_not_depend_on_arrival_order() {
        let c = Caps { max_transactions: 3, max_hashes: 3, ..caps() };
        let hits: Vec<(Hit<'_>, [u8; 16])> =
            [(10.0, "C1", 1), (11.0, "C2", 2), (12.0, "C3", 3), (13.0, "C4", 4), (14.0, "C5", 2)]
                .into_iter()
                .map(|(ts, uid, h)| (hit(ts, uid), [h; 16]))
                .collect();
        let render = |order: &[usize]| {
            let first = order.first().and_then(|&i| hits.get(i)).unwrap();
            let mut g = Group::new(&nf(first.1[0]), &first.0, c.window);
            for &i in order.get(1..).unwrap_or(&[]) {
                let (h, v) = hits.get(i).unwrap();
                let hash = g.wants_hash(h, &c).then_some(*v);
                if g.is_after(h) {
                    g.take_first(Group::new(&nf(v[0]), h, c.window), h, &c);
                } else {
                    g.add(h, hash, &c);
                }
            }
            let v: serde_json::Value = serde_json::from_slice(&g.record().json).unwrap();
            (v["transactions"].clone(), v["hashes"].clone(), v["tx_count"].clone(), v["uid"].clone())
        };
        let want = render(&[0, 1, 2, 3, 4]);
        assert_eq!(
            want.0.as_array().unwrap().iter().map(|t| t["uid"].as_str().unwrap()).collect::<Vec<_>>(),
            ["C1", "C2", "C3"]
        );
        assert_eq!(want.1.as_array().unwrap().len(), 3);
        for order in [[4, 3, 2, 1, 0], [2, 4, 0, 3, 1], [3, 0, 4, 1, 2]] {
            assert_eq!(render(&order), want, "order {order:?}");
        }
    }

    #[test]
    fn the_earliest_detection_describes_the_finding() {
        let c = caps();
        let mut g = Group::new(&nf(1), &hit(20.0, "C2"), c.window);
        let early = hit(10.0, "C1");
        assert!(g.is_after(&early) && !g.is_after(&hit(30.0, "C3")));
        g.take_first(Group::new(&nf(7), &early, c.window), &early, &c);
        let v: serde_json::Value = serde_json::from_slice(&g.record().json).unwrap();
        assert_eq!((v["ts"].as_f64(), v["uid"].as_str()), (Some(10.0), Some("C1")));
        assert_eq!(v["hash"], "07070707070707070707070707070707");
        assert_eq!((v["count"].as_u64(), v["tx_count"].as_u64()), (Some(4), Some(2)));
    }

    #[test]
    fn held_table_is_capped_and_drained_when_due() {
        let h = Held::new(caps());
        let mut t = h.lock_tx();
        assert!(t.insert(b"a", Group::new(&nf(1), &hit(10.0, "C1"), 300.0)).is_none());
        assert!(t.insert(b"b", Group::new(&nf(1), &hit(20.0, "C1"), 300.0)).is_none());
        assert!(t.insert(b"c", Group::new(&nf(1), &hit(20.0, "C1"), 300.0)).is_some(), "full");
        assert!(t.get(b"a").is_some());
        drop(t);
        assert_eq!(h.cap_hits.load(Ordering::Relaxed), 1);
        assert!(h.take_due(Some(309.0)).is_empty());
        assert_eq!(h.take_due(Some(310.0)).len(), 1);
        assert_eq!(h.take_due(None).len(), 1);
        assert!(h.take_due(None).is_empty());
    }

    #[test]
    fn array_indices_fold() {
        assert_eq!(group_field("$.items[12].cards[0].number"), "$.items[*].cards[*].number");
        assert_eq!(group_field("$['a[1]']"), "$['a[*]']");
        assert_eq!(group_field("segment[2]"), "segment[2]");
        assert_eq!(group_field("$.x[a]"), "$.x[a]");
        assert_eq!(group_field("$.x[1"), "$.x[1");
    }
}
