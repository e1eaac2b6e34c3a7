//! Writes the hostile captures (see `mirador::hostile`): deterministic, packet by packet.
//!
//!     cargo run --release --example gen-hostile -- OUT_DIR [KIND[=N] ...]
//!
//! Without kinds, writes every kind at the size of the table (syn-flood 1,000,000 SYNs, pending-heads
//! 200,000 connections, missing-first 2,000 connections, fragments 500,000, gzip-bomb 256 MiB); `syn-flood=10000000`
//! writes the 10 M SYN version. Each file is `OUT_DIR/KIND-N.pcap`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use mirador::hostile::{self, Kind};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: gen-hostile OUT_DIR [KIND[=N] ...]")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut wanted = Vec::new();
    for a in args {
        let (name, n) = a.split_once('=').map_or((a.as_str(), None), |(k, n)| (k, Some(n)));
        let Some(kind) = Kind::from_name(name) else {
            bail!("unknown kind {name:?}; kinds: {}", Kind::ALL.map(Kind::name).join(", "));
        };
        let n = match n {
            Some(n) => n.parse().with_context(|| format!("{a}: size is not a number"))?,
            None => kind.full_size(),
        };
        wanted.push((kind, n));
    }
    if wanted.is_empty() {
        wanted = Kind::ALL.iter().map(|k| (*k, k.full_size())).collect();
    }
    for (kind, n) in wanted {
        let path = dir.join(format!("{}-{n}.pcap", kind.name()));
        let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let packets = hostile::write(kind, n, std::io::BufWriter::new(f))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{}: {packets} packets", path.display());
    }
    Ok(())
}
