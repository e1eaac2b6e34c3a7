//! The systemd unit: the directives the deployment relies on are there, and `systemd-analyze verify` accepts
//! it without a warning (an unknown or misspelt directive is only a warning to systemd, and silently ignored
//! at run time: a hardening line that does nothing).

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALLED_EXEC: &str = "ExecStart=/usr/bin/mirador run --config /etc/mirador/mirador.toml";

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/mirador.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Directive lines (`Key=value`), comments and section headers left out.
fn directives(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '['])).collect()
}

#[test]
fn unit_has_the_directives_the_deployment_relies_on() {
    let text = unit_text();
    let lines = directives(&text);
    for want in [
        "Type=notify",
        "WatchdogSec=30",
        INSTALLED_EXEC,
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "User=mirador",
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=mirador",
        "ConfigurationDirectory=mirador",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK",
        "SystemCallArchitectures=native",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&want), "systemd/mirador.service lacks `{want}`");
    }
    // Packet capture needs the host's interfaces and raw sockets.
    for banned in ["PrivateNetwork=yes", "PrivateUsers=yes", "ProcSubset=pid"] {
        assert!(!lines.contains(&banned), "systemd/mirador.service: `{banned}` breaks packet capture");
    }
}

fn systemd_analyze() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join("systemd-analyze"))
        .find(|p| p.is_file());
    if found.is_none() {
        let msg = "systemd-analyze not found (Debian: apt-get install -y --no-install-recommends systemd)";
        assert!(std::env::var_os("CI").is_none(), "{msg}; required under CI");
        eprintln!("skipping: {msg}");
    }
    found
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(analyze) = systemd_analyze() else { return };
    // `verify` checks that ExecStart's binary exists: point it at the one cargo just built.
    let text = unit_text();
    assert!(text.contains(INSTALLED_EXEC), "ExecStart changed: update this test");
    let exec = format!("ExecStart={} run --config /etc/mirador/mirador.toml", env!("CARGO_BIN_EXE_mirador"));
    let dir = tempfile::tempdir().unwrap();
    // The file name is the unit name: it must stay `mirador.service`.
    let unit = dir.path().join("mirador.service");
    std::fs::write(&unit, text.replace(INSTALLED_EXEC, &exec)).unwrap();

    let out = Command::new(&analyze).arg("verify").arg(&unit).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed ({}):\n{stderr}", out.status);
    // Warnings about our unit name the unit or its file; other lines (units of the host) are not ours.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("mirador") || l.contains("Unknown key") || l.contains("Unknown section"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify warns about the unit:\n{}", ours.join("\n"));
}

#[test]
fn verify_would_catch_a_misspelt_directive() {
    // Guards the check above: a typo must show up in stderr even though the exit status stays 0.
    let Some(analyze) = systemd_analyze() else { return };
    let exec = format!("ExecStart={} run", env!("CARGO_BIN_EXE_mirador"));
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("mirador.service");
    std::fs::write(&unit, format!("[Service]\nType=notify\n{exec}\nProtectSytem=strict\n")).unwrap();
    let out = Command::new(&analyze).arg("verify").arg(&unit).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unknown key") && stderr.contains("ProtectSytem"), "{stderr}");
}
