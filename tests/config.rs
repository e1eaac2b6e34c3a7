//! The configuration file as an operator meets it: the shipped example loads (what `mirador check-config`
//! does), documents every key, and every mistake is reported with the file, line and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mirador::config::{Config, ConfigError, RawConfig};
use mirador::reassembly::OverlapPolicy;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/mirador.toml")
}

fn as_toml(raw: &RawConfig) -> toml::Value {
    toml::Value::try_from(raw).unwrap()
}

/// Writes `text` to `DIR/mirador.toml` and loads it.
fn load_text(text: &str) -> (tempfile::TempDir, PathBuf, Result<Config, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirador.toml");
    std::fs::write(&path, text).unwrap();
    let res = Config::load(&path);
    (dir, path, res)
}

#[test]
fn check_config_accepts_the_example() {
    let cfg = Config::load(&example_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.capture.interfaces, ["eth1"]);
}

#[test]
fn example_is_the_defaults_apart_from_the_interface() {
    let cfg = Config::load(&example_path()).unwrap();
    let mut expected = RawConfig::default();
    // The one value the example sets on purpose: a service needs an interface to capture on.
    expected.capture.interfaces = vec!["eth1".to_owned()];
    assert_eq!(as_toml(&cfg.to_raw()), as_toml(&expected));
}

/// Every key the defaults have, as `table.key`.
fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            if v.is_table() {
                keys(v, &path, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[test]
fn example_sets_every_key_and_comments_each() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let example: toml::Value = toml::from_str(&text).unwrap();
    let mut all = Vec::new();
    keys(&as_toml(&RawConfig::default()), "", &mut all);
    assert!(all.len() > 50, "{all:?}");
    for key in &all {
        let mut v = &example;
        for part in key.split('.') {
            v = v.get(part).unwrap_or_else(|| panic!("systemd/mirador.toml does not set `{key}`"));
        }
    }
    // Optional keys without a default value appear commented out.
    assert!(text.contains("\n# bpf_filter = "), "systemd/mirador.toml does not show bpf_filter");
    // Each key line follows a comment (its meaning and default) or another key of the same comment block.
    let mut prev = "";
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if !l.is_empty() && !l.starts_with(['#', '[']) {
            assert!(prev.starts_with('#') || prev.contains(" = "), "line {}: `{l}` has no comment above it", n + 1);
        }
        prev = l;
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let (_d, path, res) = load_text("[capture]\ninterfaces = [\"eth0\"]\nsnaplen = 1500\nbufer = 4\n");
    let msg = res.unwrap_err().to_string();
    let want = format!("{}: line 4, column 1: unknown field `bufer`, expected one of", path.display());
    assert!(msg.starts_with(&want), "{msg}");
}

#[test]
fn unknown_section_names_it() {
    let (_d, path, res) = load_text("[metrics]\nenabled = false\n\n[metric]\nlisten = \"x\"\n");
    let e = res.unwrap_err();
    assert_eq!(e.line(), Some(4), "{e}");
    assert!(e.to_string().starts_with(&format!("{}: line 4, column 2: unknown field `metric`", path.display())));
}

#[test]
fn wrong_type_names_file_line_and_key() {
    let (_d, path, res) = load_text("[flow]\nmax_flows = \"many\"\n");
    let msg = res.unwrap_err().to_string();
    let want = format!("{}: line 2, column 13: [flow] max_flows: invalid type: string \"many\"", path.display());
    assert!(msg.starts_with(&want), "{msg}");
    let (_d, _, res) = load_text("[metrics]\nenabled = \"yes\"\n");
    assert!(
        res.unwrap_err().to_string().contains("[metrics] enabled: invalid type: string \"yes\", expected a boolean")
    );
}

#[test]
fn validation_error_names_file_line_key_and_value() {
    let (_d, path, res) = load_text("[capture]\ninterfaces = [\"eth0\"]\nsnaplen = 10\n");
    let e = res.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: line 3, column 1: [capture] snaplen = 10: must be between 64 and 262144", path.display())
    );
    assert_eq!(e.key(), Some("[capture] snaplen"));
    let (_d, _, res) = load_text("[decode]\nmax_tunnel_depth = 9\n");
    assert!(
        res.unwrap_err()
            .to_string()
            .contains("line 2, column 1: [decode] max_tunnel_depth = 9: must be between 0 and 4")
    );
    let (_d, _, res) = load_text("[metrics]\nlisten = \"127.0.0.1\"\n");
    assert!(res.unwrap_err().to_string().contains("[metrics] listen = \"127.0.0.1\": not an address:port"));
}

#[test]
fn durations_are_humantime_strings() {
    let (_d, _, res) = load_text(
        "[flow]\ntcp_idle_timeout = \"30s\"\nudp_idle_timeout = \"5m\"\nother_idle_timeout = \"1h\"\n\
         [decode]\nexpire_interval = \"250ms\"\n",
    );
    let s = res.unwrap().sensor_config();
    assert_eq!(
        (s.flow.tcp_idle_timeout, s.flow.udp_idle_timeout, s.flow.other_idle_timeout, s.decode.expire_interval),
        (Duration::from_secs(30), Duration::from_secs(300), Duration::from_secs(3600), Duration::from_millis(250))
    );
}

#[test]
fn bad_duration_is_an_error() {
    for (value, what) in
        [("\"soon\"", "invalid duration \"soon\""), ("\"30\"", "invalid duration"), ("30", "invalid type")]
    {
        let (_d, _, res) = load_text(&format!("[decode.fragments]\ntimeout = {value}\n"));
        let msg = res.unwrap_err().to_string();
        assert!(msg.contains("line 2, column 11: [decode.fragments] timeout: "), "{value}: {msg}");
        assert!(msg.contains(what), "{value}: {msg}");
    }
}

#[test]
fn sections_reach_the_pipeline() {
    let (_d, _, res) = load_text(
        "[capture]\ninterfaces = [\"tap0\", \"tap1\"]\nbpf_filter = \"tcp\"\nsnaplen = 9000\n\
         [reassembly]\npolicy = \"last_wins\"\n[http]\nmax_headers = 10\n[http.decompress]\nmax_layers = 1\n\
         [pipeline]\nworkers = 2\nshards = 3\n[metrics]\nlisten = \"[::1]:9100\"\n[output]\ndir = \"/srv/out\"\n",
    );
    let cfg = res.unwrap();
    let s = cfg.sensor_config();
    assert_eq!(s.reassembly.policy, OverlapPolicy::LastWins);
    assert_eq!((s.http.max_headers, s.http.decompress.max_layers), (10, 1));
    assert_eq!((cfg.pipeline.resolved_workers(), cfg.pipeline.resolved_shards()), (2, 3));
    assert_eq!(cfg.metrics.listen.to_string(), "[::1]:9100");
    assert_eq!(cfg.output.dir, Path::new("/srv/out"));
    #[cfg(feature = "live-pcap")]
    {
        let live = cfg.live_config();
        assert_eq!(live.interfaces, ["tap0", "tap1"]);
        assert_eq!((live.filter.as_deref(), live.snaplen), (Some("tcp"), 9000));
    }
}

#[test]
fn unreadable_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let msg = Config::load(&path).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}: cannot read: ", path.display())), "{msg}");
    // A directory is unreadable as a file too.
    let msg = Config::load(dir.path()).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}: cannot read: ", dir.path().display())), "{msg}");
}

#[test]
fn hostile_text_never_panics() {
    for text in [
        "\u{0}",
        "[[[",
        "a.b.c.d.e = 1",
        "[capture]\n[capture]\n",
        "\u{feff}[log]",
        "x = \"\\u{110000}\"",
        "[decode]\nvxlan_ports = [70000]",
    ] {
        let _ = Config::from_toml_str(text, "t");
    }
}
