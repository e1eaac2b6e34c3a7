//! The end of a replay: every finding and alert filed under its operation's final template.
//!
//! Records are raised while the inventory is still learning: a finding seen early is filed under the
//! literal `/api/projects/website/boards/`, which a later transaction made `/api/projects/{projectId}/
//! boards/`. A live sensor keeps the template of the moment (its records went to the SIEM as they were
//! raised; the inventory and its documents show the merged view). At the end of a replay the files are
//! rewritten with the template each operation has at the end, the one `inventory.json`, the OpenAPI
//! documents and the spec diff show. Only the `endpoint` value changes, in place; the sinks received the
//! records as they were raised.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use super::Inventory;

/// Rewrites `alerts.jsonl` and `findings.jsonl` in `dir`; returns how many records changed.
pub fn refile(inv: &Inventory, dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for name in ["alerts.jsonl", "findings.jsonl"] {
        let path = dir.join(name);
        let Ok(file) = File::open(&path) else { continue };
        let tmp = dir.join(format!("{name}.refile"));
        let mut w = BufWriter::new(File::create(&tmp)?);
        let mut changed = 0;
        for line in BufReader::new(file).split(b'\n') {
            let line = line?;
            match refiled(inv, &line) {
                Some(new) => {
                    changed += 1;
                    w.write_all(&new)?;
                }
                None => w.write_all(&line)?,
            }
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        if changed > 0 {
            std::fs::rename(&tmp, &path)?;
        } else {
            std::fs::remove_file(&tmp)?;
        }
        total += changed;
    }
    Ok(total)
}

/// The record with its `endpoint` re-filed, or `None` when it stays as it is.
fn refiled(inv: &Inventory, line: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Filed<'a> {
        #[serde(borrow)]
        endpoint: Option<Cow<'a, str>>,
        #[serde(borrow)]
        host: Option<Cow<'a, str>>,
        #[serde(borrow)]
        dst_ip: Option<Cow<'a, str>>,
        dst_port: Option<u16>,
    }
    let f: Filed<'_> = serde_json::from_slice(line).ok()?;
    let old = f.endpoint?;
    let host = match (f.host, f.dst_ip, f.dst_port) {
        (Some(h), _, _) => h.into_owned(),
        (None, Some(ip), Some(port)) => format!("{ip}:{port}"),
        _ => return None,
    };
    let new = inv.final_template(&host, &old)?;
    if new == old {
        return None;
    }
    // The writers put no space after a key's colon and escape strings as serde_json does.
    let from = format!("\"endpoint\":{}", serde_json::to_string(&*old).ok()?);
    let to = format!("\"endpoint\":{}", serde_json::to_string(&new).ok()?);
    let at = memchr::memmem::find(line, from.as_bytes())?;
    let mut out = Vec::with_capacity(line.len() + to.len());
    out.extend_from_slice(&line[..at]);
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&line[at + from.len()..]);
    Some(out)
}
