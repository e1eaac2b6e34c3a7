//! `<state_dir>/inventory.sqlite`: what the inventory learned, kept across restarts.
//!
//! Tables (documented in README, "API inventory"):
//! - `meta(key TEXT PRIMARY KEY, value TEXT)`: `schema_version` = 1.
//! - `services(service TEXT PRIMARY KEY, transactions INTEGER, first_seen REAL, last_seen REAL, model TEXT)`:
//!   `model` is the service's whole path tree with its operations as JSON; it is what a restart loads.
//! - `operations(service, method, template, transactions, first_seen, last_seen, statuses, auth, data_classes,
//!   clients_estimate, confidence)`, primary key (service, method, template): a flat view for operators,
//!   rewritten on every save. `statuses`, `auth` and `data_classes` are JSON.

use std::path::Path;

use rusqlite::{Connection, params};

use super::Service;
use super::template::TreeCaps;

const SCHEMA_VERSION: &str = "1";

pub struct Store {
    conn: Connection,
}

/// What one save writes, serialised while the model lock is held and written after it is released.
pub struct Snapshot {
    services: Vec<(String, u64, f64, f64, String)>,
    operations: Vec<OpRow>,
}

struct OpRow {
    service: String,
    method: String,
    template: String,
    transactions: u64,
    first_seen: f64,
    last_seen: f64,
    statuses: String,
    auth: String,
    data_classes: String,
    clients: u64,
    confidence: f64,
}

impl Snapshot {
    pub fn of(services: &super::Services, caps: &TreeCaps) -> Snapshot {
        let mut snap = Snapshot { services: Vec::new(), operations: Vec::new() };
        for (k, s) in services {
            let model = serde_json::to_string(s).unwrap_or_default();
            snap.services.push((k.clone(), s.transactions, s.first_seen, s.last_seen, model));
            for v in s.tree.views(caps) {
                for (m, op) in &v.node.ops {
                    let statuses: serde_json::Map<String, serde_json::Value> =
                        op.responses.iter().map(|(s, r)| (s.to_string(), r.count.into())).collect();
                    let auth: serde_json::Map<String, serde_json::Value> =
                        op.auth.iter().map(|(k, a)| (k.to_string(), a.count.into())).collect();
                    snap.operations.push(OpRow {
                        service: k.clone(),
                        method: m.to_string(),
                        template: v.template.clone(),
                        transactions: op.count,
                        first_seen: op.first_seen,
                        last_seen: op.last_seen,
                        statuses: serde_json::Value::Object(statuses).to_string(),
                        auth: serde_json::Value::Object(auth).to_string(),
                        data_classes: serde_json::to_string(&op.data_classes).unwrap_or_default(),
                        clients: op.clients.estimate(),
                        confidence: v.confidence,
                    });
                }
            }
        }
        snap
    }
}

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS services (
                 service TEXT PRIMARY KEY, transactions INTEGER NOT NULL, first_seen REAL NOT NULL,
                 last_seen REAL NOT NULL, model TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS operations (
                 service TEXT NOT NULL, method TEXT NOT NULL, template TEXT NOT NULL,
                 transactions INTEGER NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
                 statuses TEXT NOT NULL, auth TEXT NOT NULL, data_classes TEXT NOT NULL,
                 clients_estimate INTEGER NOT NULL, confidence REAL NOT NULL,
                 PRIMARY KEY (service, method, template));",
        )?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) ON CONFLICT(key) DO NOTHING",
            params![SCHEMA_VERSION],
        )?;
        let v: String = conn.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))?;
        if v != SCHEMA_VERSION {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "schema_version {v} (this build reads {SCHEMA_VERSION})"
            )));
        }
        Ok(Store { conn })
    }

    /// Every service saved. A service whose model does not parse is skipped with a warning.
    pub fn load(&self) -> rusqlite::Result<Vec<(String, Service)>> {
        let mut stmt = self.conn.prepare("SELECT service, model FROM services")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (k, model) = row?;
            match serde_json::from_str::<Service>(&model) {
                Ok(s) => out.push((k, s)),
                Err(e) => {
                    tracing::warn!(service = %k, error = %e, "Skipping an unreadable service in the inventory store.")
                }
            }
        }
        Ok(out)
    }

    pub fn save(&self, snap: &Snapshot) -> rusqlite::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM services", [])?;
        tx.execute("DELETE FROM operations", [])?;
        {
            let mut s = tx.prepare(
                "INSERT INTO services (service, transactions, first_seen, last_seen, model) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (k, n, f, l, m) in &snap.services {
                s.execute(params![k, *n as i64, f, l, m])?;
            }
            let mut o = tx.prepare(
                "INSERT OR REPLACE INTO operations (service, method, template, transactions, first_seen, last_seen,
                 statuses, auth, data_classes, clients_estimate, confidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for r in &snap.operations {
                o.execute(params![
                    r.service,
                    r.method,
                    r.template,
                    r.transactions as i64,
                    r.first_seen,
                    r.last_seen,
                    r.statuses,
                    r.auth,
                    r.data_classes,
                    r.clients as i64,
                    r.confidence
                ])?;
            }
        }
        tx.commit()
    }
}
