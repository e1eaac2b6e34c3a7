//! A whole capture file (pcap or pcapng, any byte order and timestamp precision) through the file reader and
//! the decoder: the first code a hostile file reaches.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mirador::capture::file::FileSource;
use mirador::decode::{DecodeConfig, Decoder};

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = FileSource::from_reader(Path::new("fuzz.pcap"), Box::new(std::io::Cursor::new(data.to_vec())))
    else {
        return;
    };
    let mut d = Decoder::new(DecodeConfig::default());
    // Every record costs at least its header, so the loop is bounded by the input's size.
    while let Some(pkt) = src.next_packet() {
        let _ = d.decode(pkt);
    }
    let _ = src.errors();
});
