//! HTTP/1.x framing over reassembled streams. (Stub with the agreed interface; replaced by the HTTP work.)

use std::sync::Arc;

use crate::capture::Timestamp;
use crate::flow::FlowInfo;
use crate::reassembly::{Dir, StreamEvent};

#[derive(Clone, Debug, Default)]
pub struct HttpConfig {}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HttpStats {}

impl HttpStats {
    pub fn merge(&mut self, _o: &HttpStats) {}
}

#[derive(Debug)]
pub struct Transaction {}

#[derive(Debug, serde::Serialize)]
pub struct TransactionRecord {}

impl Transaction {
    pub fn record(&self) -> TransactionRecord {
        TransactionRecord {}
    }
}

pub struct HttpParser {
    stats: HttpStats,
}

impl HttpParser {
    pub fn new(_cfg: Arc<HttpConfig>, _flow: Arc<FlowInfo>) -> Self {
        HttpParser { stats: HttpStats::default() }
    }
    pub fn on_stream(&mut self, _dir: Dir, _ts: Timestamp, _ev: StreamEvent<'_>, _out: &mut Vec<Transaction>) {}
    pub fn finish(&mut self, _ts: Timestamp, _out: &mut Vec<Transaction>) {}
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }
}
