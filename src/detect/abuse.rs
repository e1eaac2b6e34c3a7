//! Abuse and data exposure (API3, API4): per-actor request rate, 404 bursts (directory busting), 5xx
//! spikes per operation, personal data in query strings (from the sensitive-data analyzer), and responses
//! far larger than the operation's baseline (bulk extraction).

use super::rules::{RuleId, Rules};
use super::state::{Bounded, Peers, WindowCount};
use super::{Detector, Emitter, Hit, Scope, Settings, TxContext};
use crate::http::Transaction;

/// Response sizes below this never count as excessive, whatever the baseline: small bodies vary a lot.
const MIN_EXCESSIVE_BYTES: u64 = 16 * 1024;
/// ... and a response must also be this many times the mean.
const MIN_EXCESSIVE_RATIO: f64 = 4.0;

/// Running mean and variance (Welford) of an operation's 2xx response sizes.
#[derive(Default)]
struct SizeStats {
    n: u64,
    mean: f64,
    m2: f64,
}

impl SizeStats {
    fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
    fn sd(&self) -> f64 {
        if self.n < 2 { 0.0 } else { (self.m2 / (self.n - 1) as f64).sqrt() }
    }
}

/// Data classes an operation's responses carried, learned over its first `warmup_requests` responses.
#[derive(Default)]
struct OpClasses {
    responses: u64,
    classes: Vec<String>,
}

/// One actor's requests in the rate window, and the count last added to the peers.
#[derive(Default)]
struct Rate {
    window: WindowCount,
    counted: u64,
}

/// Other actors before the typical rate means something.
const RATE_MIN_PEERS: u64 = 5;
/// An actor is an outlier when it sends this many times the typical rate.
const RATE_PEER_FACTOR: f64 = 4.0;

/// Operations answered 404 to one actor, remembered with the time of the first 404: (operation, time).
#[derive(Default)]
struct NotFounds {
    paths: Vec<(u64, f64)>,
}

/// Distinct 404 operations remembered per actor; far above any threshold that makes sense.
const MAX_NOT_FOUND_PATHS: usize = 256;

/// Classes remembered per operation.
const MAX_CLASSES: usize = 64;

fn sensitive_category(c: &str) -> bool {
    matches!(c, "pii" | "financial" | "health" | "credential" | "secret")
}

pub struct Abuse {
    rate: RuleId,
    not_found: RuleId,
    errors: RuleId,
    pii: RuleId,
    size: RuleId,
    /// By actor.
    requests: Bounded<u64, Rate>,
    /// Every actor's request count in its window.
    rate_peers: std::sync::Mutex<Peers>,
    /// By actor.
    not_founds: Bounded<u64, NotFounds>,
    /// By operation.
    server_errors: Bounded<u64, WindowCount>,
    sizes: Bounded<u64, SizeStats>,
    new_pii: RuleId,
    headers: RuleId,
    classes: Bounded<u64, OpClasses>,
    warmup: u64,
    max_window: f64,
}

impl Abuse {
    pub fn new(rules: &Rules, s: &Settings) -> Self {
        let id = |n: &str| rules.find(n).unwrap_or(RuleId(u16::MAX));
        let cap = s.max_tracked_keys;
        let (rate, not_found, errors) = (id("rate_anomaly"), id("not_found_burst"), id("server_error_spike"));
        Abuse {
            rate,
            not_found,
            errors,
            pii: id("pii_in_query"),
            size: id("excessive_response"),
            requests: Bounded::new(cap, "[detect] max_tracked_keys"),
            rate_peers: Default::default(),
            not_founds: Bounded::new(cap, "[detect] max_tracked_keys"),
            server_errors: Bounded::new(cap, "[detect] max_tracked_keys"),
            sizes: Bounded::new(cap, "[detect] max_tracked_keys"),
            new_pii: id("new_pii_in_response"),
            headers: id("missing_security_headers"),
            classes: Bounded::new(cap, "[detect] max_tracked_keys"),
            warmup: s.warmup_requests,
            max_window: rules.window(rate).max(rules.window(not_found)).max(rules.window(errors)),
        }
    }

    fn count(
        &self,
        map: &Bounded<u64, WindowCount>,
        rule: RuleId,
        key: u64,
        scope: Scope,
        what: &str,
        em: &mut Emitter<'_>,
    ) {
        if !em.on(rule) {
            return;
        }
        let window = em.rules.window(rule);
        let n = map.update(key, WindowCount::default, |w| w.add(em.facts.ts, window)).unwrap_or(0);
        if n as f64 >= em.rules.threshold(rule) {
            em.raise(Hit::new(rule).scope(scope).events(n).evidence(format!("{n} {what} within {window}s")));
        }
    }

    /// An actor sending far more than its peers. Every client of a load test, a batch job or a busy
    /// integration sends many requests a minute; what stands out is one sending several times what is
    /// typical (with fewer than `RATE_MIN_PEERS` other actors, the threshold alone decides).
    fn rate(&self, em: &mut Emitter<'_>) {
        let f = em.facts;
        if !em.on(self.rate) {
            return;
        }
        let window = em.rules.window(self.rate);
        let Some((before, n)) = self.requests.update(f.actor_id, Rate::default, |r| {
            let n = r.window.add(f.ts, window);
            (std::mem::replace(&mut r.counted, n), n)
        }) else {
            return;
        };
        let typical = {
            let mut p = self.rate_peers.lock().unwrap_or_else(|e| e.into_inner());
            p.adjust(before, n);
            p.typical_other(n, RATE_MIN_PEERS)
        };
        if (n as f64) < em.rules.threshold(self.rate) {
            return;
        }
        let mut ev = format!("{n} requests within {window}s");
        match typical {
            Some(t) if (n as f64) < RATE_PEER_FACTOR * t => return,
            Some(t) => ev.push_str(&format!("; other actors about {t:.0}")),
            None => {}
        }
        em.raise(Hit::new(self.rate).scope(Scope::Actor).events(n).evidence(ev));
    }

    /// Directory busting asks for many paths that do not exist: distinct literal operations (method and
    /// a template without parameters) answered 404 to one actor count. A 404 on an operation with an id
    /// parameter is an object that does not exist (`bola_enumeration` judges those).
    fn not_found(&self, em: &mut Emitter<'_>) {
        let f = em.facts;
        if !em.on(self.not_found) || f.template.contains('{') {
            return;
        }
        let window = em.rules.window(self.not_found);
        let n = self
            .not_founds
            .update(f.actor_id, NotFounds::default, |s| {
                s.paths.retain(|(_, t)| t + window >= f.ts);
                if s.paths.iter().any(|(op, _)| *op == f.op_id) {
                    return None;
                }
                if s.paths.len() >= MAX_NOT_FOUND_PATHS {
                    s.paths.remove(0);
                }
                s.paths.push((f.op_id, f.ts));
                Some(s.paths.len())
            })
            .flatten();
        if let Some(n) = n.filter(|n| *n as f64 >= em.rules.threshold(self.not_found)) {
            em.raise(
                Hit::new(self.not_found)
                    .scope(Scope::Actor)
                    .events(n as u64)
                    .evidence(format!("{n} distinct paths answered 404 within {window}s")),
            );
        }
    }

    fn excessive(&self, tx: &Transaction, em: &mut Emitter<'_>) {
        let f = em.facts;
        if !f.success() || !em.on(self.size) {
            return;
        }
        let len = tx.response_body_decoded_len.unwrap_or(tx.response_body_len);
        let threshold = em.rules.threshold(self.size);
        let key = f.op_id;
        let warmup = self.warmup.max(2);
        let verdict = self.sizes.update(key, SizeStats::default, |s| {
            let x = len as f64;
            let out = s.n >= warmup
                && len >= MIN_EXCESSIVE_BYTES
                && x >= MIN_EXCESSIVE_RATIO * s.mean
                && x > s.mean + threshold * s.sd();
            let mean = s.mean;
            // Outliers stay out of the baseline: a slow extraction must not teach it that huge is normal.
            if !out {
                s.add(x);
            }
            out.then_some(mean)
        });
        if let Some(Some(mean)) = verdict {
            em.raise(
                Hit::new(self.size)
                    .at("response.body", "")
                    .evidence(format!("{len} bytes; this operation's mean is {mean:.0} bytes")),
            );
        }
    }
}

impl Abuse {
    fn response_classes(&self, tx: &Transaction, ctx: &TxContext, em: &mut Emitter<'_>) {
        let f = em.facts;
        if f.status.is_none() {
            return;
        }
        let mut resp = ctx
            .data_classes
            .iter()
            .filter(|d| d.location.starts_with("response.") && sensitive_category(&d.category))
            .peekable();
        if resp.peek().is_none() {
            // Still one more response of the operation.
            if em.on(self.new_pii) {
                self.classes.update(f.op_id, OpClasses::default, |o| o.responses += 1);
            }
            return;
        }
        if em.on(self.headers) && f.success() {
            let h = &tx.response_headers;
            let cache_ok = h.get("cache-control").is_some_and(|v| {
                super::contains_ignore_ascii_case(v, "no-store") || super::contains_ignore_ascii_case(v, "private")
            });
            let nosniff = h.get("x-content-type-options").is_some_and(|v| v.trim().eq_ignore_ascii_case("nosniff"));
            let mut missing = Vec::new();
            if !cache_ok {
                missing.push("Cache-Control: no-store");
            }
            if !nosniff {
                missing.push("X-Content-Type-Options: nosniff");
            }
            if !missing.is_empty() {
                em.raise(
                    Hit::new(self.headers)
                        .scope(Scope::Endpoint)
                        .once(0)
                        .at("response.header", "")
                        .evidence(format!("missing {}", missing.join(", "))),
                );
            }
        }
        if !em.on(self.new_pii) {
            return;
        }
        let found: Vec<&super::super::analyzer::DataClassHit> = resp.collect();
        // A class absent from n responses is, with 95% confidence, rarer than 3/n (the rule of three): the
        // baseline must be long enough that a rare but ordinary class has shown up in it.
        let warmup = (em.rules.threshold(self.new_pii) as u64).max(self.warmup).max(1);
        let new = self
            .classes
            .update(f.op_id, OpClasses::default, |o| {
                let learned = o.responses >= warmup;
                o.responses += 1;
                let mut new = Vec::new();
                for d in &found {
                    if !o.classes.iter().any(|c| c == &d.class) && o.classes.len() < MAX_CLASSES {
                        o.classes.push(d.class.clone());
                        if learned {
                            new.push((d.class.clone(), d.location, d.field.clone()));
                        }
                    }
                }
                new
            })
            .unwrap_or_default();
        if let Some((class, loc, field)) = new.first() {
            let names: Vec<&str> = new.iter().map(|(c, _, _)| c.as_str()).collect();
            em.raise(
                Hit::new(self.new_pii).scope(Scope::Endpoint).at(loc, field.clone()).evidence(format!(
                    "{} (new to this operation after {warmup} responses; {class})",
                    names.join(", ")
                )),
            );
        }
    }
}

impl Detector for Abuse {
    fn name(&self) -> &'static str {
        "abuse"
    }

    fn on_transaction(&self, tx: &Transaction, ctx: &TxContext, em: &mut Emitter<'_>) {
        let f = em.facts;
        self.rate(em);
        if f.status == Some(404) {
            self.not_found(em);
        }
        if f.status.is_some_and(|s| s >= 500) {
            self.count(&self.server_errors, self.errors, f.op_id, Scope::Endpoint, "answers 5xx", em);
        }
        if em.on(self.pii) {
            let mut hits = ctx.data_classes.iter().filter(|d| {
                d.location == "request.query" && matches!(d.category.as_str(), "pii" | "financial" | "health")
            });
            if let Some(first) = hits.next() {
                let mut classes = vec![first.class.as_str()];
                classes.extend(hits.map(|d| d.class.as_str()));
                classes.sort_unstable();
                classes.dedup();
                em.raise(
                    Hit::new(self.pii)
                        .scope(Scope::Endpoint)
                        .once(0)
                        .at("request.query", first.field.clone())
                        .evidence(format!("{} in the URL (value not shown)", classes.join(", "))),
                );
            }
        }
        self.excessive(tx, em);
        self.response_classes(tx, ctx, em);
    }

    fn on_tick(&self, now: f64) {
        let w = self.max_window;
        let keep = |_: &u64, c: &mut WindowCount| c.last().is_some_and(|l| l as f64 + w >= now);
        let mut idle = Vec::new();
        self.requests.retain(|_, r| {
            let k = r.window.last().is_some_and(|l| l as f64 + w >= now);
            if !k {
                idle.push(r.counted);
            }
            k
        });
        if !idle.is_empty() {
            let mut p = self.rate_peers.lock().unwrap_or_else(|e| e.into_inner());
            for c in idle {
                p.adjust(c, 0);
            }
        }
        self.server_errors.retain(keep);
        self.not_founds.retain(|_, n| n.paths.last().is_some_and(|(_, t)| t + w >= now));
    }

    fn cap_hits(&self) -> u64 {
        self.requests.cap_hits()
            + self.not_founds.cap_hits()
            + self.server_errors.cap_hits()
            + self.sizes.cap_hits()
            + self.classes.cap_hits()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Settings, TxContext};
    use crate::analyzer::DataClassHit;

    fn has(a: &[serde_json::Value], id: &str) -> bool {
        ids(a).iter().any(|r| r == id)
    }

    #[test]
    fn not_found_burst() {
        let e = engine(Settings::default());
        let mut fired_at = None;
        for i in 0..12 {
            if has(&fired(&e, &tx("GET", &format!("/x{i}"), &[], "", 404, 10.0 + f64::from(i))), "not_found_burst") {
                fired_at.get_or_insert(i);
            }
        }
        assert_eq!(fired_at, Some(9));
        let e = engine(Settings::default());
        for i in 0..20 {
            assert!(!has(&fired(&e, &tx("GET", "/x", &[], "", 404, f64::from(i) * 30.0)), "not_found_burst"));
        }
    }

    #[test]
    fn server_error_spike_per_endpoint() {
        let e = engine(Settings::default());
        let mut any = false;
        for i in 0..10 {
            any |= has(
                &fired(&e, &tx("GET", &format!("/v1/users/{i}"), &[], "", 500, f64::from(i))),
                "server_error_spike",
            );
        }
        assert!(any);
        let e = engine(Settings::default());
        for i in 0..10 {
            assert!(!has(
                &fired(&e, &tx("GET", &format!("/v1/p{i}"), &[], "", 500, f64::from(i))),
                "server_error_spike"
            ));
        }
    }

    #[test]
    fn rate_anomaly() {
        let mut s = Settings::default();
        s.rules
            .insert("rate_anomaly".into(), super::super::RuleSettings { threshold: Some(50.0), ..Default::default() });
        let e = engine(s);
        let n = (0..100)
            .filter(|i| has(&fired(&e, &tx("GET", "/x", &[], "", 200, f64::from(*i) * 0.1)), "rate_anomaly"))
            .count();
        assert_eq!(n, 51);
    }

    #[test]
    fn rate_anomaly_against_peers() {
        let e = engine(Settings::default());
        // Twenty clients of a load test, each 1,000 requests a minute: none stands out.
        let mut any = false;
        for i in 0..20_000u32 {
            let auth = format!("Bearer c{}", i % 20);
            let t = tx("GET", "/v1/items", &[("Authorization", &auth)], "", 200, f64::from(i) * 0.003);
            any |= has(&fired(&e, &t), "rate_anomaly");
        }
        assert!(!any);
        // One sending five times that does.
        let hit = (0..5000u32).any(|i| {
            let t = tx("GET", "/v1/items", &[("Authorization", "Bearer hot")], "", 200, 60.0 + f64::from(i) * 0.01);
            has(&fired(&e, &t), "rate_anomaly")
        });
        assert!(hit);
    }

    #[test]
    fn not_found_on_ids_is_no_directory_busting() {
        let e = engine(Settings::default());
        for i in 0..30 {
            let t = tx("GET", &format!("/v1/users/{}", 1000 + i), &[], "", 404, f64::from(i));
            assert!(!has(&fired(&e, &t), "not_found_burst"));
        }
    }

    #[test]
    fn pii_in_query_from_data_classes() {
        let e = engine(Settings::default());
        let dc = |loc: &'static str, cat: &str| DataClassHit {
            location: loc,
            field: "email".into(),
            class: "email".into(),
            category: cat.into(),
        };
        let ctx = TxContext { data_classes: vec![dc("request.query", "pii")], ..Default::default() };
        let a = fired_ctx(&e, &tx("GET", "/v1/users?email=a%40b.example", &[], "", 200, 1.0), &ctx);
        let p = a.iter().find(|a| a["rule_id"] == "pii_in_query").unwrap();
        assert_eq!(p["field"], "email");
        assert!(!p.to_string().contains("a@b.example"));
        let ctx = TxContext { data_classes: vec![dc("response.body", "pii")], ..Default::default() };
        assert!(!has(&fired_ctx(&e, &tx("GET", "/v1/users", &[], "", 200, 1.0), &ctx), "pii_in_query"));
    }

    #[test]
    fn new_pii_class_after_warmup_and_missing_headers() {
        let e = engine(Settings::default());
        let dc = |class: &str| DataClassHit {
            location: "response.body",
            field: class.into(),
            class: class.into(),
            category: "pii".into(),
        };
        let ctx = TxContext { data_classes: vec![dc("email")], ..Default::default() };
        // The baseline is the rule's threshold (300 responses): a class absent from them is rarer than 1%.
        for i in 0..300 {
            let t = with_response(
                tx("GET", "/v1/users", &[], "", 200, f64::from(i)),
                &[("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")],
                "{}",
            );
            let a = fired_ctx(&e, &t, &ctx);
            assert!(!has(&a, "new_pii_in_response") && !has(&a, "missing_security_headers"), "{a:?}");
        }
        let ctx = TxContext { data_classes: vec![dc("email"), dc("ssn")], ..Default::default() };
        let t = with_response(tx("GET", "/v1/users", &[], "", 200, 30.0), &[], "{}");
        let a = fired_ctx(&e, &t, &ctx);
        let n = a.iter().find(|a| a["rule_id"] == "new_pii_in_response").expect("new class");
        assert!(n["evidence"].as_str().unwrap().starts_with("ssn"), "{n}");
        let m = a.iter().find(|a| a["rule_id"] == "missing_security_headers").expect("headers");
        assert!(m["evidence"].as_str().unwrap().contains("no-store"));
        // Known from now on; the missing headers are a property of the operation, reported once.
        let a = fired_ctx(&e, &t, &ctx);
        assert!(!has(&a, "new_pii_in_response") && !has(&a, "missing_security_headers"), "{a:?}");
        // Before the baseline, a class is learnt silently.
        let e = engine(Settings::default());
        for i in 0..250 {
            let ctx =
                TxContext { data_classes: vec![dc(if i < 240 { "email" } else { "iban" })], ..Default::default() };
            assert!(!has(
                &fired_ctx(&e, &tx("GET", "/v1/users", &[], "", 200, f64::from(i)), &ctx),
                "new_pii_in_response"
            ));
        }
    }

    #[test]
    fn excessive_response_against_baseline() {
        let e = engine(Settings::default());
        for i in 0..30 {
            let t = with_response(
                tx("GET", "/v1/users", &[], "", 200, f64::from(i)),
                &[],
                &"x".repeat(2000 + (i % 5) as usize * 100),
            );
            assert!(!has(&fired(&e, &t), "excessive_response"));
        }
        let t = with_response(tx("GET", "/v1/users", &[], "", 200, 40.0), &[], &"x".repeat(200_000));
        assert!(has(&fired(&e, &t), "excessive_response"));
        let t = with_response(tx("GET", "/v1/users", &[], "", 200, 41.0), &[], &"x".repeat(2600));
        assert!(!has(&fired(&e, &t), "excessive_response"));
    }
}
