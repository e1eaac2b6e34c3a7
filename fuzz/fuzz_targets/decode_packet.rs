//! One frame of any supported link type through the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirador::capture::{LinkType, RawPacket, Timestamp};
use mirador::decode::{DecodeConfig, Decoder};

const LINKTYPES: [LinkType; 12] = [
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::PPP,
    LinkType::C_HDLC,
    LinkType::NFLOG,
    LinkType::IEEE802_11,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let linktype = LINKTYPES[sel as usize % LINKTYPES.len()];
    let mut d = Decoder::new(DecodeConfig::default());
    let pkt = RawPacket { ts: Timestamp(1), linktype, data: frame, orig_len: frame.len() as u32 };
    let _ = d.decode(pkt);
});
