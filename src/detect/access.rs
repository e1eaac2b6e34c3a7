//! Authentication and access control (API1, API2): failed-authentication bursts, JWT weaknesses,
//! credentials over cleartext HTTP and in URLs, unauthenticated success on operations that normally need
//! credentials, and object-id enumeration (BOLA).

use std::hash::{BuildHasher, Hash, Hasher};

use super::rules::{RuleId, Rules};
use super::state::{Bounded, Peers, WindowCount};
use super::{Detector, Emitter, Facts, Hit, Scope, Settings, TxContext};
use crate::http::Transaction;

/// Dictionary tried against HS256 signatures: defaults from frameworks, tutorials and leaked configs.
const WEAK_SECRETS: &[&str] = &[
    "secret",
    "password",
    "123456",
    "12345678",
    "changeme",
    "change-me",
    "your-256-bit-secret",
    "your_jwt_secret",
    "jwt_secret",
    "jwtsecret",
    "jwt-secret",
    "secretkey",
    "secret-key",
    "secret_key",
    "my_secret_key",
    "mysecret",
    "supersecret",
    "s3cr3t",
    "secret123",
    "key",
    "admin",
    "test",
    "default",
    "qwerty",
    "letmein",
    "token",
    "development",
    "dev",
    "private",
    "shhhhh",
    "keyboard cat",
    "example",
    "hmacsecret",
    "your-secret-key",
    "SECRET_KEY",
    "Secret",
    "pass",
    "1234567890",
];

/// Query parameter names that carry credentials.
const CREDENTIAL_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "accesstoken",
    "id_token",
    "refresh_token",
    "auth_token",
    "authtoken",
    "api_key",
    "apikey",
    "api-key",
    "key_secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "client_secret",
    "jwt",
    "session",
    "sessionid",
    "session_id",
    "sid",
    "auth",
    "authorization",
    "x-api-key",
    "private_key",
    "signature_key",
];

pub fn is_credential_param(name: &str) -> bool {
    CREDENTIAL_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p))
}

/// Ids remembered per actor and template for enumeration; far above any threshold that makes sense.
const MAX_IDS: usize = 512;

struct IdSeen {
    hash: u64,
    /// Packet time of the first request for it within the window.
    ts: f64,
    /// The id as a number, when it is one (for sequential walks).
    num: Option<u64>,
    /// Answered 403 or 404.
    refused: bool,
}

#[derive(Default)]
struct IdWalk {
    ids: Vec<IdSeen>,
    /// The id count last added to the operation's [`Peers`].
    counted: u64,
    /// The operation (to take `counted` back out of its peers when the walk expires).
    op: u64,
    /// New ids since the walk was last judged.
    unjudged: u64,
}

/// Walks up to this many ids are judged on every new id ...
const BOLA_JUDGE_ALWAYS: u64 = 64;
/// ... longer ones every this many new ids.
const BOLA_JUDGE_EVERY: u64 = 16;

/// Other actors on an operation before what is typical there means something.
const BOLA_MIN_PEERS: u64 = 5;
/// An actor is enumerating when it touches this many times more distinct ids than is typical.
const BOLA_PEER_FACTOR: f64 = 4.0;

/// Operations public by design, by the last literal segment of their template: signing in or up, token
/// exchange, health probes. Credential-less successes there are the point of them.
const PUBLIC_SEGMENTS: &[&str] = &[
    "login",
    "signin",
    "sign-in",
    "logout",
    "signup",
    "sign-up",
    "register",
    "token",
    "oauth",
    "authorize",
    "forgot-password",
    "reset-password",
    "password-reset",
    "health",
    "healthz",
    "healthcheck",
    "livez",
    "readyz",
    "ping",
];

fn public_by_design(template: &str) -> bool {
    template
        .rsplit('/')
        .find(|s| !s.is_empty())
        .is_some_and(|s| PUBLIC_SEGMENTS.iter().any(|p| s.eq_ignore_ascii_case(p)))
}

/// What an actor did so far (for BFLA).
#[derive(Default)]
struct Profile {
    reads: u64,
    writes: u64,
}

/// Who used a privileged operation (for BFLA): a few actor hashes are enough, the rule wants rare ones.
#[derive(Default)]
struct OpActors {
    requests: u64,
    actors: Vec<u64>,
}

/// Actors remembered per privileged operation.
const MAX_OP_ACTORS: usize = 8;
/// A privileged operation is one at most this many actors used...
const BFLA_MAX_OWNERS: usize = 2;
/// ... over at least this many requests, while at least `BFLA_MIN_POPULATION` actors were seen overall.
const BFLA_MIN_OP_REQUESTS: u64 = 5;
const BFLA_MIN_POPULATION: u64 = 10;

fn privileged(tx: &Transaction) -> bool {
    !matches!(tx.method.as_str(), "GET" | "HEAD" | "OPTIONS")
        || tx.path.split('/').any(|s| {
            ["admin", "administrator", "manage", "management", "internal", "superuser"]
                .iter()
                .any(|p| s.eq_ignore_ascii_case(p))
        })
}

#[derive(Default)]
struct OpAuth {
    seen: u64,
    authenticated: u64,
}

/// Share of recent answers to an actor that must be 401/403 for a burst to count: a busy client (a NAT
/// gateway, a service with one expired key among many) piles up failures by volume alone, while guessing
/// credentials fails nearly every time. The share is a moving average over about the last ten answers.
const FAILED_AUTH_MIN_SHARE: f32 = 0.5;
/// Weight of the newest answer in that moving average.
const FAILED_AUTH_SHARE_WEIGHT: f32 = 0.1;

/// One actor's authentication failures.
#[derive(Default)]
struct Failures {
    window: WindowCount,
    /// Moving average of "the answer was 401/403" over the actor's answers since its first failure.
    share: f32,
}

impl Failures {
    fn observe(&mut self, failed: bool) {
        let x = if failed { 1.0 } else { 0.0 };
        self.share += FAILED_AUTH_SHARE_WEIGHT * (x - self.share);
    }
}

pub struct Access {
    failed: RuleId,
    alg_none: RuleId,
    expired: RuleId,
    missing_exp: RuleId,
    weak: RuleId,
    cleartext: RuleId,
    in_url: RuleId,
    unauth: RuleId,
    bola: RuleId,
    /// By address.
    failures: Bounded<u64, Failures>,
    weak_cache: Bounded<u64, bool>,
    /// Services already reported (by hash).
    cleartext_seen: Bounded<u64, ()>,
    /// By operation.
    ops: Bounded<u64, OpAuth>,
    /// By (actor, operation).
    walks: Bounded<(u64, u64), IdWalk>,
    /// By operation.
    peers: Bounded<u64, Peers>,
    bfla: RuleId,
    /// By actor.
    profiles: Bounded<u64, Profile>,
    /// By operation.
    priv_ops: Bounded<u64, OpActors>,
    population: std::sync::atomic::AtomicU64,
    hasher: foldhash::fast::RandomState,
    warmup: u64,
    /// Largest rule window of the family: state idle longer is dropped.
    max_window: f64,
}

impl Access {
    pub fn new(rules: &Rules, s: &Settings) -> Self {
        let id = |n: &str| rules.find(n).unwrap_or(RuleId(u16::MAX));
        let cap = s.max_tracked_keys;
        let failed = id("failed_auth_burst");
        let bola = id("bola_enumeration");
        Access {
            failed,
            alg_none: id("jwt_alg_none"),
            expired: id("jwt_expired_accepted"),
            missing_exp: id("jwt_missing_exp"),
            weak: id("jwt_weak_secret"),
            cleartext: id("cleartext_credentials"),
            in_url: id("credentials_in_url"),
            unauth: id("unauthenticated_access"),
            bola,
            failures: Bounded::new(cap, "[detect] max_tracked_keys"),
            weak_cache: Bounded::new(cap, "[detect] max_tracked_keys"),
            cleartext_seen: Bounded::new(cap, "[detect] max_tracked_keys"),
            ops: Bounded::new(cap, "[detect] max_tracked_keys"),
            walks: Bounded::new(cap, "[detect] max_tracked_keys"),
            peers: Bounded::new(cap, "[detect] max_tracked_keys"),
            bfla: id("bfla"),
            profiles: Bounded::new(cap, "[detect] max_tracked_keys"),
            priv_ops: Bounded::new(cap, "[detect] max_tracked_keys"),
            population: Default::default(),
            hasher: foldhash::fast::RandomState::default(),
            warmup: s.warmup_requests,
            max_window: rules.window(failed).max(rules.window(bola)),
        }
    }

    fn failed_auth(&self, f: &Facts<'_>, em: &mut Emitter<'_>) {
        let Some(status) = f.status else { return };
        if !em.on(self.failed) {
            return;
        }
        let failed = matches!(status, 401 | 403);
        // Keyed by address alone: stuffing rotates the identities it tries.
        let key = f.ip_id;
        if !failed {
            // Only actors that already failed are followed, so a success costs a lookup, not an entry.
            if self.failures.get(&key, |_| ()).is_some() {
                self.failures.update(key, Failures::default, |s| s.observe(false));
            }
            return;
        }
        let window = em.rules.window(self.failed);
        let (n, share) = self
            .failures
            .update(key, Failures::default, |s| {
                s.observe(true);
                (s.window.add(f.ts, window), s.share)
            })
            .unwrap_or((0, 0.0));
        if n as f64 >= em.rules.threshold(self.failed) && share >= FAILED_AUTH_MIN_SHARE {
            em.raise(
                Hit::new(self.failed)
                    .scope(Scope::Address)
                    .events(n)
                    .evidence(format!("{n} answers 401/403 within {window}s")),
            );
        }
    }

    fn jwt(&self, f: &Facts<'_>, em: &mut Emitter<'_>) {
        let Some(j) = &f.jwt else { return };
        let alg = j.header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        let ok = f.success();
        let at = |h: Hit| h.at("request.header", "Authorization");
        if alg.eq_ignore_ascii_case("none") {
            em.raise(
                at(Hit::new(self.alg_none))
                    .raise(ok)
                    .evidence(format!("alg \"{alg}\""))
                    .outcome(super::attacks::outcome(f.status)),
            );
        }
        if ok {
            match j.claims.get("exp").and_then(|e| e.as_f64()) {
                Some(exp) => {
                    let grace = em.rules.threshold(self.expired);
                    if exp + grace < f.ts {
                        em.raise(at(Hit::new(self.expired)).evidence(format!(
                            "exp {} s before the request, answered {}",
                            (f.ts - exp).round(),
                            f.status.unwrap_or(0)
                        )));
                    }
                }
                None => em.raise(at(Hit::new(self.missing_exp)).evidence("no exp claim")),
            }
        }
        if alg == "HS256" && em.on(self.weak) && !j.signature.is_empty() {
            let mut h = self.hasher.build_hasher();
            j.signing_input.hash(&mut h);
            j.signature.hash(&mut h);
            let key = h.finish();
            let weak = match self.weak_cache.get(&key, |w| *w) {
                Some(w) => w,
                None => {
                    let w = weak_secret(&j.signing_input, &j.signature).is_some();
                    self.weak_cache.update(key, || w, |_| ());
                    w
                }
            };
            if weak {
                // The secret itself is not shown: it signs every token of the service.
                em.raise(
                    at(Hit::new(self.weak)).raise(false).evidence("HS256 signature verifies with a dictionary secret"),
                );
            }
        }
    }

    fn cleartext(&self, f: &Facts<'_>, em: &mut Emitter<'_>) {
        let Some(scheme) = f.auth_scheme.as_deref() else { return };
        if !matches!(scheme, "basic" | "bearer") || !em.on(self.cleartext) {
            return;
        }
        // A property of the service (it takes credentials on plain HTTP), reported once per service; the
        // local set spares the engine a hit per request.
        let key = self.hasher.hash_one(&*f.service);
        if self.cleartext_seen.get(&key, |_| ()).is_some() {
            return;
        }
        if self.cleartext_seen.update(key, || (), |_| ()).is_some() {
            em.raise(
                Hit::new(self.cleartext)
                    .scope(Scope::Host)
                    .once(0)
                    .at("request.header", "Authorization")
                    .evidence(format!("{scheme} credentials over plain HTTP")),
            );
        }
    }

    fn in_url(&self, tx: &Transaction, em: &mut Emitter<'_>) {
        if !em.on(self.in_url) {
            return;
        }
        if let Some((k, v)) = tx.query_params.iter().find(|(k, v)| is_credential_param(k) && !v.is_empty()) {
            em.raise(
                Hit::new(self.in_url)
                    .at("request.query", super::truncate_escaped(k.as_bytes(), 64))
                    .evidence(format!("value redacted ({} chars)", v.chars().count())),
            );
        }
    }

    fn unauthenticated(&self, f: &Facts<'_>, em: &mut Emitter<'_>) {
        if f.status.is_none() || !em.on(self.unauth) {
            return;
        }
        let warmup = self.warmup.max(1);
        let prior = self
            .ops
            .update(f.op_id, OpAuth::default, |o| {
                let before = (o.seen, o.authenticated);
                o.seen += 1;
                o.authenticated += u64::from(f.authenticated);
                before
            })
            .unwrap_or((0, 0));
        let (seen, authed) = prior;
        if f.authenticated || !f.success() || seen < warmup || public_by_design(&f.template) {
            return;
        }
        let frac = authed as f64 / seen as f64;
        if frac >= em.rules.threshold(self.unauth) {
            em.raise(Hit::new(self.unauth).outcome("possible_success").evidence(format!(
                "no credentials, answered {}; {authed} of {seen} earlier requests were authenticated",
                f.status.unwrap_or(0)
            )));
        }
    }

    fn bola(&self, tx: &Transaction, f: &Facts<'_>, em: &mut Emitter<'_>) {
        // Only answers that reached the object: 2xx, or 403/404 (not yours, or no such object). A 401
        // never got that far.
        let Some(status) = f.status.filter(|s| (200..300).contains(s) || matches!(s, 403 | 404)) else { return };
        if !em.on(self.bola) {
            return;
        }
        // The object id: the last path segment whose template segment is a parameter.
        let id =
            tx.path.split('/').zip(f.template.split('/')).filter(|(_, t)| t.starts_with('{')).map(|(p, _)| p).last();
        let Some(id) = id.filter(|i| !i.is_empty()) else { return };
        let window = em.rules.window(self.bola);
        let threshold = em.rules.threshold(self.bola).max(2.0);
        let h = self.hasher.hash_one(id);
        let num = id.parse::<u64>().ok();
        let refused = matches!(status, 403 | 404);
        let res = self.walks.update(
            (f.actor_id, f.op_id),
            || IdWalk { op: f.op_id, ..IdWalk::default() },
            |w| {
                w.ids.retain(|x| x.ts + window >= f.ts);
                let new = !w.ids.iter().any(|x| x.hash == h);
                if new {
                    if w.ids.len() >= MAX_IDS {
                        w.ids.remove(0);
                    }
                    w.ids.push(IdSeen { hash: h, ts: f.ts, num, refused });
                    w.unjudged += 1;
                }
                let n = w.ids.len() as u64;
                let before = std::mem::replace(&mut w.counted, n);
                // A repeated id adds nothing to judge. Judging sorts the ids: past `BOLA_JUDGE_ALWAYS` ids a
                // walk is judged again every `BOLA_JUDGE_EVERY` new ids, not on each.
                if !new || (n as f64) < threshold || (n > BOLA_JUDGE_ALWAYS && w.unjudged < BOLA_JUDGE_EVERY) {
                    return (before, n, None);
                }
                w.unjudged = 0;
                let mut nums: Vec<u64> = w.ids.iter().filter_map(|x| x.num).collect();
                nums.sort_unstable();
                let steps =
                    nums.windows(2).filter(|p| p.get(1).zip(p.first()).is_some_and(|(b, a)| b - a == 1)).count();
                let sequential = nums.len() >= 3 && steps * 10 >= (nums.len() - 1) * 8;
                let refusals = w.ids.iter().filter(|x| x.refused).count() as u64;
                let span = w.ids.first().map_or(0.0, |x| f.ts - x.ts);
                (before, n, Some((sequential, refusals, nums.first().copied(), nums.last().copied(), span)))
            },
        );
        let Some((before, n, verdict)) = res else { return };
        // The operation's population: actors with ids, and the sums of their counts and squared counts.
        let peers = self
            .peers
            .update(f.op_id, Peers::default, |p| {
                p.adjust(before, n);
                *p
            })
            .unwrap_or_default();
        let Some((sequential, refusals, lo, hi, span)) = verdict else { return };
        let mut ev = format!("{n} distinct ids in {span:.0}s on {}", f.template);
        let conf = if sequential {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                ev.push_str(&format!(", sequential {lo}..{hi}"));
            }
            0.9
        } else if refusals * 2 >= n {
            ev.push_str(&format!(", {refusals} answered 403/404"));
            0.8
        } else {
            // Random ids: many actors legitimately read many objects (a NAT address, a back-office
            // service). Enumeration is an actor reading far more distinct objects than its peers do.
            match peers.typical_other(n, BOLA_MIN_PEERS) {
                Some(typical) if (n as f64) < BOLA_PEER_FACTOR * typical => return,
                Some(typical) => ev.push_str(&format!(", peers about {typical:.0}")),
                // Too few peers to compare with: the threshold alone decides.
                None => {}
            }
            em.rules.get(self.bola).map_or(0.6, |m| m.confidence)
        };
        em.raise(Hit::new(self.bola).at("request.path", "").events(n).confidence(conf).evidence(ev));
    }
}

impl Access {
    fn bfla(&self, tx: &Transaction, f: &Facts<'_>, em: &mut Emitter<'_>) {
        use std::sync::atomic::Ordering;
        if f.status.is_none() || !em.on(self.bfla) {
            return;
        }
        let is_priv = privileged(tx);
        let before = self
            .profiles
            .update(
                f.actor_id,
                || {
                    self.population.fetch_add(1, Ordering::Relaxed);
                    Profile::default()
                },
                |p| {
                    let b = (p.reads, p.writes);
                    if is_priv {
                        p.writes += 1;
                    } else {
                        p.reads += 1;
                    }
                    b
                },
            )
            .unwrap_or((0, 1));
        if !is_priv {
            return;
        }
        let me = f.actor_id;
        let rare = self
            .priv_ops
            .update(f.op_id, OpActors::default, |o| {
                let rare =
                    o.requests >= BFLA_MIN_OP_REQUESTS && o.actors.len() <= BFLA_MAX_OWNERS && !o.actors.contains(&me);
                o.requests += 1;
                if !o.actors.contains(&me) && o.actors.len() < MAX_OP_ACTORS {
                    o.actors.push(me);
                }
                rare
            })
            .unwrap_or(false);
        let (reads, writes) = before;
        if rare
            && f.success()
            && writes == 0
            && reads as f64 >= em.rules.threshold(self.bfla)
            && self.population.load(Ordering::Relaxed) >= BFLA_MIN_POPULATION
        {
            em.raise(Hit::new(self.bfla).outcome("possible_success").evidence(format!(
                "{} answered {} to an actor that made {reads} read requests and no write; the operation was used by at most {BFLA_MAX_OWNERS} other actors",
                f.endpoint(),
                f.status.unwrap_or(0)
            )));
        }
    }
}

/// The dictionary secret that verifies `signature` over `input` with HMAC-SHA256.
pub fn weak_secret(input: &str, signature: &[u8]) -> Option<&'static str> {
    use hmac::Mac as _;
    WEAK_SECRETS.iter().copied().find(|s| {
        let Ok(mut m) = hmac::Hmac::<sha2::Sha256>::new_from_slice(s.as_bytes()) else { return false };
        m.update(input.as_bytes());
        m.verify_slice(signature).is_ok()
    })
}

impl Detector for Access {
    fn name(&self) -> &'static str {
        "access"
    }

    fn on_transaction(&self, tx: &Transaction, _ctx: &TxContext, em: &mut Emitter<'_>) {
        let f = em.facts;
        self.failed_auth(f, em);
        self.jwt(f, em);
        self.cleartext(f, em);
        self.in_url(tx, em);
        self.unauthenticated(f, em);
        self.bola(tx, f, em);
        self.bfla(tx, f, em);
    }

    fn on_tick(&self, now: f64) {
        let w = self.max_window;
        self.failures.retain(|_, c| c.window.last().is_some_and(|l| l as f64 + w >= now));
        let mut gone = Vec::new();
        self.walks.retain(|_, iw| {
            let keep = iw.ids.last().is_some_and(|x| x.ts + w >= now);
            if !keep {
                gone.push((iw.op, iw.counted));
            }
            keep
        });
        for (op, counted) in gone {
            self.peers.get_mut(&op, |p| p.adjust(counted, 0));
        }
        self.peers.retain(|_, p| p.actors > 0);
    }

    fn cap_hits(&self) -> u64 {
        self.failures.cap_hits()
            + self.weak_cache.cap_hits()
            + self.cleartext_seen.cap_hits()
            + self.ops.cap_hits()
            + self.walks.cap_hits()
            + self.peers.cap_hits()
            + self.profiles.cap_hits()
            + self.priv_ops.cap_hits()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Settings, TxContext};

    fn b64(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn hs256(header: &str, claims: &str, secret: &str) -> String {
        use hmac::Mac as _;
        let input = format!("{}.{}", b64(header), b64(claims));
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(input.as_bytes());
        let sig = m.finalize().into_bytes();
        use base64::Engine as _;
        format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig))
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    #[test]
    fn failed_auth_burst_fires_at_the_threshold() {
        let e = engine(Settings::default());
        let mut got = Vec::new();
        for i in 0..12 {
            got.push(ids(&fired(&e, &tx("POST", "/login", &[], "", 401, 100.0 + f64::from(i)))));
        }
        assert!(!got[8].contains(&"failed_auth_burst".to_owned()));
        assert!(got[9].contains(&"failed_auth_burst".to_owned()));
        // Spread out over time: no burst.
        let e = engine(Settings::default());
        for i in 0..30 {
            let a = ids(&fired(&e, &tx("POST", "/login", &[], "", 401, f64::from(i) * 61.0)));
            assert!(!a.contains(&"failed_auth_burst".to_owned()));
        }
    }

    #[test]
    fn jwt_alg_none_expired_and_missing_exp() {
        let e = engine(Settings::default());
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"1","exp":9999999999}"#));
        let a = ids(&fired(&e, &tx("GET", "/me", &[("Authorization", &bearer(&none))], "", 200, 1000.0)));
        assert!(a.contains(&"jwt_alg_none".to_owned()), "{a:?}");
        let old = hs256(r#"{"alg":"HS256"}"#, r#"{"sub":"1","exp":500}"#, "a-long-random-production-secret");
        let a = ids(&fired(&e, &tx("GET", "/me", &[("Authorization", &bearer(&old))], "", 200, 1000.0)));
        assert!(a.contains(&"jwt_expired_accepted".to_owned()), "{a:?}");
        let a = ids(&fired(&e, &tx("GET", "/me", &[("Authorization", &bearer(&old))], "", 401, 1000.0)));
        assert!(!a.contains(&"jwt_expired_accepted".to_owned()), "{a:?}");
        let noexp = hs256(r#"{"alg":"HS256"}"#, r#"{"sub":"1"}"#, "a-long-random-production-secret");
        let a = ids(&fired(&e, &tx("GET", "/me", &[("Authorization", &bearer(&noexp))], "", 200, 1000.0)));
        assert!(a.contains(&"jwt_missing_exp".to_owned()), "{a:?}");
        assert!(!a.contains(&"jwt_weak_secret".to_owned()), "{a:?}");
        let good = hs256(r#"{"alg":"HS256"}"#, r#"{"sub":"1","exp":2000}"#, "a-long-random-production-secret");
        let a = ids(&fired(&e, &tx("GET", "/me", &[("Authorization", &bearer(&good))], "", 200, 1000.0)));
        assert!(!a.iter().any(|r| r.starts_with("jwt_")), "{a:?}");
    }

    #[test]
    fn jwt_weak_secret_found_and_not_shown() {
        let e = engine(Settings::default());
        let t = hs256(r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"sub":"7","exp":2000}"#, "secret");
        let a = fired(&e, &tx("GET", "/me", &[("Authorization", &bearer(&t))], "", 200, 1000.0));
        let w = a.iter().find(|a| a["rule_id"] == "jwt_weak_secret").expect("weak secret");
        assert!(!w.to_string().contains("\"secret\""));
        assert!(!w.to_string().contains(&t));
        assert_eq!(super::weak_secret("a.b", b"x"), None);
    }

    #[test]
    fn cleartext_credentials_once_per_actor_and_host() {
        let e = engine(Settings::default());
        let h = [("Authorization", "Basic dXNlcjpwdw==")];
        let a = ids(&fired(&e, &tx("GET", "/a", &h, "", 200, 1.0)));
        assert!(a.contains(&"cleartext_credentials".to_owned()));
        let a = ids(&fired(&e, &tx("GET", "/b", &h, "", 200, 2.0)));
        assert!(!a.contains(&"cleartext_credentials".to_owned()));
        let a = fired(&e, &tx("GET", "/b", &h, "", 200, 2.0));
        assert!(!a.iter().any(|a| a.to_string().contains("dXNlcjpwdw")));
    }

    #[test]
    fn credentials_in_url_redacted() {
        let e = engine(Settings::default());
        let a = fired(&e, &tx("GET", "/cb?access_token=abcdef123456&x=1", &[], "", 200, 1.0));
        let c = a.iter().find(|a| a["rule_id"] == "credentials_in_url").unwrap();
        assert_eq!(c["field"], "access_token");
        assert!(!c.to_string().contains("abcdef123456"));
        assert!(
            !ids(&fired(&e, &tx("GET", "/cb?page=2", &[], "", 200, 1.0))).contains(&"credentials_in_url".to_owned())
        );
    }

    #[test]
    fn unauthenticated_success_after_warmup() {
        let e = engine(Settings::default());
        let auth = [("Authorization", "Bearer opaque-token")];
        for i in 0..25 {
            fired(&e, &tx("GET", &format!("/v1/accounts/{i}"), &auth, "", 200, f64::from(i)));
        }
        let a = ids(&fired(&e, &tx("GET", "/v1/accounts/99", &[], "", 200, 30.0)));
        assert!(a.contains(&"unauthenticated_access".to_owned()), "{a:?}");
        let a = ids(&fired(&e, &tx("GET", "/v1/accounts/98", &[], "", 401, 31.0)));
        assert!(!a.contains(&"unauthenticated_access".to_owned()));
        // A public operation never alerts.
        for i in 0..25 {
            fired(&e, &tx("GET", "/v1/products", &[], "", 200, f64::from(i)));
        }
        assert!(
            !ids(&fired(&e, &tx("GET", "/v1/products", &[], "", 200, 40.0)))
                .contains(&"unauthenticated_access".to_owned())
        );
    }

    #[test]
    fn operations_public_by_design_are_not_unauthenticated_access() {
        let e = engine(Settings::default());
        let auth = [("Authorization", "Bearer opaque-token")];
        for path in ["/api/v1/auth/login", "/health", "/oauth/token"] {
            for i in 0..25 {
                fired(&e, &tx("POST", path, &auth, "", 200, f64::from(i)));
            }
            let a = ids(&fired(&e, &tx("POST", path, &[], "", 200, 30.0)));
            assert!(!a.contains(&"unauthenticated_access".to_owned()), "{path}: {a:?}");
        }
        assert!(super::public_by_design("/v1/auth/login/"));
        assert!(!super::public_by_design("/v1/logins/{id}/history"));
    }

    #[test]
    fn cleartext_credentials_once_per_service() {
        let e = engine(Settings::default());
        let n = (0..20)
            .filter(|i| {
                let auth = format!("Bearer token-{i}");
                has(
                    &fired(&e, &tx("GET", &format!("/v1/p{i}"), &[("Authorization", &auth)], "", 200, 1.0)),
                    "cleartext_credentials",
                )
            })
            .count();
        assert_eq!(n, 1);
    }

    /// A deterministic pseudo-random sequence (xorshift), for traffic mixes.
    fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed.max(1);
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        }
    }

    /// Many clients behind one address (a NAT gateway, a load balancer, a load generator), each with
    /// its own token, reading random objects: no enumeration. One of them reading far more objects
    /// than the others is.
    #[test]
    fn bola_is_judged_against_the_peers_of_the_template() {
        let e = engine(Settings::default());
        let mut r = rng(7);
        let mut bola = 0;
        for i in 0..64 * 40u32 {
            let token = format!("Bearer client-{}", r(64));
            let id = 1 + r(2100);
            let status = if id > 2000 { 404 } else { 200 };
            let t = tx(
                "GET",
                &format!("/api/v1/users/{id}"),
                &[("Authorization", &token)],
                "",
                status,
                f64::from(i) * 0.01,
            );
            bola += usize::from(has(&fired(&e, &t), "bola_enumeration"));
        }
        assert_eq!(bola, 0, "clients of one address with their own tokens, about 40 random ids each");
        // An actor with 200 random ids: five times what is typical.
        let mut last = Vec::new();
        for i in 0..200u32 {
            let id = 1 + r(2000);
            let t = tx(
                "GET",
                &format!("/api/v1/users/{id}"),
                &[("Authorization", "Bearer walker")],
                "",
                200,
                30.0 + f64::from(i) * 0.01,
            );
            let a = fired(&e, &t);
            if has(&a, "bola_enumeration") {
                last = a;
            }
        }
        let b = last.iter().find(|a| a["rule_id"] == "bola_enumeration").expect("outlier");
        assert!(b["evidence"].as_str().unwrap().contains("peers about"), "{b}");
        // Refused ids (403/404 on most of them) are enumeration whatever the peers do.
        let mut hit = false;
        for i in 0..25u32 {
            let id = 5000 + r(100_000);
            let t = tx(
                "GET",
                &format!("/api/v1/users/{id}"),
                &[("Authorization", "Bearer prober")],
                "",
                404,
                40.0 + f64::from(i) * 0.01,
            );
            hit |= has(&fired(&e, &t), "bola_enumeration");
        }
        assert!(hit);
        // 401s never reached the objects.
        for i in 0..50u32 {
            let t = tx("GET", &format!("/api/v1/users/{}", 3000 + i * 7), &[], "", 401, 50.0);
            assert!(!has(&fired(&e, &t), "bola_enumeration"));
        }
    }

    fn has(a: &[serde_json::Value], id: &str) -> bool {
        ids(a).iter().any(|r| r == id)
    }

    #[test]
    fn failures_among_many_successes_are_no_burst() {
        let e = engine(Settings::default());
        // A busy client: one answer in twelve is a 401 (a missing token), two hundred 401s in all.
        let mut burst = false;
        for i in 0..2400u32 {
            let status = if i % 12 == 0 { 401 } else { 200 };
            let a = ids(&fired(&e, &tx("GET", "/v1/items", &[], "", status, f64::from(i) * 0.01)));
            burst |= a.contains(&"failed_auth_burst".to_owned());
        }
        assert!(!burst);
        // The same client then guessing: consecutive failures raise.
        let mut got = Vec::new();
        for i in 0..12u32 {
            got.push(ids(&fired(&e, &tx("POST", "/v1/login", &[], "", 401, 30.0 + f64::from(i) * 0.1))));
        }
        assert!(got.last().unwrap().contains(&"failed_auth_burst".to_owned()), "{got:?}");
    }

    /// A transaction from `ip`.
    fn from(ip: &str, method: &str, uri: &str, status: u16, ts: f64) -> crate::http::Transaction {
        let mut t = tx(method, uri, &[], "", status, ts);
        let mut fl = (**t.flow.as_ref().unwrap()).clone();
        fl.client = format!("{ip}:40000").parse().unwrap();
        t.flow = Some(std::sync::Arc::new(fl));
        t
    }

    #[test]
    fn bfla_read_only_actor_calls_an_admin_operation() {
        let e = engine(Settings::default());
        // A population of readers, and one admin who deletes users.
        for i in 0..12 {
            fired(&e, &from(&format!("10.1.0.{i}"), "GET", "/v1/items", 200, f64::from(i)));
        }
        for i in 0..6 {
            fired(&e, &from("10.9.0.1", "DELETE", &format!("/v1/admin/users/{i}"), 204, 20.0 + f64::from(i)));
        }
        // A reader with a long read-only history.
        for i in 0..25 {
            fired(&e, &from("10.1.0.1", "GET", "/v1/items", 200, 30.0 + f64::from(i)));
        }
        let a = ids(&fired(&e, &from("10.1.0.1", "DELETE", "/v1/admin/users/77", 204, 60.0)));
        assert!(a.contains(&"bfla".to_owned()), "{a:?}");
        // Refused: no alert. A write everybody uses: no alert.
        let a = ids(&fired(&e, &from("10.1.0.2", "DELETE", "/v1/admin/users/78", 403, 61.0)));
        assert!(!a.contains(&"bfla".to_owned()));
        for i in 0..12 {
            fired(&e, &from(&format!("10.1.0.{i}"), "POST", "/v1/orders", 201, 70.0 + f64::from(i)));
        }
        for i in 0..25 {
            fired(&e, &from("10.1.0.50", "GET", "/v1/items", 200, 90.0 + f64::from(i)));
        }
        assert!(!ids(&fired(&e, &from("10.1.0.50", "POST", "/v1/orders", 201, 120.0))).contains(&"bfla".to_owned()));
    }

    #[test]
    fn bola_enumeration_sequential_ids() {
        let e = engine(Settings::default());
        let auth = [("Authorization", "Bearer opaque")];
        let mut last = Vec::new();
        for id in 1001..1031 {
            last = fired(&e, &tx("GET", &format!("/api/v1/users/{id}"), &auth, "", 200, 100.0 + f64::from(id - 1000)));
            if id < 1020 {
                assert!(!ids(&last).contains(&"bola_enumeration".to_owned()));
            }
        }
        let b = last.iter().find(|a| a["rule_id"] == "bola_enumeration").unwrap();
        assert_eq!(b["confidence"], 0.9);
        assert!(b["evidence"].as_str().unwrap().contains("sequential 1001..1030"), "{b}");
        assert_eq!(b["endpoint"], "/api/v1/users/{id}");
        // The same id over and over is not enumeration.
        let e = engine(Settings::default());
        for i in 0..50 {
            let a = ids(&fired(&e, &tx("GET", "/api/v1/users/7", &auth, "", 200, f64::from(i))));
            assert!(!a.contains(&"bola_enumeration".to_owned()));
        }
        // The inventory's template wins over the local one.
        let ctx = TxContext { endpoint: Some("/api/v1/users/{userId}".into()), ..Default::default() };
        let a = fired_ctx(&e, &tx("GET", "/api/v1/users/8", &auth, "", 200, 60.0), &ctx);
        let _ = a;
    }
}
