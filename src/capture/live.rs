//! Live capture with libpcap (feature `live-pcap`): one or several interfaces at once (a TAP gives one per
//! direction), promiscuous, BPF filter, snaplen, kernel buffer size, kernel drop statistics.
//!
//! Each interface has a capture thread that copies frames into recycled buffers and hands them over a bounded
//! channel. The capture thread never blocks on a slow consumer: when the channel is full the frame is dropped
//! and counted (`queue_full`), next to the kernel's own drop counters. Everything downstream runs on packet
//! timestamps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use super::{LinkType, RawPacket, Timestamp};

#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub interfaces: Vec<String>,
    pub promiscuous: bool,
    pub snaplen: u32,
    /// Kernel capture buffer per interface (libpcap `buffer_size`; the TPACKET_V3 ring on Linux).
    pub buffer_bytes: u32,
    /// BPF filter expression, applied in the kernel.
    pub filter: Option<String>,
    /// Frames in flight between the capture threads and the processing thread.
    pub queue_packets: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interfaces: Vec::new(),
            promiscuous: true,
            snaplen: 65535,
            buffer_bytes: 64 << 20,
            filter: None,
            queue_packets: 65536,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("interface {iface}: cannot open: {msg}")]
    Open { iface: String, msg: String },
    #[error("interface {iface}: bad BPF filter {filter:?}: {msg}")]
    Filter {
        iface: String,
        filter: String,
        msg: String,
    },
}

/// Drop and receive counters of one interface, readable while capture runs.
#[derive(Debug, Default)]
pub struct IfaceCounters {
    pub received: AtomicU64,
    pub kernel_drops: AtomicU64,
    pub interface_drops: AtomicU64,
    pub queue_full_drops: AtomicU64,
}

struct Frame {
    ts: Timestamp,
    linktype: LinkType,
    orig_len: u32,
    data: Vec<u8>,
}

pub struct LiveSource {
    rx: Receiver<Frame>,
    recycle: Sender<Vec<u8>>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// Wakes a capture thread blocked in libpcap's poll: on a quiet link a TPACKET_V3 socket waits for the
    /// first packet with no timeout (the read timeout starts with a packet), so the stop flag alone is only
    /// seen one packet later. libpcap ≥ 1.10 wakes the poll on `pcap_breakloop`.
    wake: Vec<pcap::BreakLoop>,
    pub counters: Vec<(String, Arc<IfaceCounters>)>,
    current: Option<Frame>,
}

impl LiveSource {
    /// Opens every interface (all must open, so a typo fails at start) and starts their capture threads.
    pub fn open(cfg: &LiveConfig, stop: Arc<AtomicBool>) -> Result<Self, LiveError> {
        let mut caps = Vec::new();
        for iface in &cfg.interfaces {
            let err = |e: pcap::Error| LiveError::Open { iface: iface.clone(), msg: e.to_string() };
            let mut cap = pcap::Capture::from_device(iface.as_str())
                .map_err(err)?
                .promisc(cfg.promiscuous)
                .snaplen(cfg.snaplen.min(i32::MAX as u32) as i32)
                .buffer_size(cfg.buffer_bytes.min(i32::MAX as u32) as i32)
                // A short read timeout lets the thread notice the stop flag on a quiet link.
                .timeout(100)
                .open()
                .map_err(err)?;
            if let Some(f) = &cfg.filter {
                cap.filter(f, true).map_err(|e| LiveError::Filter {
                    iface: iface.clone(),
                    filter: f.clone(),
                    msg: e.to_string(),
                })?;
            }
            caps.push((iface.clone(), cap));
        }
        let wake = caps.iter_mut().map(|(_, cap)| cap.breakloop_handle()).collect();
        let (tx, rx) = bounded(cfg.queue_packets.max(1));
        let (recycle, pool) = bounded(cfg.queue_packets.max(1));
        let mut threads = Vec::new();
        let mut counters = Vec::new();
        for (iface, cap) in caps {
            let c = Arc::new(IfaceCounters::default());
            counters.push((iface.clone(), c.clone()));
            let (tx, pool, stop) = (tx.clone(), pool.clone(), stop.clone());
            let name = iface.clone();
            let t = std::thread::Builder::new()
                .name(format!("capture-{iface}"))
                .spawn(move || capture_loop(iface, cap, tx, pool, stop, c))
                .map_err(|e| LiveError::Open { iface: name, msg: format!("cannot start capture thread: {e}") })?;
            threads.push(t);
        }
        Ok(LiveSource { rx, recycle, threads, stop, wake, counters, current: None })
    }

    /// The next frame, waiting at most `wait`. `None` on timeout or when capture has stopped and drained.
    pub fn next_packet(&mut self, wait: Duration) -> Option<RawPacket<'_>> {
        if let Some(f) = self.current.take() {
            let _ = self.recycle.try_send(f.data);
        }
        let f = self.rx.recv_timeout(wait).ok()?;
        let f = self.current.insert(f);
        Some(RawPacket { ts: f.ts, linktype: f.linktype, data: &f.data, orig_len: f.orig_len })
    }

    /// True once every capture thread has ended and every frame was handed out.
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished()) && self.rx.is_empty()
    }

    /// Stops every capture thread now, also on a link that carries nothing.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.wake {
            w.breakloop();
        }
    }

    /// Totals over all interfaces: (received, kernel drops, interface drops, queue-full drops).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for (_, c) in &self.counters {
            t.0 += c.received.load(Ordering::Relaxed);
            t.1 += c.kernel_drops.load(Ordering::Relaxed);
            t.2 += c.interface_drops.load(Ordering::Relaxed);
            t.3 += c.queue_full_drops.load(Ordering::Relaxed);
        }
        t
    }

    /// Waits for the capture threads after `stop()`.
    pub fn join(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn capture_loop(
    iface: String,
    mut cap: pcap::Capture<pcap::Active>,
    tx: Sender<Frame>,
    pool: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    c: Arc<IfaceCounters>,
) {
    let linktype = LinkType(cap.get_datalink().0 as u32);
    let mut logged_full = false;
    let mut last_stats = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let mut data = pool.try_recv().unwrap_or_default();
                data.clear();
                data.extend_from_slice(p.data);
                let ts = Timestamp(
                    (p.header.ts.tv_sec.max(0) as u64) * 1_000_000_000 + (p.header.ts.tv_usec.max(0) as u64) * 1000,
                );
                let frame = Frame { ts, linktype, orig_len: p.header.len, data };
                match tx.try_send(frame) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        c.queue_full_drops.fetch_add(1, Ordering::Relaxed);
                        if !logged_full {
                            logged_full = true;
                            tracing::warn!(
                                iface = %iface,
                                "Capture queue full: dropping packets (processing is slower than the link; raise capture.queue_packets or add shards)."
                            );
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            Err(pcap::Error::TimeoutExpired) => {}
            // Woken by `stop` (pcap_breakloop).
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(e) => {
                tracing::error!(iface = %iface, error = %e, "Capture failed; this interface stops.");
                break;
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = std::time::Instant::now();
            update_stats(&mut cap, &c);
        }
    }
    update_stats(&mut cap, &c);
}

fn update_stats(cap: &mut pcap::Capture<pcap::Active>, c: &IfaceCounters) {
    if let Ok(s) = cap.stats() {
        c.received.store(u64::from(s.received), Ordering::Relaxed);
        c.kernel_drops.store(u64::from(s.dropped), Ordering::Relaxed);
        c.interface_drops.store(u64::from(s.if_dropped), Ordering::Relaxed);
    }
}
