//! The live path for real: a veth pair into a network namespace this test creates, a real HTTP server
//! (python3 http.server) in the namespace, curl on the host side, and `mirador run` capturing on the veth.
//! SIGTERM must flush every transaction. Skips with a message when not root or when `ip` is missing.

#![cfg(feature = "live-pcap")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Cleanup {
    ns: String,
    veth: String,
    children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["link", "del", &self.veth]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn live_capture_on_veth_flushes_on_sigterm() {
    if !is_root() || !sh(&["ip", "-V"]) {
        assert!(std::env::var_os("CI").is_none(), "CI must run the live tests as root, with iproute2");
        eprintln!("skipping: needs root and iproute2 to create a network namespace and a veth pair");
        return;
    }
    let id = std::process::id() % 100_000;
    let ns = format!("mirlive{id}");
    let veth = format!("mlv{id}a");
    let peer = format!("mlv{id}b");
    let mut guard = Cleanup { ns: ns.clone(), veth: veth.clone(), children: Vec::new() };
    // RFC 2544 benchmark addresses: never routed anywhere.
    for cmd in [
        vec!["ip", "netns", "add", &ns],
        vec!["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer],
        vec!["ip", "link", "set", &peer, "netns", &ns],
        vec!["ip", "addr", "add", "198.18.77.1/24", "dev", &veth],
        vec!["ip", "link", "set", &veth, "up"],
        vec!["ip", "netns", "exec", &ns, "ip", "addr", "add", "198.18.77.2/24", "dev", &peer],
        vec!["ip", "netns", "exec", &ns, "ip", "link", "set", &peer, "up"],
        vec!["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"],
    ] {
        assert!(sh(&cmd), "setup failed: {cmd:?}");
    }
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("hello.json"), "{\"hello\":\"world\"}").unwrap();
    let server = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-m", "http.server", "8080", "--bind", "198.18.77.2"])
        .current_dir(www.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    guard.children.push(server);

    let out = tempfile::tempdir().unwrap();
    // Persistent state in a directory of the test's own, not the default /var/lib/mirador.
    let state = tempfile::tempdir().unwrap();
    let cfg = state.path().join("mirador.toml");
    std::fs::write(&cfg, format!("[state]\ndir = {:?}\n", state.path().join("state"))).unwrap();
    let sensor = Command::new(assert_cmd::cargo::cargo_bin("mirador"))
        .args(["run", "-i", &veth, "--metrics-listen", "127.0.0.1:19477", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(out.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sensor.id();
    guard.children.push(sensor);
    // Let libpcap open the interface before the traffic we count starts.
    std::thread::sleep(Duration::from_millis(500));

    // Wait for the server, then send the requests (each curl is one connection).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sh(&["curl", "-sf", "-o", "/dev/null", "--max-time", "1", "http://198.18.77.2:8080/hello.json"]) {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in 0..5 {
        let url = format!("http://198.18.77.2:8080/hello.json?n={i}");
        assert!(sh(&["curl", "-sf", "-o", "/dev/null", "--max-time", "5", &url]));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // The running sensor's own metrics: it published what it captured.
    let metrics = Command::new("curl").args(["-sf", "http://127.0.0.1:19477/metrics"]).output().unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let packets: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mirador_packets_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(packets > 0, "{metrics}");
    assert!(sh(&["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:19477/healthz"]));
    assert!(sh(&["kill", "-TERM", &pid.to_string()]));
    let sensor = guard.children.pop().unwrap();
    let o = sensor.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    // A live run's throughput is over the traffic's packet-time span, not the process's lifetime.
    assert!(stderr.contains("of traffic (packet time)"), "{stderr}");

    let txs = common::read_jsonl(&out.path().join("transactions.jsonl"));
    let mine: Vec<_> = txs.iter().filter(|t| t["uri"].as_str().is_some_and(|u| u.contains("?n="))).collect();
    assert_eq!(mine.len(), 5, "{txs:#?}\n{stderr}");
    for t in &mine {
        assert_eq!(t["method"], "GET");
        assert_eq!(t["status"], 200);
        assert_eq!(t["response_body_len"], 17);
        assert_eq!(t["dst_port"], 8080);
        assert_eq!(t["src_ip"], "198.18.77.1");
    }
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("stats.json")).unwrap()).unwrap();
    assert!(stats["capture"]["packets"].as_u64().unwrap() > 0);
    assert_eq!(stats["capture"]["queue_full_drops"], 0);
    // What a restart reloads was written at shutdown: the inventory store and the detections' baselines.
    assert!(state.path().join("state/inventory.sqlite").is_file(), "{stderr}");
    let baselines = std::fs::read_to_string(state.path().join("state/detect-baselines.json"))
        .unwrap_or_else(|e| panic!("detect-baselines.json: {e}\n{stderr}"));
    let baselines: serde_json::Value = serde_json::from_str(&baselines).unwrap();
    assert!(baselines.is_object(), "{baselines}");
}

/// `mirador run` on an interface that carries nothing: SIGTERM and `--duration-secs` must end
/// it within about a second (libpcap's poll waits for the first packet with no timeout; before, the sensor
/// ran on until a packet arrived), with a clean exit and its files written.
#[test]
fn a_quiet_link_stops_at_once() {
    if !is_root() || !sh(&["ip", "-V"]) {
        assert!(std::env::var_os("CI").is_none(), "CI must run the live tests as root, with iproute2");
        eprintln!("skipping: needs root and iproute2 to create a dummy interface");
        return;
    }
    // A veth pair up at both ends, with no IPv6 address generation (which would send router solicitations
    // and duplicate-address probes): a link that carries nothing.
    let id = std::process::id() % 100_000;
    let (dev, peer) = (format!("mrq{id}a"), format!("mrq{id}b"));
    struct Link(String);
    impl Drop for Link {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    assert!(sh(&["ip", "link", "add", &dev, "type", "veth", "peer", "name", &peer]), "cannot create a veth pair");
    let _link = Link(dev.clone());
    for d in [&dev, &peer] {
        assert!(sh(&["ip", "link", "set", d, "addrgenmode", "none"]));
        assert!(sh(&["ip", "link", "set", d, "up"]));
    }
    let state = tempfile::tempdir().unwrap();
    let cfg = state.path().join("mirador.toml");
    std::fs::write(&cfg, format!("[state]\ndir = {:?}\n", state.path().join("state"))).unwrap();
    let start = |extra: &[&str], port: &str, out: &std::path::Path| {
        Command::new(assert_cmd::cargo::cargo_bin("mirador"))
            .args(["run", "-i", &dev, "--metrics-listen", port, "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait = |mut child: Child, limit: Duration| {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if child.try_wait().unwrap().is_some() {
                let o = child.wait_with_output().unwrap();
                return (t0.elapsed(), o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        panic!("still running {limit:?} later:\n{}", String::from_utf8_lossy(&o.stderr));
    };

    let out = tempfile::tempdir().unwrap();
    let sensor = start(&[], "127.0.0.1:19478", out.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sh(&["kill", "-TERM", &sensor.id().to_string()]));
    let (took, code, stderr) = wait(sensor, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_millis(2500), "SIGTERM on a quiet link took {took:?}:\n{stderr}");
    assert!(out.path().join("stats.json").is_file(), "{stderr}");

    let out = tempfile::tempdir().unwrap();
    let sensor = start(&["--duration-secs", "1"], "127.0.0.1:19479", out.path());
    let (took, code, stderr) = wait(sensor, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_millis(3500), "--duration-secs 1 on a quiet link took {took:?}:\n{stderr}");
    assert!(out.path().join("stats.json").is_file(), "{stderr}");
}
