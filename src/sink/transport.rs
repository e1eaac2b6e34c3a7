//! The sinks' transports: rotating file, stdout, syslog (UDP, TCP, TLS), HTTP (Splunk HEC, Elastic `_bulk`,
//! webhook) and Kafka. Each takes a batch of records and either delivers all of it or fails (the caller
//! retries, then spools). TCP and TLS syslog count a record delivered once it is written to the socket: the
//! protocol has no acknowledgement.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::format::{Format, Observer, Severity, Stream, SyslogHeader, SyslogProtocol, record_time, syslog_message};
use super::{HttpFlavor, SinkGlobal, SinkSettings, SinkType, SyslogTransport};

/// One record on its way to a sink.
#[derive(Debug)]
pub struct Event {
    pub stream: Stream,
    pub value: Value,
    pub raw: Vec<u8>,
    pub severity: Severity,
}

/// Largest UDP syslog message sent; longer ones are cut (RFC 5426 allows receivers to do the same).
const MAX_UDP_MESSAGE: usize = 65_000;

pub enum Transport {
    File(FileOut),
    Stdout(Format, Observer),
    Syslog(Box<SyslogOut>),
    Http(Box<HttpOut>),
    #[cfg(feature = "kafka")]
    Kafka(Box<KafkaOut>),
}

impl Transport {
    pub fn new(s: &SinkSettings, g: &SinkGlobal, observer: Observer) -> Result<Transport, String> {
        Ok(match s.kind {
            SinkType::Stdout => Transport::Stdout(s.format, observer),
            SinkType::File => {
                let path = s.path.clone().ok_or("file sink without path")?;
                Transport::File(FileOut::open(path, s.rotate_bytes, s.rotate_keep, s.format, observer)?)
            }
            SinkType::Syslog => Transport::Syslog(Box::new(SyslogOut::new(s, observer)?)),
            SinkType::Http => Transport::Http(Box::new(HttpOut::new(s, g, observer)?)),
            SinkType::Kafka => {
                #[cfg(feature = "kafka")]
                {
                    Transport::Kafka(Box::new(KafkaOut::new(s, g, observer)?))
                }
                #[cfg(not(feature = "kafka"))]
                {
                    return Err("built without the Kafka sink (cargo feature `kafka`)".into());
                }
            }
        })
    }

    /// Records refused for good since the last call (counted as dropped by the caller).
    pub fn take_rejected(&mut self) -> u64 {
        match self {
            Transport::Http(h) => std::mem::take(&mut h.rejected),
            #[cfg(feature = "kafka")]
            Transport::Kafka(k) => std::mem::take(&mut k.rejected),
            _ => 0,
        }
    }

    pub async fn send(&mut self, batch: &[Arc<Event>]) -> Result<(), String> {
        match self {
            Transport::File(f) => f.send(batch),
            Transport::Stdout(fmt, obs) => {
                let mut out = Vec::new();
                for e in batch {
                    out.extend(fmt.render(e.stream, &e.value, obs));
                    out.push(b'\n');
                }
                let mut so = std::io::stdout().lock();
                so.write_all(&out).and_then(|()| so.flush()).map_err(|e| e.to_string())
            }
            Transport::Syslog(s) => s.send(batch).await,
            Transport::Http(h) => h.send(batch).await,
            #[cfg(feature = "kafka")]
            Transport::Kafka(k) => k.send(batch).await,
        }
    }
}

// ---- file -----------------------------------------------------------------------------------------------

/// A JSON-lines (or CEF-lines) file rotated by size: `path` -> `path.1` -> ... -> `path.<keep>`.
pub struct FileOut {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    rotate_bytes: u64,
    keep: u32,
    format: Format,
    observer: Observer,
}

impl FileOut {
    fn open(
        path: PathBuf,
        rotate_bytes: u64,
        keep: u32,
        format: Format,
        observer: Observer,
    ) -> Result<FileOut, String> {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut f = FileOut { path, file: None, size: 0, rotate_bytes, keep, format, observer };
        f.reopen()?;
        Ok(f)
    }

    fn reopen(&mut self) -> Result<(), String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.size = file.metadata().map_or(0, |m| m.len());
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), String> {
        self.file = None;
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(name(self.keep));
            for i in (1..self.keep).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
        }
        self.reopen()
    }

    fn send(&mut self, batch: &[Arc<Event>]) -> Result<(), String> {
        let mut out = Vec::new();
        for e in batch {
            out.extend(self.format.render(e.stream, &e.value, &self.observer));
            out.push(b'\n');
        }
        if self.size > 0 && self.size + out.len() as u64 > self.rotate_bytes {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        let f = self.file.as_mut().ok_or("file not open")?;
        match f.write_all(&out) {
            Ok(()) => {
                self.size += out.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.file = None;
                Err(format!("{}: {e}", self.path.display()))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

// ---- TLS ------------------------------------------------------------------------------------------------

/// A rustls client configuration on the ring provider: the CA file's certificates if given, else the system
/// trust store.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            let certs = CertificateDer::pem_file_iter(p).map_err(|e| format!("{}: {e}", p.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("{}: {e}", p.display()))?;
                roots.add(c).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in the file", p.display()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

// ---- syslog ---------------------------------------------------------------------------------------------

enum Conn {
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

pub struct SyslogOut {
    address: String,
    transport: SyslogTransport,
    header: SyslogHeader,
    format: Format,
    observer: Observer,
    tls: Option<(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
    conn: Option<Conn>,
    timeout: Duration,
}

impl SyslogOut {
    fn new(s: &SinkSettings, observer: Observer) -> Result<SyslogOut, String> {
        let address = s.address.clone().ok_or("syslog sink without address")?;
        let tls = if s.transport == SyslogTransport::Tls {
            let cfg = tls_config(s.ca_file.as_deref())?;
            let host = s.server_name.clone().unwrap_or_else(|| host_of(&address));
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|_| format!("server_name {host:?} is not a DNS name or IP address"))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
        } else {
            None
        };
        Ok(SyslogOut {
            address,
            transport: s.transport,
            header: SyslogHeader {
                protocol: s.protocol,
                facility: s.facility,
                app_name: s.app_name.clone(),
                hostname: s.hostname.clone().unwrap_or_else(|| observer.hostname.clone()),
            },
            format: s.format,
            observer,
            tls,
            conn: None,
            timeout: Duration::from_secs(10),
        })
    }

    async fn connect(&self) -> Result<Conn, String> {
        let addr = tokio::net::lookup_host(&self.address)
            .await
            .map_err(|e| format!("{}: {e}", self.address))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.address))?;
        match self.transport {
            SyslogTransport::Udp => {
                let bind: std::net::SocketAddr =
                    if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
                let s = tokio::net::UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
                s.connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
                Ok(Conn::Udp(s))
            }
            SyslogTransport::Tcp | SyslogTransport::Tls => {
                let tcp = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| format!("{addr}: connect timed out"))?
                    .map_err(|e| format!("{addr}: {e}"))?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    None => Ok(Conn::Tcp(tcp)),
                    Some((c, name)) => {
                        let t = tokio::time::timeout(self.timeout, c.connect(name.clone(), tcp))
                            .await
                            .map_err(|_| format!("{addr}: TLS handshake timed out"))?
                            .map_err(|e| format!("{addr}: TLS: {e}"))?;
                        Ok(Conn::Tls(Box::new(t)))
                    }
                }
            }
        }
    }

    fn message(&self, e: &Event) -> Vec<u8> {
        let body = self.format.render(e.stream, &e.value, &self.observer);
        let t = record_time(&e.value).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
        });
        syslog_message(&self.header, e.severity, t, e.stream.name(), &body)
    }

    async fn send(&mut self, batch: &[Arc<Event>]) -> Result<(), String> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let mut framed = Vec::new();
        let mut datagrams = Vec::new();
        for e in batch {
            let m = self.message(e);
            match self.transport {
                SyslogTransport::Udp => {
                    let mut m = m;
                    m.truncate(MAX_UDP_MESSAGE);
                    datagrams.push(m);
                }
                // RFC 6587 octet counting for RFC 5424 (RFC 5425 over TLS); old RFC 3164 receivers expect LF.
                _ if self.header.protocol == SyslogProtocol::Rfc5424 => {
                    framed.extend(format!("{} ", m.len()).as_bytes());
                    framed.extend(m);
                }
                _ => {
                    framed.extend(m);
                    framed.push(b'\n');
                }
            }
        }
        let timeout = self.timeout;
        let r = match self.conn.as_mut() {
            Some(Conn::Udp(s)) => {
                let mut r = Ok(());
                for d in &datagrams {
                    if let Err(e) = s.send(d).await {
                        r = Err(e.to_string());
                        break;
                    }
                }
                r
            }
            Some(Conn::Tcp(s)) => tokio::time::timeout(timeout, async {
                s.write_all(&framed).await?;
                s.flush().await
            })
            .await
            .map_err(|_| "write timed out".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string())),
            Some(Conn::Tls(s)) => tokio::time::timeout(timeout, async {
                s.write_all(&framed).await?;
                s.flush().await
            })
            .await
            .map_err(|_| "write timed out".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string())),
            None => Err("not connected".to_owned()),
        };
        if r.is_err() {
            // Reconnect on the next attempt.
            self.conn = None;
        }
        r.map_err(|e| format!("{}: {e}", self.address))
    }
}

fn host_of(address: &str) -> String {
    match address.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        None => address.to_owned(),
    }
}

// ---- HTTP -----------------------------------------------------------------------------------------------

pub struct HttpOut {
    client: reqwest::Client,
    url: String,
    flavor: HttpFlavor,
    headers: Vec<(String, String)>,
    gzip: bool,
    index: Option<String>,
    format: Format,
    observer: Observer,
    /// Elastic documents rejected for good (mapping errors): counted, never retried.
    pub rejected: u64,
}

impl HttpOut {
    fn new(s: &SinkSettings, g: &SinkGlobal, observer: Observer) -> Result<HttpOut, String> {
        let url = s.url.clone().ok_or("http sink without url")?;
        let b = reqwest::Client::builder().timeout(g.request_timeout).connect_timeout(g.request_timeout);
        // Always preconfigured: reqwest has no crypto provider of its own here (ring only, no aws-lc-rs).
        let b = b.tls_backend_preconfigured(tls_config(s.ca_file.as_deref())?);
        let client = b.build().map_err(|e| e.to_string())?;
        let mut headers: Vec<(String, String)> = s.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(t) = &s.token {
            let v = match s.flavor {
                HttpFlavor::Hec => format!("Splunk {t}"),
                HttpFlavor::Bulk => format!("ApiKey {t}"),
                HttpFlavor::Webhook => format!("Bearer {t}"),
            };
            headers.push(("Authorization".into(), v));
        }
        Ok(HttpOut {
            client,
            url,
            flavor: s.flavor,
            headers,
            gzip: s.gzip,
            index: s.index.clone(),
            format: s.format,
            observer,
            rejected: 0,
        })
    }

    /// The request body for a batch, and its content type.
    pub fn body(&self, batch: &[Arc<Event>]) -> (Vec<u8>, &'static str) {
        let mut out = Vec::new();
        match self.flavor {
            HttpFlavor::Hec => {
                for e in batch {
                    let rendered = self.format.render(e.stream, &e.value, &self.observer);
                    let event = if self.format.is_json() {
                        serde_json::from_slice::<Value>(&rendered).unwrap_or(Value::Null)
                    } else {
                        Value::String(String::from_utf8_lossy(&rendered).into_owned())
                    };
                    let mut o = json!({
                        "host": self.observer.hostname,
                        "source": "mirador",
                        "sourcetype": format!("mirador:{}", e.stream.name()),
                        "event": event,
                    });
                    if let Some(t) = record_time(&e.value) {
                        o["time"] = json!(t);
                    }
                    if let Some(i) = &self.index {
                        o["index"] = json!(i);
                    }
                    let _ = serde_json::to_writer(&mut out, &o);
                    out.push(b'\n');
                }
                (out, "application/json")
            }
            HttpFlavor::Bulk => {
                let index = self.index.clone().unwrap_or_else(|| "mirador".to_owned());
                for e in batch {
                    let _ = serde_json::to_writer(&mut out, &json!({"create": {"_index": index}}));
                    out.push(b'\n');
                    out.extend(self.format.render(e.stream, &e.value, &self.observer));
                    out.push(b'\n');
                }
                (out, "application/x-ndjson")
            }
            HttpFlavor::Webhook if self.format.is_json() => {
                out.push(b'[');
                for (i, e) in batch.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(self.format.render(e.stream, &e.value, &self.observer));
                }
                out.push(b']');
                (out, "application/json")
            }
            HttpFlavor::Webhook => {
                for e in batch {
                    out.extend(self.format.render(e.stream, &e.value, &self.observer));
                    out.push(b'\n');
                }
                (out, "text/plain")
            }
        }
    }

    async fn send(&mut self, batch: &[Arc<Event>]) -> Result<(), String> {
        let (body, ctype) = self.body(batch);
        let mut req = self.client.post(&self.url).header("Content-Type", ctype);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let body = if self.gzip {
            let mut z = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            z.write_all(&body).and_then(|()| z.finish()).map_err(|e| e.to_string())?
        } else {
            body
        };
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let resp = req.body(body).send().await.map_err(|e| format!("{}: {e}", self.url))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{}: HTTP {}", self.url, status.as_u16()));
        }
        if self.flavor == HttpFlavor::Bulk {
            // `_bulk` answers 200 with per-document results: 429/5xx items are worth retrying (the whole batch
            // again: at-least-once), other failures are rejected for good.
            let bytes = resp.bytes().await.map_err(|e| format!("{}: bulk response: {e}", self.url))?;
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{}: bulk response: {e}", self.url))?;
            if v.get("errors").and_then(Value::as_bool) == Some(true) {
                let items = v.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
                let statuses: Vec<u64> =
                    items.iter().filter_map(|it| it.as_object()?.values().next()?.get("status")?.as_u64()).collect();
                if statuses.iter().any(|&s| s == 429 || s >= 500) {
                    return Err(format!("{}: bulk items failed temporarily", self.url));
                }
                let bad = statuses.iter().filter(|&&s| s >= 400 && s != 409).count() as u64;
                if bad > 0 && self.rejected == 0 {
                    tracing::warn!(url = %self.url, documents = bad, "Elastic rejected documents (counted as dropped; logged once).");
                }
                self.rejected += bad;
            }
        }
        Ok(())
    }
}

// ---- Kafka ----------------------------------------------------------------------------------------------

#[cfg(feature = "kafka")]
pub struct KafkaOut {
    producer: rdkafka::producer::FutureProducer,
    /// Kept to build a new producer after a fatal error (librdkafka's producer is unusable after one).
    config: rdkafka::config::ClientConfig,
    topic: String,
    format: Format,
    observer: Observer,
    timeout: Duration,
    /// Records the cluster can never take (larger than `message.max.bytes`, refused as invalid): counted as
    /// dropped, never retried, so one of them cannot hold back the records behind it.
    pub rejected: u64,
    warned: bool,
}

/// Errors that the same record would get again on every try.
#[cfg(feature = "kafka")]
fn kafka_permanent(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidRecord | C::InvalidMessage)
    )
}

#[cfg(feature = "kafka")]
impl KafkaOut {
    fn new(s: &SinkSettings, g: &SinkGlobal, observer: Observer) -> Result<KafkaOut, String> {
        use rdkafka::config::ClientConfig;
        let brokers = s.brokers.clone().ok_or("kafka sink without brokers")?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &brokers)
            .set("message.timeout.ms", g.request_timeout.as_millis().to_string())
            .set("enable.idempotence", "true")
            .set("compression.type", "gzip");
        for (k, v) in &s.kafka {
            c.set(k, v);
        }
        let producer = c.create().map_err(|e| e.to_string())?;
        Ok(KafkaOut {
            producer,
            config: c,
            topic: s.topic.clone().unwrap_or_else(|| "mirador".to_owned()),
            format: s.format,
            observer,
            timeout: g.request_timeout,
            rejected: 0,
            warned: false,
        })
    }

    async fn send(&mut self, batch: &[Arc<Event>]) -> Result<(), String> {
        use rdkafka::Message as _;
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::{FutureRecord, Producer as _};
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            // The idempotent producer stops for good on e.g. a sequence gap the broker cannot explain, and
            // refuses every record after it; a new producer (new producer id) takes the retried batch.
            tracing::warn!(topic = %self.topic, error = %code, reason = %reason, "Kafka producer failed for good: starting a new one.");
            self.producer = self.config.create().map_err(|e| e.to_string())?;
        }
        let mut rejected = 0;
        let mut pending = Vec::with_capacity(batch.len());
        for e in batch {
            let payload = self.format.render(e.stream, &e.value, &self.observer);
            // Keyed by service so one partition holds a service's history (fleet-wide inventory rebuild); the
            // headers tell a consumer of a shared topic which stream and which sensor a record comes from.
            let key = kafka_key(&e.value);
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header { key: "stream", value: Some(e.stream.name()) })
                .insert(Header { key: "sensor", value: Some(self.observer.hostname.as_str()) });
            let rec = FutureRecord::to(&self.topic).payload(&payload).key(&key).headers(headers);
            match self.producer.send_result(rec) {
                Ok(f) => pending.push(f),
                Err((err, _)) if kafka_permanent(&err) => {
                    self.warn_rejected(&err, payload.len());
                    rejected += 1;
                }
                Err((err, _)) => return Err(err.to_string()),
            }
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        for f in pending {
            match tokio::time::timeout_at(deadline, f).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, m)))) if kafka_permanent(&e) => {
                    self.warn_rejected(&e, m.payload().map_or(0, <[u8]>::len));
                    rejected += 1;
                }
                Ok(Ok(Err((e, _)))) => return Err(e.to_string()),
                Ok(Err(_)) => return Err("producer gone".into()),
                Err(_) => return Err("delivery timed out".into()),
            }
        }
        // Counted only when the batch is through: a failed batch is tried again and would count them twice.
        self.rejected += rejected;
        Ok(())
    }

    fn warn_rejected(&mut self, e: &rdkafka::error::KafkaError, bytes: usize) {
        if !std::mem::replace(&mut self.warned, true) {
            tracing::warn!(topic = %self.topic, error = %e, bytes, "Kafka refused a record for good (counted as dropped; logged once).");
        }
    }
}

/// The Kafka message key: the service (host) the record is about, "-" when it names none.
pub fn kafka_key(v: &Value) -> String {
    v.get("service")
        .or_else(|| v.get("host"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("-")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_key_is_the_service() {
        assert_eq!(kafka_key(&json!({"service": "api.example", "host": "x"})), "api.example");
        assert_eq!(kafka_key(&json!({"host": "10.0.0.1:8080"})), "10.0.0.1:8080");
        assert_eq!(kafka_key(&json!({"service": ""})), "-");
        assert_eq!(kafka_key(&json!({"service": 3})), "-");
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_permanent_errors_are_the_ones_a_retry_cannot_fix() {
        use rdkafka::error::KafkaError::MessageProduction as P;
        use rdkafka::types::RDKafkaErrorCode as C;
        assert!(kafka_permanent(&P(C::MessageSizeTooLarge)));
        assert!(kafka_permanent(&P(C::InvalidRecord)));
        assert!(!kafka_permanent(&P(C::QueueFull)));
        assert!(!kafka_permanent(&P(C::MessageTimedOut)));
        assert!(!kafka_permanent(&P(C::OutOfOrderSequenceNumber)));
    }
}
