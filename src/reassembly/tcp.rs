//! One TCP connection: two independent half-streams, each mapping 32-bit sequence numbers to 64-bit stream
//! offsets, delivering in-order bytes at once and holding out-of-order ones in a bounded [`SegmentStore`].

use std::sync::atomic::{AtomicBool, Ordering};

use super::segments::{SEG_OVERHEAD_BYTES, SegmentStore};
use super::{Dir, MemBudget, ReassemblyConfig, StreamEvent, StreamSink};
use crate::capture::Timestamp;
use crate::decode::{TcpHeader, tcp_flags};

/// How far ahead of the next expected byte a segment or an ACK may point. The largest window TCP can
/// advertise (65535 << 14) is just under 2^30; anything further is not this stream's data (stale, spoofed
/// or a sequence jump) and would otherwise turn into a gigantic gap.
const MAX_AHEAD_BYTES: u64 = 1 << 30;

/// Cap hits are counted every time (in [`HalfStats`]) and logged once per cause per process.
static DIR_CAP_LOGGED: AtomicBool = AtomicBool::new(false);
static MEMCAP_LOGGED: AtomicBool = AtomicBool::new(false);

fn log_once(flag: &AtomicBool, log: impl FnOnce()) {
    if !flag.swap(true, Ordering::Relaxed) {
        log();
    }
}

/// Counters of one direction.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HalfStats {
    pub packets: u64,
    /// Payload bytes captured (before any trimming).
    pub payload_bytes_seen: u64,
    pub delivered_bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Gaps forced by a per-direction cap or the shard memcap (included in `gaps`).
    pub forced_gaps: u64,
    /// Held out-of-order segments a new segment overlapped.
    pub overlaps: u64,
    /// Overlaps (held or recently delivered bytes) where the bytes differed: a possible evasion attempt.
    pub overlaps_different_data: u64,
    /// Segments carrying bytes already delivered (or skipped as a gap).
    pub retransmissions: u64,
    /// One-byte keep-alive probes (sequence one below the next expected byte), ignored.
    pub keepalives: u64,
    pub depth_skipped_bytes: u64,
    /// Segments refused: too far ahead of the stream to be its data.
    pub ooo_dropped_segments: u64,
    /// Buffering refused by the shard memcap (each then forced a gap).
    pub memcap_refusals: u64,
    /// Segments cut by the snaplen (the missing remainder is reported as a gap).
    pub truncated_segments: u64,
    /// Payload bytes after the FIN, or after this direction ended.
    pub after_fin_bytes: u64,
    /// ACKs pointing implausibly far ahead, ignored.
    pub bogus_acks: u64,
    /// The recent window could not be allocated at some point (windows may use half the budget): meanwhile
    /// retransmissions carrying different data go unnoticed.
    pub recent_window_refused: bool,
    /// The direction started with a SYN (false: picked up mid-stream).
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
}

/// The last delivered bytes of one direction, as a ring indexed by stream offset.
#[derive(Debug, Default)]
struct RecentWindow {
    ring: Vec<u8>,
    /// Offsets below this are not in the ring (before allocation, or before the last gap).
    valid_from: u64,
    refused: bool,
}

impl RecentWindow {
    fn mem(&self) -> usize {
        self.ring.len()
    }

    /// Records `data` just delivered at `offset` (ending at the new next expected offset).
    fn record(&mut self, size: usize, budget: &mut MemBudget, offset: u64, data: &[u8]) {
        if size == 0 || data.is_empty() {
            return;
        }
        if self.ring.is_empty() {
            // Windows are a nicety: they may fill only half the budget, so many idle connections never
            // crowd out out-of-order data. Retried at later deliveries while refused.
            let fits = budget.used().saturating_add(size) <= budget.cap() / 2;
            if !fits || !budget.try_reserve(size) {
                self.refused = true;
                return;
            }
            self.ring = vec![0; size];
            self.valid_from = offset;
        }
        let cap = self.ring.len();
        let skip = data.len().saturating_sub(cap);
        let tail = data.get(skip..).unwrap_or(&[]);
        let pos = ((offset + skip as u64) % cap as u64) as usize;
        let first = (cap - pos).min(tail.len());
        let (a, b) = tail.split_at_checked(first).unwrap_or((tail, &[]));
        if let Some(dst) = self.ring.get_mut(pos..pos + a.len()) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.ring.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
    }

    /// Whether `data` at `offset` differs from what was delivered there, where the ring still knows it.
    fn differs(&self, next: u64, offset: u64, data: &[u8]) -> bool {
        let cap = self.ring.len() as u64;
        if cap == 0 {
            return false;
        }
        let lo = self.valid_from.max(next.saturating_sub(cap)).max(offset);
        let hi = next.min(offset.saturating_add(data.len() as u64));
        if lo >= hi {
            return false;
        }
        let new = data.get((lo - offset) as usize..(hi - offset) as usize).unwrap_or(&[]);
        let pos = (lo % cap) as usize;
        let first = (cap as usize - pos).min(new.len());
        let (na, nb) = new.split_at_checked(first).unwrap_or((new, &[]));
        self.ring.get(pos..pos + na.len()) != Some(na) || self.ring.get(..nb.len()) != Some(nb)
    }

    fn invalidate_before(&mut self, offset: u64) {
        self.valid_from = offset;
    }

    fn free(&mut self, budget: &mut MemBudget) {
        budget.release(self.ring.len());
        self.ring = Vec::new();
    }
}

/// What every delivery step needs besides the half itself.
struct Ctx<'a, S> {
    cfg: &'a ReassemblyConfig,
    budget: &'a mut MemBudget,
    ts: Timestamp,
    sink: &'a mut S,
}

/// One direction of the connection.
#[derive(Debug)]
struct Half {
    dir: Dir,
    /// A SYN, a data segment or a FIN has fixed the sequence origin.
    init: bool,
    /// Sequence number of stream offset 0.
    isn: u32,
    /// Next stream offset to deliver; everything before it was delivered or reported as a gap.
    next: u64,
    /// Stream offset of the FIN.
    fin: Option<u64>,
    ended: bool,
    ended_by_fin: bool,
    store: SegmentStore,
    recent: RecentWindow,
    stats: HalfStats,
}

impl Half {
    fn new(dir: Dir) -> Self {
        Half {
            dir,
            init: false,
            isn: 0,
            next: 0,
            fin: None,
            ended: false,
            ended_by_fin: false,
            store: SegmentStore::default(),
            recent: RecentWindow::default(),
            stats: HalfStats::default(),
        }
    }

    fn mem(&self) -> usize {
        self.store.mem() + self.recent.mem()
    }

    /// The stream offset of `seq`, taking the nearest candidate to the next expected offset (so 32-bit wrap
    /// is invisible). Negative when it lies before the stream's origin.
    fn offset_of(&self, seq: u32) -> i128 {
        let expected = self.isn.wrapping_add(self.next as u32);
        self.next as i128 + i128::from(seq.wrapping_sub(expected) as i32)
    }

    /// Nothing at or past this offset is delivered: the FIN, or the depth cap.
    fn end_limit(&self, cfg: &ReassemblyConfig) -> u64 {
        let depth = if cfg.depth_bytes == 0 { u64::MAX } else { cfg.depth_bytes };
        self.fin.map_or(depth, |f| f.min(depth))
    }

    fn on_segment<S: StreamSink>(
        &mut self,
        cx: &mut Ctx<'_, S>,
        hdr: &TcpHeader,
        payload: &[u8],
        wire_len: u32,
        peer_in_handshake: bool,
    ) {
        let syn = hdr.has(tcp_flags::SYN);
        let fin = hdr.has(tcp_flags::FIN);
        // A SYN occupies one sequence number: its data (TCP Fast Open) starts after it.
        let data_seq = if syn { hdr.seq.wrapping_add(1) } else { hdr.seq };
        // Trust the captured bytes if the announced length is smaller (it never should be).
        let wire = u64::from(wire_len).max(payload.len() as u64);
        if self.ended {
            self.stats.after_fin_bytes = self.stats.after_fin_bytes.saturating_add(wire);
            return;
        }
        if !self.init {
            // A bare FIN may start a direction picked up mid-stream, but not one whose peer is still waiting
            // for its SYN-ACK: that FIN cannot be real (an evasion trick) and would end the direction early.
            if !(syn || wire > 0 || (fin && !peer_in_handshake)) {
                return;
            }
            self.init = true;
            self.isn = data_seq;
            self.next = 0;
            self.stats.syn = syn;
        }
        let start = self.offset_of(data_seq);
        let end = start + i128::from(wire);
        if start > i128::from(self.next.saturating_add(MAX_AHEAD_BYTES)) {
            self.stats.ooo_dropped_segments += 1;
            return;
        }
        if fin && self.fin.is_none() && end >= i128::from(self.next) {
            self.fin = Some(end as u64);
            self.stats.fin = true;
        }
        if wire > 0 {
            self.ingest(cx, start, payload, wire);
        }
        self.maybe_end(cx);
    }

    /// Takes one segment's payload: `payload` captured of `wire` bytes at stream offset `start`.
    fn ingest<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, start: i128, payload: &[u8], wire: u64) {
        let next = i128::from(self.next);
        let wire_end = start + i128::from(wire);
        let cap_end = start + payload.len() as i128;
        if let Some(f) = self.fin.map(i128::from)
            && wire_end > f
        {
            self.stats.after_fin_bytes = self.stats.after_fin_bytes.saturating_add((wire_end - start.max(f)) as u64);
        }
        if cx.cfg.depth_bytes > 0 {
            let stream_end = self.fin.map_or(wire_end, |f| wire_end.min(i128::from(f)));
            let beyond = (stream_end - i128::from(cx.cfg.depth_bytes)).max(0) as u64;
            self.stats.depth_skipped_bytes = self.stats.depth_skipped_bytes.max(beyond);
        }
        if wire == 1 && start + 1 == next {
            // Keep-alive probe: one byte below the window, usually junk; neither data nor evasion.
            self.stats.keepalives += 1;
            return;
        }
        if start < next {
            self.stats.retransmissions += 1;
            let lo = start.max(0);
            let hi = cap_end.min(next);
            if lo < hi {
                let old = payload.get((lo - start) as usize..(hi - start) as usize).unwrap_or(&[]);
                if self.recent.differs(self.next, lo as u64, old) {
                    self.stats.overlaps_different_data += 1;
                }
            }
        }
        let limit = i128::from(self.end_limit(cx.cfg));
        let lo = start.max(next);
        let hi = cap_end.min(limit);
        // Bytes the snaplen cut off: a gap once the captured part is delivered (held out of order, the
        // entry remembers them).
        let missing = if hi == cap_end { (wire_end - cap_end) as u64 } else { 0 };
        if lo < hi {
            let data = payload.get((lo - start) as usize..(hi - start) as usize).unwrap_or(&[]);
            self.place(cx, lo as u64, data, missing);
        }
        if wire_end > cap_end {
            self.stats.truncated_segments += 1;
            if i128::from(self.next) >= cap_end {
                self.skip_to(cx, wire_end.min(limit).max(0) as u64);
            }
        }
    }

    /// Places bytes at `start` (>= next, below the end limit): delivered at once where in order, held where not.
    fn place<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, start: u64, data: &[u8], missing_after: u64) {
        if !self.store.is_empty() {
            let o = self.store.overlay(start, data, cx.cfg.policy);
            self.stats.overlaps += o.overlaps;
            self.stats.overlaps_different_data += o.different;
        }
        let end = start + data.len() as u64;
        let mut start = start;
        let mut data = data;
        while start < end {
            if start < self.next {
                // Already delivered by the previous step (held bytes drained over it).
                let cut = (self.next - start).min(data.len() as u64);
                data = data.get(cut as usize..).unwrap_or(&[]);
                start += cut;
                continue;
            }
            if start == self.next {
                match self.store.first_offset() {
                    Some(held) if held <= self.next => self.drain(cx),
                    held => {
                        let upto = end.min(held.unwrap_or(u64::MAX));
                        let Some((now, rest)) = data.split_at_checked((upto - start) as usize) else {
                            break;
                        };
                        self.deliver(cx, start, now);
                        data = rest;
                        start = upto;
                    }
                }
                continue;
            }
            if self.buffer(cx, start, data, missing_after) {
                break;
            }
            // Over a cap: close the oldest hole (the one before the first held byte, or before this
            // segment) as a gap, then try again with the stream moved on.
            self.stats.forced_gaps += 1;
            let target = self.store.first_offset().map_or(start, |h| h.min(start));
            self.skip_to(cx, target);
        }
        self.drain(cx);
    }

    /// Holds the parts of `data` (at `start` > next) not already held; false when a cap refuses them.
    fn buffer<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, start: u64, data: &[u8], missing_after: u64) -> bool {
        let end = start + data.len() as u64;
        let pieces = self.store.uncovered(start, end);
        if pieces.is_empty() {
            return true;
        }
        let bytes: u64 = pieces.iter().map(|&(a, b)| b - a).sum();
        let bytes = bytes as usize;
        if self.store.bytes() + bytes > cx.cfg.max_buffered_bytes_per_dir
            || self.store.len() + pieces.len() > cx.cfg.max_segments_per_dir
        {
            log_once(&DIR_CAP_LOGGED, || {
                tracing::warn!(
                    max_bytes = cx.cfg.max_buffered_bytes_per_dir,
                    max_segments = cx.cfg.max_segments_per_dir,
                    "Reassembly per-direction out-of-order cap hit: holes are skipped as gaps. \
                     Raise max_buffered_bytes_per_dir / max_segments_per_dir."
                )
            });
            return false;
        }
        if !cx.budget.try_reserve(bytes + pieces.len() * SEG_OVERHEAD_BYTES) {
            self.stats.memcap_refusals += 1;
            log_once(&MEMCAP_LOGGED, || {
                tracing::warn!(
                    cap = cx.budget.cap(),
                    "Reassembly memory budget full: holes are skipped as gaps. Raise memcap_bytes."
                )
            });
            return false;
        }
        for (a, b) in pieces {
            let part = data.get((a - start) as usize..(b - start) as usize).unwrap_or(&[]);
            let missing = if b == end { missing_after } else { 0 };
            self.store.insert(a, part.to_vec(), missing);
        }
        true
    }

    /// Delivers held entries as long as the first one starts at the next expected offset.
    fn drain<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        self.skip_to(cx, 0);
    }

    /// Moves the stream to `target` (capped by the end limit): held data is delivered, every hole on the way
    /// becomes one gap. Held data past the target is delivered while in order; a held segment cut by the
    /// snaplen extends the target over its lost tail.
    fn skip_to<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, target: u64) {
        let mut target = target;
        loop {
            let limit = self.end_limit(cx.cfg);
            match self.store.first_offset() {
                Some(held) if held <= self.next => {
                    let Some((off, seg, missing)) = self.store.pop_first() else {
                        break;
                    };
                    cx.budget.release(seg.len() + SEG_OVERHEAD_BYTES);
                    let end = off.saturating_add(seg.len() as u64);
                    let lo = self.next.max(off);
                    let hi = end.min(limit);
                    if lo < hi {
                        let part = seg.get((lo - off) as usize..(hi - off) as usize).unwrap_or(&[]);
                        self.deliver(cx, lo, part);
                    }
                    if missing > 0 {
                        target = target.max(end.saturating_add(missing));
                    }
                }
                held => {
                    let upto = target.min(limit).min(held.unwrap_or(u64::MAX));
                    if upto <= self.next {
                        break;
                    }
                    self.gap(cx, upto - self.next);
                }
            }
        }
    }

    fn deliver<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.next = offset + data.len() as u64;
        self.stats.delivered_bytes += data.len() as u64;
        self.recent.record(cx.cfg.recent_window_bytes, cx.budget, offset, data);
        self.stats.recent_window_refused |= self.recent.refused;
        cx.sink.on_stream(self.dir, cx.ts, StreamEvent::Data(data));
    }

    fn gap<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, len: u64) {
        if len == 0 {
            return;
        }
        self.next = self.next.saturating_add(len);
        self.stats.gaps += 1;
        self.stats.gap_bytes = self.stats.gap_bytes.saturating_add(len);
        self.recent.invalidate_before(self.next);
        cx.sink.on_stream(self.dir, cx.ts, StreamEvent::Gap(len));
    }

    /// The peer acknowledged up to `ack`: bytes it got that the capture never will become gaps.
    fn on_peer_ack<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, ack: u32) {
        if !self.init || self.ended {
            return;
        }
        let ahead = ack.wrapping_sub(self.isn.wrapping_add(self.next as u32)) as i32;
        if ahead <= 0 {
            return;
        }
        let ahead = ahead as u64;
        if ahead > MAX_AHEAD_BYTES {
            self.stats.bogus_acks += 1;
            return;
        }
        self.skip_to(cx, self.next + ahead);
        self.maybe_end(cx);
    }

    fn maybe_end<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        if !self.ended && self.fin.is_some() && self.next >= self.end_limit(cx.cfg) {
            self.ended_by_fin = true;
            self.end(cx);
        }
    }

    /// Ends the direction: no more events, memory back to the budget.
    fn end<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        self.ended = true;
        cx.budget.release(self.store.clear());
        self.recent.free(cx.budget);
        cx.sink.on_stream(self.dir, cx.ts, StreamEvent::End);
    }

    fn close<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        if self.ended {
            return;
        }
        if self.init {
            // Everything held, with a gap before each hole; a known FIN makes the last hole a gap too.
            while let Some(held) = self.store.first_offset() {
                let before = (self.next, self.store.len());
                self.skip_to(cx, held);
                if (self.next, self.store.len()) == before {
                    // Held bytes past the end limit: never deliverable.
                    break;
                }
            }
            if let Some(fin) = self.fin {
                self.skip_to(cx, fin);
            }
        }
        self.end(cx);
    }
}

/// Reassembly state of one TCP connection (both directions).
#[derive(Debug)]
pub struct TcpConnection {
    halves: [Half; 2],
    rst: bool,
}

impl Default for TcpConnection {
    fn default() -> Self {
        TcpConnection { halves: [Half::new(Dir::ToServer), Half::new(Dir::ToClient)], rst: false }
    }
}

impl TcpConnection {
    pub fn new() -> Self {
        Self::default()
    }

    fn half_mut(&mut self, dir: Dir) -> &mut Half {
        let [a, b] = &mut self.halves;
        match dir {
            Dir::ToServer => a,
            Dir::ToClient => b,
        }
    }

    /// Takes one segment of direction `dir`. `payload` is what was captured of its `wire_payload_len` bytes.
    /// Its ACK is applied to the other direction first (gaps there come before this segment's data).
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment(
        &mut self,
        cfg: &ReassemblyConfig,
        budget: &mut MemBudget,
        ts: Timestamp,
        dir: Dir,
        hdr: &TcpHeader,
        payload: &[u8],
        wire_payload_len: u32,
        sink: &mut impl StreamSink,
    ) {
        let mut cx = Ctx { cfg, budget, ts, sink };
        let half = self.half_mut(dir);
        half.stats.packets += 1;
        half.stats.payload_bytes_seen += payload.len() as u64;
        if hdr.has(tcp_flags::RST) {
            half.stats.rst = true;
            self.rst = true;
            return;
        }
        if hdr.has(tcp_flags::ACK) {
            self.half_mut(dir.other()).on_peer_ack(&mut cx, hdr.ack);
        }
        let peer = self.half_mut(dir.other());
        let peer_in_handshake = peer.stats.syn && peer.next == 0 && !peer.ended;
        self.half_mut(dir).on_segment(&mut cx, hdr, payload, wire_payload_len, peer_in_handshake);
    }

    /// End of the connection (RST handled, idle timeout, eviction, end of input): deliver everything still
    /// buffered in order, with a Gap in front of each hole, then End for each direction not yet ended; release
    /// memory.
    pub fn close(&mut self, cfg: &ReassemblyConfig, budget: &mut MemBudget, ts: Timestamp, sink: &mut impl StreamSink) {
        let mut cx = Ctx { cfg, budget, ts, sink };
        for half in &mut self.halves {
            half.close(&mut cx);
        }
    }

    pub fn stats(&self, dir: Dir) -> &HalfStats {
        let [a, b] = &self.halves;
        match dir {
            Dir::ToServer => &a.stats,
            Dir::ToClient => &b.stats,
        }
    }

    /// Bytes this connection holds against the budget.
    pub fn mem_used(&self) -> usize {
        self.halves.iter().map(Half::mem).sum()
    }

    /// Both directions delivered End after their FIN.
    pub fn both_fin(&self) -> bool {
        self.halves.iter().all(|h| h.ended_by_fin)
    }

    pub fn saw_rst(&self) -> bool {
        self.rst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reassembly::OverlapPolicy;
    use proptest::prelude::*;

    const S: u8 = tcp_flags::SYN;
    const A: u8 = tcp_flags::ACK;
    const F: u8 = tcp_flags::FIN;
    const R: u8 = tcp_flags::RST;
    const C: Dir = Dir::ToServer;
    const SV: Dir = Dir::ToClient;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Ev {
        Data(Vec<u8>),
        Gap(u64),
        End,
    }

    fn d(b: &[u8]) -> Ev {
        Ev::Data(b.to_vec())
    }

    /// Collects events per direction, merging consecutive Data so assertions do not depend on segmentation.
    #[derive(Default)]
    struct Collect {
        ev: [Vec<Ev>; 2],
        /// Every event's direction in arrival order (cross-direction ordering checks).
        order: Vec<(Dir, Ev)>,
    }

    impl StreamSink for Collect {
        fn on_stream(&mut self, dir: Dir, _ts: Timestamp, ev: StreamEvent<'_>) {
            let list = &mut self.ev[dir.idx()];
            if let StreamEvent::Data(b) = ev {
                assert!(!b.is_empty(), "empty Data");
            }
            if let StreamEvent::Gap(n) = ev {
                assert!(n > 0, "empty Gap");
            }
            assert!(list.last() != Some(&Ev::End), "event after End");
            let owned = match ev {
                StreamEvent::Data(b) => Ev::Data(b.to_vec()),
                StreamEvent::Gap(n) => Ev::Gap(n),
                StreamEvent::End => Ev::End,
            };
            self.order.push((dir, owned.clone()));
            match (list.last_mut(), owned) {
                (Some(Ev::Data(prev)), Ev::Data(more)) => prev.extend_from_slice(&more),
                (_, owned) => list.push(owned),
            }
        }
    }

    impl Collect {
        fn events(&self, dir: Dir) -> &[Ev] {
            &self.ev[dir.idx()]
        }
        fn bytes(&self, dir: Dir) -> Vec<u8> {
            let mut out = Vec::new();
            for e in self.events(dir) {
                if let Ev::Data(b) = e {
                    out.extend_from_slice(b);
                }
            }
            out
        }
        fn gaps(&self, dir: Dir) -> Vec<u64> {
            self.events(dir).iter().filter_map(|e| if let Ev::Gap(n) = e { Some(*n) } else { None }).collect()
        }
    }

    struct T {
        cfg: ReassemblyConfig,
        budget: MemBudget,
        conn: TcpConnection,
        sink: Collect,
    }

    impl T {
        fn new() -> Self {
            Self::with(ReassemblyConfig::default())
        }
        fn with(cfg: ReassemblyConfig) -> Self {
            let budget = MemBudget::new(cfg.memcap_bytes);
            T { cfg, budget, conn: TcpConnection::new(), sink: Collect::default() }
        }
        fn seg(&mut self, dir: Dir, seq: u32, flags: u8, ack: u32, data: &[u8]) {
            self.trunc(dir, seq, flags, ack, data, data.len() as u32);
        }
        fn trunc(&mut self, dir: Dir, seq: u32, flags: u8, ack: u32, data: &[u8], wire: u32) {
            let hdr = TcpHeader { src_port: 1, dst_port: 2, seq, ack, flags, window: 65535 };
            self.conn.on_segment(&self.cfg, &mut self.budget, Timestamp(0), dir, &hdr, data, wire, &mut self.sink);
            assert!(self.budget.used() <= self.budget.cap());
            assert_eq!(self.budget.used(), self.conn.mem_used());
        }
        fn close(&mut self) {
            self.conn.close(&self.cfg, &mut self.budget, Timestamp(0), &mut self.sink);
            assert_eq!(self.conn.mem_used(), 0);
            assert_eq!(self.budget.used(), 0);
        }
        fn st(&self, dir: Dir) -> &HalfStats {
            self.conn.stats(dir)
        }
    }

    /// Client ISN 1000 (data from 1001), server ISN 5000 (data from 5001).
    fn handshake(t: &mut T) {
        t.seg(C, 1000, S, 0, b"");
        t.seg(SV, 5000, S | A, 1001, b"");
        t.seg(C, 1001, A, 5001, b"");
    }

    #[test]
    fn handshake_in_order_fin_end() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"GET / HTTP/1.1\r\n\r\n");
        t.seg(SV, 5001, A, 1019, b"HTTP/1.1 200 OK\r\n");
        t.seg(SV, 5018, A, 1019, b"\r\n");
        t.seg(C, 1019, A | F, 5020, b"");
        assert_eq!(t.sink.events(C), &[d(b"GET / HTTP/1.1\r\n\r\n"), Ev::End]);
        assert!(!t.conn.both_fin());
        t.seg(SV, 5020, A | F, 1020, b"");
        assert_eq!(t.sink.events(SV), &[d(b"HTTP/1.1 200 OK\r\n\r\n"), Ev::End]);
        assert!(t.conn.both_fin());
        assert_eq!(t.conn.mem_used(), 0);
        let st = t.st(C);
        assert_eq!((st.gaps, st.retransmissions, st.delivered_bytes), (0, 0, 18));
        assert!(st.syn && st.fin);
        // The final ACK of the FIN is not a gap; close() after both FINs adds nothing.
        t.seg(C, 1020, A, 5021, b"");
        t.close();
        assert_eq!(t.sink.gaps(C), Vec::<u64>::new());
        assert_eq!(t.sink.gaps(SV), Vec::<u64>::new());
        assert_eq!(t.sink.events(C).len(), 2);
    }

    /// In-order data with nothing held is the packet's own slice.
    #[test]
    fn in_order_is_zero_copy() {
        struct Ptr(Vec<*const u8>);
        impl StreamSink for Ptr {
            fn on_stream(&mut self, _: Dir, _: Timestamp, ev: StreamEvent<'_>) {
                if let StreamEvent::Data(b) = ev {
                    self.0.push(b.as_ptr());
                }
            }
        }
        let cfg = ReassemblyConfig::default();
        let mut budget = MemBudget::new(cfg.memcap_bytes);
        let mut conn = TcpConnection::new();
        let mut sink = Ptr(Vec::new());
        let payload = b"hello".to_vec();
        let hdr = TcpHeader { src_port: 1, dst_port: 2, seq: 10, ack: 0, flags: A, window: 0 };
        conn.on_segment(&cfg, &mut budget, Timestamp(0), C, &hdr, &payload, 5, &mut sink);
        assert_eq!(sink.0, vec![payload.as_ptr()]);
    }

    #[test]
    fn midstream_pickup_both_sides() {
        let mut t = T::new();
        t.seg(C, 777, A, 999, b"abc");
        t.seg(SV, 999, A, 780, b"xyz");
        t.seg(C, 780, A, 1002, b"def");
        assert_eq!(t.sink.events(C), &[d(b"abcdef")]);
        assert_eq!(t.sink.events(SV), &[d(b"xyz")]);
        assert!(!t.st(C).syn);
        t.close();
        assert_eq!(t.sink.events(C), &[d(b"abcdef"), Ev::End]);
    }

    #[test]
    fn pure_ack_does_not_start_a_direction() {
        let mut t = T::new();
        t.seg(SV, 50, A, 10, b"");
        t.seg(SV, 60, A, 10, b"late");
        assert_eq!(t.sink.events(SV), &[d(b"late")]);
    }

    #[test]
    fn tfo_data_on_syn_is_delivered() {
        let mut t = T::new();
        t.seg(C, 100, S, 0, b"GET /");
        t.seg(SV, 900, S | A, 106, b"");
        t.seg(C, 106, A, 901, b" HTTP");
        assert_eq!(t.sink.events(C), &[d(b"GET / HTTP")]);
        // A retransmitted SYN with its data is a retransmission, not new data.
        t.seg(C, 100, S, 0, b"GET /");
        assert_eq!(t.sink.bytes(C), b"GET / HTTP");
        assert_eq!(t.st(C).retransmissions, 1);
        assert_eq!(t.st(C).overlaps_different_data, 0);
    }

    #[test]
    fn out_of_order_is_reordered() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1007, A, 5001, b"ghi");
        t.seg(C, 1004, A, 5001, b"def");
        assert_eq!(t.sink.events(C), &[] as &[Ev]);
        assert!(t.conn.mem_used() > 0);
        t.seg(C, 1001, A, 5001, b"abc");
        assert_eq!(t.sink.events(C), &[d(b"abcdefghi")]);
        assert_eq!(t.conn.mem_used(), t.budget.used());
        // Only the recent window is still held.
        assert_eq!(t.conn.mem_used(), t.cfg.recent_window_bytes);
        t.close();
    }

    #[test]
    fn duplicates_are_retransmissions() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"abc");
        t.seg(C, 1001, A, 5001, b"abc");
        t.seg(C, 1002, A, 5001, b"bcd");
        assert_eq!(t.sink.bytes(C), b"abcd");
        assert_eq!(t.st(C).retransmissions, 2);
        assert_eq!(t.st(C).overlaps_different_data, 0);
        // Held duplicates are overlaps, not new bytes.
        t.seg(C, 1010, A, 5001, b"xy");
        t.seg(C, 1010, A, 5001, b"xy");
        assert_eq!(t.st(C).overlaps, 1);
        assert_eq!(t.conn.mem_used() - t.cfg.recent_window_bytes, 2 + SEG_OVERHEAD_BYTES);
        t.close();
    }

    #[test]
    fn keepalive_probe_is_not_evasion() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"abc");
        t.seg(C, 1003, A, 5001, b"\0");
        assert_eq!(t.st(C).keepalives, 1);
        assert_eq!((t.st(C).retransmissions, t.st(C).overlaps_different_data), (0, 0));
        assert_eq!(t.sink.bytes(C), b"abc");
    }

    #[test]
    fn retransmission_with_different_data_is_flagged() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"GET /ok");
        t.seg(C, 1001, A, 5001, b"GET /ev");
        assert_eq!(t.sink.bytes(C), b"GET /ok");
        assert_eq!(t.st(C).retransmissions, 2 - 1);
        assert_eq!(t.st(C).overlaps_different_data, 1);
    }

    #[test]
    fn recent_window_disabled_and_wrapping() {
        let mut cfg = ReassemblyConfig { recent_window_bytes: 0, ..Default::default() };
        let mut t = T::with(cfg.clone());
        t.seg(C, 0, A, 0, b"abcdef");
        t.seg(C, 0, A, 0, b"zzzzzz");
        assert_eq!(t.st(C).overlaps_different_data, 0);
        assert_eq!(t.conn.mem_used(), 0);
        // A 4-byte ring: only the last 4 delivered bytes are compared, across the ring's wrap.
        cfg.recent_window_bytes = 4;
        let mut t = T::with(cfg);
        t.seg(C, 0, A, 0, b"abc");
        t.seg(C, 3, A, 0, b"def");
        t.seg(C, 0, A, 0, b"XY"); // forgotten
        assert_eq!(t.st(C).overlaps_different_data, 0);
        t.seg(C, 2, A, 0, b"cdef"); // first byte forgotten, rest same
        assert_eq!(t.st(C).overlaps_different_data, 0);
        t.seg(C, 2, A, 0, b"cdeX");
        assert_eq!(t.st(C).overlaps_different_data, 1);
    }

    #[test]
    fn held_overlaps_first_wins() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1004, A, 5001, b"DEF");
        t.seg(C, 1005, A, 5001, b"EFG"); // same bytes where they overlap
        t.seg(C, 1005, A, 5001, b"xyz"); // different
        // Counted per held entry: "DEF" once (same), then "DEF" and "G" (both different).
        assert_eq!(t.st(C).overlaps, 3);
        assert_eq!(t.st(C).overlaps_different_data, 2);
        t.seg(C, 1001, A, 5001, b"ABC");
        assert_eq!(t.sink.events(C), &[d(b"ABCDEFG")]);
    }

    #[test]
    fn held_overlaps_last_wins() {
        let cfg = ReassemblyConfig { policy: OverlapPolicy::LastWins, ..Default::default() };
        let mut t = T::with(cfg);
        handshake(&mut t);
        t.seg(C, 1004, A, 5001, b"DEF");
        t.seg(C, 1005, A, 5001, b"xyz");
        assert_eq!(t.st(C).overlaps_different_data, 1);
        // The in-order segment also overlaps held bytes: the newer ones win there too.
        t.seg(C, 1001, A, 5001, b"ABCd");
        assert_eq!(t.sink.events(C), &[d(b"ABCdxyz")]);
        assert_eq!(t.st(C).overlaps_different_data, 2);
    }

    #[test]
    fn in_order_segment_over_held_bytes_first_wins() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1004, A, 5001, b"DE");
        t.seg(C, 1008, A, 5001, b"HI");
        t.seg(C, 1001, A, 5001, b"ABCdeFGhiJ");
        assert_eq!(t.sink.events(C), &[d(b"ABCDEFGHIJ")]);
        assert_eq!(t.st(C).overlaps, 2);
        assert_eq!(t.st(C).overlaps_different_data, 2);
        t.close();
    }

    #[test]
    fn missing_segment_gap_on_ack() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"aaaa");
        // 1005..1010 lost
        t.seg(C, 1010, A, 5001, b"cc");
        t.seg(C, 1012, A, 5001, b"dd");
        assert_eq!(t.sink.events(C), &[d(b"aaaa")]);
        // The server ACKs everything: it got the lost bytes.
        t.seg(SV, 5001, A, 1014, b"");
        assert_eq!(t.sink.events(C), &[d(b"aaaa"), Ev::Gap(5), d(b"ccdd")]);
        assert_eq!((t.st(C).gaps, t.st(C).gap_bytes), (1, 5));
        // The stream goes on, a late copy of the lost bytes is a retransmission.
        t.seg(C, 1005, A, 5001, b"bbbbb");
        t.seg(C, 1014, A, 5001, b"e");
        assert_eq!(t.sink.events(C), &[d(b"aaaa"), Ev::Gap(5), d(b"ccdde")]);
        assert_eq!(t.st(C).retransmissions, 1);
        t.close();
        assert_eq!(t.sink.gaps(C), vec![5]);
    }

    #[test]
    fn ack_inside_hole_does_not_skip_held_data() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1011, A, 5001, b"x");
        // ACK of only 1006: the first 5 bytes are gone, the hole 1006..1011 stays open.
        t.seg(SV, 5001, A, 1006, b"");
        assert_eq!(t.sink.events(C), &[Ev::Gap(5)]);
        t.seg(C, 1006, A, 5001, b"abcde");
        assert_eq!(t.sink.events(C), &[Ev::Gap(5), d(b"abcdex")]);
    }

    #[test]
    fn missing_segment_gap_on_close() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"aaaa");
        t.seg(C, 1010, A, 5001, b"cc");
        t.seg(C, 1020, A, 5001, b"ee");
        t.close();
        assert_eq!(t.sink.events(C), &[d(b"aaaa"), Ev::Gap(5), d(b"cc"), Ev::Gap(8), d(b"ee"), Ev::End]);
        assert_eq!(t.sink.events(SV), &[Ev::End]);
    }

    #[test]
    fn lost_last_segment_before_fin_is_one_gap() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"aaaa");
        t.seg(C, 1008, A | F, 5001, b"");
        assert_eq!(t.sink.events(C), &[d(b"aaaa")]);
        t.close();
        assert_eq!(t.sink.events(C), &[d(b"aaaa"), Ev::Gap(3), Ev::End]);
        // The same through the server's ACK of the FIN: the gap stops at the FIN.
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"aaaa");
        t.seg(C, 1008, A | F, 5001, b"");
        t.seg(SV, 5001, A, 1009, b"");
        assert_eq!(t.sink.events(C), &[d(b"aaaa"), Ev::Gap(3), Ev::End]);
        assert!(!t.conn.both_fin());
    }

    #[test]
    fn ack_with_nothing_held_reports_unseen_bytes() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(SV, 5001, A, 1101, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(t.sink.events(C), &[Ev::Gap(100)]);
        assert_eq!(t.sink.order.first(), Some(&(C, Ev::Gap(100))), "the gap comes before the response data");
    }

    #[test]
    fn bogus_acks_are_ignored() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(SV, 5001, A, 1001u32.wrapping_add(0x7000_0000), b"");
        t.seg(SV, 5001, A, 900, b"");
        assert_eq!(t.sink.events(C), &[] as &[Ev]);
        assert_eq!(t.st(C).bogus_acks, 1);
    }

    #[test]
    fn far_ahead_segment_is_dropped() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001u32.wrapping_add(0x5000_0000), A, 5001, b"zz");
        assert_eq!(t.st(C).ooo_dropped_segments, 1);
        assert_eq!(t.conn.mem_used(), 0);
    }

    #[test]
    fn sequence_wraps_around() {
        let mut t = T::new();
        let isn = u32::MAX - 5;
        t.seg(C, isn, S, 0, b"");
        t.seg(SV, 7, S | A, isn.wrapping_add(1), b"");
        // 4 bytes before the wrap, then across it, then out of order after it.
        t.seg(C, isn.wrapping_add(1), A, 8, b"abcd");
        t.seg(C, isn.wrapping_add(9), A, 8, b"ijkl");
        t.seg(C, isn.wrapping_add(5), A, 8, b"efgh");
        assert_eq!(t.sink.events(C), &[d(b"abcdefghijkl")]);
        // An ACK across the wrap closes a hole there.
        t.seg(C, isn.wrapping_add(20), A, 8, b"t");
        t.seg(SV, 8, A, isn.wrapping_add(21), b"");
        assert_eq!(t.sink.events(C), &[d(b"abcdefghijkl"), Ev::Gap(7), d(b"t")]);
        assert_eq!(t.st(C).retransmissions, 0);
    }

    #[test]
    fn long_stream_over_several_wraps() {
        let mut t = T::new();
        let mut seq = 0xFFFF_F000u32;
        t.seg(C, seq, S, 0, b"");
        seq = seq.wrapping_add(1);
        let chunk = vec![7u8; 60_000];
        let mut total = 0u64;
        // 5 GiB of sequence space in 60 kB steps would be slow; jump with ACK-made gaps instead.
        for _ in 0..6 {
            t.seg(C, seq, A, 0, &chunk);
            seq = seq.wrapping_add(chunk.len() as u32);
            total += chunk.len() as u64;
            // Lose 1 GiB - 1 in the capture: the peer's ACK reports it.
            let lost = (1u32 << 30) - 1;
            seq = seq.wrapping_add(lost);
            t.seg(SV, 0, A, seq, b"");
            total += u64::from(lost);
        }
        let st = t.st(C);
        assert_eq!(st.delivered_bytes + st.gap_bytes, total);
        assert_eq!(st.gaps, 6);
    }

    #[test]
    fn snaplen_truncation_reports_the_rest() {
        let mut t = T::new();
        handshake(&mut t);
        t.trunc(C, 1001, A, 5001, b"abcd", 10);
        t.seg(C, 1011, A, 5001, b"next");
        assert_eq!(t.sink.events(C), &[d(b"abcd"), Ev::Gap(6), d(b"next")]);
        assert_eq!(t.st(C).truncated_segments, 1);
        // Out of order: the held entry remembers its lost tail, reported as soon as it is delivered.
        t.trunc(C, 1035, A, 5001, b"!", 1);
        t.trunc(C, 1025, A, 5001, b"zz", 6);
        t.trunc(C, 1015, A, 5001, b"xy", 10);
        let so_far = [d(b"abcd"), Ev::Gap(6), d(b"nextxy"), Ev::Gap(8), d(b"zz"), Ev::Gap(4)];
        assert_eq!(t.sink.events(C), &so_far);
        // The hole 1031..1035 is an ordinary one: the ACK reports it.
        t.seg(SV, 5001, A, 1036, b"");
        assert_eq!(t.sink.events(C)[..6], so_far);
        assert_eq!(t.sink.events(C)[6..], [Ev::Gap(4), d(b"!")]);
        assert_eq!(t.st(C).truncated_segments, 3);
    }

    #[test]
    fn fin_out_of_order_ends_after_data() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1004, A | F, 5001, b"def");
        assert_eq!(t.sink.events(C), &[] as &[Ev]);
        t.seg(C, 1001, A, 5001, b"abc");
        assert_eq!(t.sink.events(C), &[d(b"abcdef"), Ev::End]);
        assert_eq!(t.conn.mem_used(), 0, "an ended direction holds nothing");
        // Data after the FIN is counted, never delivered.
        t.seg(C, 1008, A, 5001, b"zz");
        assert_eq!(t.st(C).after_fin_bytes, 2);
        assert_eq!(t.sink.events(C), &[d(b"abcdef"), Ev::End]);
    }

    #[test]
    fn held_bytes_past_a_later_fin_are_cut() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1004, A, 5001, b"defghi");
        t.seg(C, 1001, A | F, 5001, b"abcdef"); // FIN at 1007: "ghi" is past it
        assert_eq!(t.sink.events(C), &[d(b"abcdef"), Ev::End]);
        t.close();
    }

    #[test]
    fn bare_fin_before_syn_ack_is_ignored() {
        let mut t = T::new();
        t.seg(C, 1000, S, 0, b"");
        t.seg(SV, 5001, A | F, 1001, b"");
        t.seg(SV, 5000, S | A, 1001, b"");
        t.seg(C, 1001, A, 5001, b"GET /");
        t.seg(SV, 5001, A, 1006, b"HTTP/1.1 200");
        assert_eq!(t.sink.events(SV), &[d(b"HTTP/1.1 200")]);
        // Mid-stream, a bare FIN does start (and end) a direction.
        let mut t = T::new();
        t.seg(C, 1, A, 9, b"x");
        t.seg(SV, 9, A | F, 2, b"");
        assert_eq!(t.sink.events(SV), &[Ev::End]);
    }

    #[test]
    fn rst_is_marked() {
        let mut t = T::new();
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"abc");
        t.seg(SV, 5001, R | A, 1004, b"");
        assert!(t.conn.saw_rst() && t.st(SV).rst && !t.st(C).rst);
        t.close();
        assert_eq!(t.sink.events(C), &[d(b"abc"), Ev::End]);
        assert_eq!(t.sink.events(SV), &[Ev::End]);
        assert!(!t.conn.both_fin());
    }

    #[test]
    fn depth_cap_counts_and_skips() {
        let cfg = ReassemblyConfig { depth_bytes: 5, ..Default::default() };
        let mut t = T::with(cfg);
        handshake(&mut t);
        t.seg(C, 1001, A, 5001, b"abc");
        t.seg(C, 1004, A, 5001, b"defg");
        t.seg(C, 1008, A, 5001, b"hij");
        assert_eq!(t.sink.events(C), &[d(b"abcde")]);
        assert_eq!(t.st(C).depth_skipped_bytes, 5);
        // Beyond the depth nothing is held, and no gap either.
        t.seg(C, 1020, A, 5001, b"zz");
        t.seg(SV, 5001, A, 1022, b"");
        assert_eq!(t.conn.mem_used(), t.cfg.recent_window_bytes);
        t.seg(C, 1022, A | F, 5001, b"");
        assert_eq!(t.sink.events(C), &[d(b"abcde"), Ev::End]);
        assert_eq!(t.st(C).depth_skipped_bytes, 16);
        assert_eq!(t.st(C).gaps, 0);
    }

    #[test]
    fn segment_cap_forces_oldest_gap() {
        let cfg = ReassemblyConfig { max_segments_per_dir: 2, ..Default::default() };
        let mut t = T::with(cfg);
        handshake(&mut t);
        t.seg(C, 1003, A, 5001, b"c");
        t.seg(C, 1005, A, 5001, b"e");
        t.seg(C, 1007, A, 5001, b"g"); // third held segment: the oldest hole (1001..1003) goes
        assert_eq!(t.sink.events(C), &[Ev::Gap(2), d(b"c")]);
        assert_eq!(t.st(C).forced_gaps, 1);
        t.close();
        assert_eq!(t.sink.events(C), &[Ev::Gap(2), d(b"c"), Ev::Gap(1), d(b"e"), Ev::Gap(1), d(b"g"), Ev::End]);
    }

    #[test]
    fn byte_cap_forces_gap_before_new_segment() {
        let cfg = ReassemblyConfig { max_buffered_bytes_per_dir: 4, ..Default::default() };
        let mut t = T::with(cfg);
        handshake(&mut t);
        // Bigger than the cap and nothing held: skip to it and deliver it straight away.
        t.seg(C, 1003, A, 5001, b"cdefgh");
        assert_eq!(t.sink.events(C), &[Ev::Gap(2), d(b"cdefgh")]);
        // A segment that fills the hole in front of held ones is not blocked by them.
        t.seg(C, 1012, A, 5001, b"mnop");
        t.seg(C, 1010, A, 5001, b"k");
        assert_eq!(t.sink.events(C), &[Ev::Gap(2), d(b"cdefgh"), Ev::Gap(1), d(b"k")]);
        assert_eq!(t.st(C).forced_gaps, 2);
        t.close();
    }

    #[test]
    fn memcap_forces_gaps_and_is_never_exceeded() {
        let cfg = ReassemblyConfig { memcap_bytes: 400, recent_window_bytes: 0, ..Default::default() };
        let mut t = T::with(cfg);
        handshake(&mut t);
        // Each held 100-byte segment costs 100 + overhead: two fit, the third forces a gap.
        for i in 1..=3u32 {
            t.seg(C, 1001 + i * 200, A, 5001, &[i as u8; 100]);
        }
        assert_eq!(t.sink.gaps(C), vec![200]);
        assert!(t.budget.hits() >= 1);
        assert!(t.st(C).memcap_refusals >= 1);
        t.close();
        assert_eq!(t.st(C).delivered_bytes, 300);
    }

    #[test]
    fn connections_share_the_budget() {
        let cfg = ReassemblyConfig { memcap_bytes: 200, recent_window_bytes: 0, ..Default::default() };
        let mut budget = MemBudget::new(cfg.memcap_bytes);
        let mut a = TcpConnection::new();
        let mut b = TcpConnection::new();
        let (mut sink_a, mut sink_b) = (Collect::default(), Collect::default());
        let hdr = |seq| TcpHeader { src_port: 1, dst_port: 2, seq, ack: 0, flags: 0, window: 0 };
        a.on_segment(&cfg, &mut budget, Timestamp(0), C, &hdr(0), b"x", 1, &mut sink_a);
        a.on_segment(&cfg, &mut budget, Timestamp(0), C, &hdr(10), &[1; 100], 100, &mut sink_a);
        b.on_segment(&cfg, &mut budget, Timestamp(0), C, &hdr(0), b"y", 1, &mut sink_b);
        b.on_segment(&cfg, &mut budget, Timestamp(0), C, &hdr(10), &[2; 100], 100, &mut sink_b);
        assert_eq!(budget.used(), a.mem_used() + b.mem_used());
        assert!(budget.used() <= budget.cap());
        assert_eq!(b.stats(C).forced_gaps, 1);
        a.close(&cfg, &mut budget, Timestamp(0), &mut sink_a);
        b.close(&cfg, &mut budget, Timestamp(0), &mut sink_b);
        assert_eq!(sink_b.events(C), &[d(b"y"), Ev::Gap(9), d(&[2; 100]), Ev::End]);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn recent_window_refused_when_budget_is_full() {
        let cfg = ReassemblyConfig { memcap_bytes: 100, recent_window_bytes: 4096, ..Default::default() };
        let mut t = T::with(cfg);
        t.seg(C, 0, A, 0, b"abc");
        assert!(t.st(C).recent_window_refused);
        assert_eq!(t.sink.bytes(C), b"abc");
        // Windows never take more than half the budget, even when the rest is free.
        let cfg = ReassemblyConfig { memcap_bytes: 200, recent_window_bytes: 100, ..Default::default() };
        let mut t = T::with(cfg);
        t.seg(C, 0, A, 0, b"abc");
        assert_eq!(t.conn.mem_used(), 100);
        t.seg(SV, 0, A, 0, b"xyz");
        assert!(t.st(SV).recent_window_refused && !t.st(C).recent_window_refused);
        assert_eq!(t.conn.mem_used(), 100);
    }

    #[test]
    fn one_sided_flow() {
        let mut t = T::new();
        t.seg(C, 1000, S, 0, b"");
        t.seg(C, 1001, A, 5001, b"POST /x");
        t.seg(C, 1012, A, 5001, b"late");
        t.seg(C, 1008, A, 5001, b" HTT"); // fills the hole without any help from the other side
        assert_eq!(t.sink.events(C), &[d(b"POST /x HTTlate")]);
        t.seg(C, 1016, A | F, 5001, b"");
        assert_eq!(t.sink.events(C), &[d(b"POST /x HTTlate"), Ev::End]);
        t.close();
        assert_eq!(t.sink.events(SV), &[Ev::End]);
    }

    #[test]
    fn close_is_idempotent_and_ends_everything() {
        let mut t = T::new();
        t.close();
        t.close();
        assert_eq!(t.sink.events(C), &[Ev::End]);
        assert_eq!(t.sink.events(SV), &[Ev::End]);
        t.seg(C, 1, A, 0, b"after");
        assert_eq!(t.st(C).after_fin_bytes, 5);
    }

    // ---- properties ----

    /// Sends `stream` from ISN `isn` as the given (start, len) ranges, in the given order, after a SYN.
    fn send_ranges(t: &mut T, isn: u32, stream: &[u8], ranges: &[(usize, usize)]) {
        t.seg(C, isn, S, 0, b"");
        for &(s, l) in ranges {
            let seq = isn.wrapping_add(1).wrapping_add(s as u32);
            t.seg(C, seq, A, 0, &stream[s..s + l]);
        }
    }

    fn isn_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (0u32..4096).prop_map(|x| u32::MAX - x)]
    }

    /// A cover of `0..n` by chunks plus arbitrary extra overlapping ranges, shuffled with duplicates.
    fn soup(n: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
        let cuts = prop::collection::vec(1..=n, 0..12);
        let extra = prop::collection::vec((0..n, 1..=n), 0..12);
        (cuts, extra, any::<u64>()).prop_map(move |(mut cuts, extra, seed)| {
            cuts.push(0);
            cuts.push(n);
            cuts.sort_unstable();
            cuts.dedup();
            let mut ranges: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
            for (s, l) in extra {
                ranges.push((s, l.min(n - s)));
            }
            shuffle(&mut ranges, seed);
            ranges
        })
    }

    fn shuffle<X>(v: &mut [X], mut seed: u64) {
        for i in (1..v.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (seed >> 33) as usize % (i + 1);
            v.swap(i, j);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any permutation, duplication and overlapping re-segmentation of the same bytes gives exactly those
        /// bytes under FirstWins, without gaps, from any ISN (near the wrap too).
        #[test]
        fn prop_first_wins_same_bytes(
            (stream, ranges) in prop::collection::vec(any::<u8>(), 1..400)
                .prop_flat_map(|s| { let n = s.len(); (Just(s), soup(n)) }),
            isn in isn_strategy(),
            fin in any::<bool>(),
            window in prop_oneof![Just(0usize), Just(16), Just(4096)],
        ) {
            let mut t = T::with(ReassemblyConfig { recent_window_bytes: window, ..Default::default() });
            send_ranges(&mut t, isn, &stream, &ranges);
            if fin {
                t.seg(C, isn.wrapping_add(1).wrapping_add(stream.len() as u32), A | F, 0, b"");
                prop_assert_eq!(t.sink.events(C), &[Ev::Data(stream.clone()), Ev::End]);
            }
            t.close();
            prop_assert_eq!(t.sink.events(C), &[Ev::Data(stream), Ev::End]);
            prop_assert_eq!(t.st(C).overlaps_different_data, 0);
        }

        /// Dropping one segment of a partition yields exactly one gap of its size, wherever it was.
        #[test]
        fn prop_one_lost_segment_one_gap(
            (n, cuts) in (2usize..500).prop_flat_map(|n| (Just(n), prop::collection::vec(1..n, 1..10))),
            which in any::<prop::sample::Index>(),
            seed in any::<u64>(),
            isn in isn_strategy(),
            by_ack in any::<bool>(),
        ) {
            let stream: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut cuts = cuts;
            cuts.push(0);
            cuts.push(n);
            cuts.sort_unstable();
            cuts.dedup();
            let mut ranges: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
            let lost = ranges.remove(which.index(ranges.len()));
            shuffle(&mut ranges, seed);
            let mut t = T::new();
            send_ranges(&mut t, isn, &stream, &ranges);
            let end_seq = isn.wrapping_add(1).wrapping_add(n as u32);
            t.seg(C, end_seq, A | F, 0, b"");
            if by_ack {
                t.seg(SV, 1, S | A, end_seq.wrapping_add(1), b"");
                t.seg(SV, 2, A, end_seq.wrapping_add(1), b"");
            }
            t.close();
            let mut expect = Vec::new();
            if lost.0 > 0 {
                expect.push(Ev::Data(stream[..lost.0].to_vec()));
            }
            expect.push(Ev::Gap(lost.1 as u64));
            if lost.0 + lost.1 < n {
                expect.push(Ev::Data(stream[lost.0 + lost.1..].to_vec()));
            }
            expect.push(Ev::End);
            prop_assert_eq!(t.sink.events(C), &expect[..]);
            prop_assert_eq!(t.conn.both_fin(), false);
        }

        /// Segments that all carry the same stream (truncated, duplicated, reordered, overlapping), random
        /// peer ACKs and tiny caps: whatever gaps get forced, every delivered byte is the stream's byte at
        /// that offset, and data plus gaps never run past what was sent.
        #[test]
        fn prop_consistent_under_pressure(
            (stream, ranges) in prop::collection::vec(any::<u8>(), 1..400)
                .prop_flat_map(|s| { let n = s.len(); (Just(s), soup(n)) }),
            cuts in prop::collection::vec(0usize..8, 0..24),
            acks in prop::collection::vec((0usize..24, 0usize..420), 0..6),
            isn in isn_strategy(),
            max_segs in 0usize..5,
            max_bytes in 0usize..200,
            memcap in 0usize..600,
            last_wins in any::<bool>(),
        ) {
            let n = stream.len();
            let cfg = ReassemblyConfig {
                policy: if last_wins { OverlapPolicy::LastWins } else { OverlapPolicy::FirstWins },
                max_buffered_bytes_per_dir: max_bytes,
                max_segments_per_dir: max_segs,
                memcap_bytes: memcap,
                recent_window_bytes: 8,
                ..Default::default()
            };
            let mut t = T::with(cfg);
            t.seg(C, isn, S, 0, b"");
            t.seg(SV, 0, S | A, isn.wrapping_add(1), b"");
            for (i, &(s, l)) in ranges.iter().enumerate() {
                let seq = isn.wrapping_add(1).wrapping_add(s as u32);
                let cut = cuts.get(i).copied().unwrap_or(0).min(l);
                t.trunc(C, seq, A, 1, &stream[s..s + l - cut], l as u32);
                for &(_, a) in acks.iter().filter(|&&(at, _)| at == i) {
                    t.seg(SV, 1, A, isn.wrapping_add(1).wrapping_add(a.min(n) as u32), b"");
                }
            }
            t.close();
            let mut pos = 0usize;
            for ev in t.sink.events(C) {
                match ev {
                    Ev::Data(b) => {
                        prop_assert!(pos + b.len() <= n);
                        prop_assert_eq!(&b[..], &stream[pos..pos + b.len()]);
                        pos += b.len();
                    }
                    Ev::Gap(g) => pos += *g as usize,
                    Ev::End => {}
                }
            }
            prop_assert!(pos <= n);
            prop_assert_eq!(t.sink.events(C).last(), Some(&Ev::End));
        }

        /// Anything at all (full-range sequence and ACK numbers, any flags, truncation): no panic, the
        /// budget balances, close releases everything.
        #[test]
        fn prop_arbitrary_segments_are_safe(
            segs in prop::collection::vec(
                (any::<bool>(), any::<u32>(), any::<u8>(), any::<u32>(), 0usize..100, any::<u32>()),
                1..40),
            memcap in 0usize..2000,
        ) {
            let cfg = ReassemblyConfig {
                memcap_bytes: memcap,
                recent_window_bytes: 32,
                max_segments_per_dir: 4,
                ..Default::default()
            };
            let mut t = T::with(cfg);
            for (to_server, seq, flags, ack, len, wire) in segs {
                let dir = if to_server { C } else { SV };
                t.trunc(dir, seq, flags, ack, &vec![0x55; len], wire);
            }
            t.close();
        }

        /// Random segment soup with small caps: the budget is never exceeded, books balance, close frees all.
        #[test]
        fn prop_memcap_never_exceeded(
            segs in prop::collection::vec(
                (any::<bool>(), 0u32..3000, any::<u8>(), 0u32..3000, 0usize..300, 0u32..40, any::<u8>()),
                1..80),
            memcap in 0usize..3000,
            max_segs in 0usize..6,
            max_bytes in 0usize..1500,
            window in 0usize..64,
            last_wins in any::<bool>(),
            depth in prop_oneof![Just(0u64), 1u64..2000],
            isn in isn_strategy(),
        ) {
            let cfg = ReassemblyConfig {
                policy: if last_wins { OverlapPolicy::LastWins } else { OverlapPolicy::FirstWins },
                max_buffered_bytes_per_dir: max_bytes,
                max_segments_per_dir: max_segs,
                depth_bytes: depth,
                memcap_bytes: memcap,
                recent_window_bytes: window,
            };
            let mut t = T::with(cfg);
            for (to_server, seq, flags, ack, len, extra_wire, fill) in segs {
                let dir = if to_server { C } else { SV };
                let data = vec![fill; len];
                // Keep RST rare so most runs go deep.
                let flags = if flags & R != 0 && fill > 10 { flags & !R } else { flags };
                t.trunc(dir, isn.wrapping_add(seq), flags, isn.wrapping_add(ack), &data, len as u32 + extra_wire);
            }
            t.close();
            for dir in [C, SV] {
                let st = t.st(dir);
                prop_assert_eq!(t.sink.events(dir).last(), Some(&Ev::End));
                let data: u64 = t.sink.bytes(dir).len() as u64;
                prop_assert_eq!(data, st.delivered_bytes);
                prop_assert_eq!(t.sink.gaps(dir).iter().sum::<u64>(), st.gap_bytes);
                if depth > 0 {
                    prop_assert!(data + st.gap_bytes <= depth);
                }
            }
        }
    }
}
