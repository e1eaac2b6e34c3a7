//! `mirador replay` on captures: flows, tunnels, reassembly outcomes, errors and exit codes.

mod common;

use common::*;
use serde_json::{Value, json};

fn tcp_flows(run: &Run) -> Vec<Value> {
    run.jsonl("flows.jsonl").into_iter().filter(|f| f["proto"] == "tcp").collect()
}

#[test]
fn same_five_tuple_in_two_vxlan_tenants_is_two_flows() {
    let run = replay(&[&pcap("vxlan-two-tenants.pcap")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let mut flows = tcp_flows(&run);
    flows.sort_by_key(|f| f["tunnel"][0]["id"].as_u64());
    assert_eq!(flows.len(), 2, "{flows:#?}");
    for (f, vni) in flows.iter().zip([7, 9]) {
        assert_eq!(f["tunnel"], json!([{"type": "vxlan", "id": vni}]));
        assert_eq!(f["src_ip"], "192.0.2.10");
        assert_eq!(f["src_port"], 51000);
        assert_eq!(f["dst_ip"], "198.51.100.20");
        assert_eq!(f["dst_port"], 80);
        assert_eq!(f["close_reason"], "fin");
        assert_eq!(f["state"], "SF");
        assert_eq!(f["midstream"], false);
        assert_eq!(f["one_sided"], false);
    }
    // Same 5-tuple, so the same Community ID: it deliberately ignores the tunnel.
    assert_eq!(flows[0]["community_id"], flows[1]["community_id"]);
    assert_ne!(flows[0]["uid"], flows[1]["uid"]);
    assert_eq!(run.stats()["decode"]["tunnels"]["vxlan"], 20);
}

#[test]
fn vlan_ids_are_flow_metadata() {
    let run = replay(&[&pcap("vlan.pcap")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let flows = tcp_flows(&run);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["vlan"], json!([100]));
}

#[test]
fn reordered_duplicated_and_lost_segments() {
    let run = replay(&[&pcap("reorder-gap.pcap")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let flows = tcp_flows(&run);
    assert_eq!(flows.len(), 1, "{flows:#?}");
    let f = &flows[0];
    // GET (41 bytes) + POST with a 4000-byte body, all delivered despite reversal and a duplicate.
    let post_len = "POST /upload HTTP/1.1\r\nHost: edge.example\r\nContent-Length: 4000\r\n\r\n".len() + 4000;
    assert_eq!(f["client_payload_delivered"], 41 + post_len as u64);
    assert_eq!(f["client_gaps"], 0);
    assert!(f["retransmissions"].as_u64().unwrap() >= 1, "{f:#}");
    assert_eq!(f["overlaps_with_different_data"], 0);
    // One 1448-byte response segment never captured: exactly one gap of that size.
    assert_eq!(f["server_gaps"], 1);
    assert_eq!(f["server_gap_bytes"], 1448);
    let resp1 = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".len() + 5000;
    let resp2 = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n".len() + 2;
    assert_eq!(f["server_payload_delivered"], (resp1 + resp2 - 1448) as u64);
}

#[test]
fn demo_capture_flows() {
    let truth = mirador::synth::demo_expected(mirador::synth::DEMO_SEED);
    let run = replay(&[&pcap("demo.pcap")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let flows = tcp_flows(&run);
    assert_eq!(flows.len(), truth.flows);
    let count = |reason: &str| flows.iter().filter(|f| f["close_reason"] == reason).count();
    assert_eq!(count("fin"), truth.fin_flows);
    assert_eq!(count("rst"), truth.rst_flows);
    assert_eq!(count("idle_timeout"), truth.idle_flows);
    assert_eq!(truth.fin_flows + truth.rst_flows + truth.idle_flows, truth.flows);
    assert!(flows.iter().all(|f| f["client_gaps"] == 0 && f["server_gaps"] == 0 && f["midstream"] == false));
    let clients: std::collections::BTreeSet<_> = flows.iter().map(|f| f["src_ip"].as_str().unwrap()).collect();
    assert_eq!(clients.len(), truth.clients);
    let stats = run.stats();
    assert_eq!(stats["flows"]["tcp_flows"], truth.flows);
    assert_eq!(stats["capture"]["file_errors"], json!([]));
}

#[test]
fn many_files_merge_by_time() {
    // The same capture twice: every packet is seen twice, in time order, so each flow is a duplicate of itself.
    let p = pcap("vlan.pcap");
    let run = replay(&[&p, &p], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let flows = tcp_flows(&run);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["client_packets"], 2 * 6);
    assert_eq!(flows[0]["retransmissions"], 2, "both payload segments are seen twice");
    assert_eq!(flows[0]["overlaps_with_different_data"], 0);
}

#[test]
fn not_a_capture_exits_2_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "hello, this is not a pcap\n").unwrap();
    let run = replay(&[&p], &[]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("notes.txt") && run.stderr().contains("not a pcap"), "{}", run.stderr());
    let missing = dir.path().join("missing.pcap");
    let run = replay(&[&missing], &[]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("missing.pcap"), "{}", run.stderr());
}

#[test]
fn truncated_capture_keeps_what_it_read_and_exits_3() {
    let bytes = std::fs::read(pcap("vxlan-two-tenants.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.pcap");
    std::fs::write(&p, &bytes[..bytes.len() - 30]).unwrap();
    let run = replay(&[&p], &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(run.stderr().contains("cut.pcap") && run.stderr().contains("stopped at byte"), "{}", run.stderr());
    assert_eq!(tcp_flows(&run).len(), 2, "flows before the damage are still written");
    assert_eq!(run.stats()["capture"]["file_errors"][0]["packets"], 19);
}

#[test]
fn bad_usage_exits_2() {
    let out = assert_cmd::Command::cargo_bin("mirador").unwrap().arg("replay").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn port_reuse_after_close_is_a_new_flow() {
    use mirador::capture::Timestamp;
    use mirador::reassembly::Dir;
    use mirador::synth::{self, TcpConv};
    let client = "192.0.2.1:40000".parse().unwrap();
    let server = "192.0.2.2:80".parse().unwrap();
    let mut frames = Vec::new();
    for (i, path) in ["/first", "/second"].iter().enumerate() {
        let mut c = TcpConv::new(client, server, Timestamp::from_secs(1_000 + i as u64)).with_isn(1000 * i as u32, 77);
        c.handshake();
        c.send(Dir::ToServer, &synth::http_request("GET", path, "h", &[], b""));
        c.send(Dir::ToClient, &synth::http_response(200, "OK", &[], b"ok"));
        c.close();
        frames.extend(c.frames());
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("reuse.pcap");
    synth::write_pcap(&p, &mut frames).unwrap();
    let run = replay(&[&p], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let flows = tcp_flows(&run);
    assert_eq!(flows.len(), 2, "{flows:#?}");
    assert!(flows.iter().all(|f| f["http_transactions"] == 1 && f["state"] == "SF"));
    let uris: Vec<_> = run.jsonl("transactions.jsonl").iter().map(|t| t["uri"].clone()).collect();
    assert_eq!(uris, [json!("/first"), json!("/second")]);
}

/// A SIEM that deduplicates on `uid` must not merge two runs: the same capture replayed twice gives flow
/// uids that are unique within each run and shared by none of the two (the records themselves are equal).
#[test]
fn flow_uids_are_unique_across_runs() {
    let uids = |run: &Run| -> Vec<String> {
        run.jsonl("flows.jsonl").iter().map(|f| f["uid"].as_str().unwrap().to_owned()).collect()
    };
    let (a, b) = (replay(&[&pcap("demo.pcap")], &[]), replay(&[&pcap("demo.pcap")], &[]));
    let (ua, ub) = (uids(&a), uids(&b));
    assert!(ua.len() > 10, "{ua:?}");
    assert_eq!(ua.len(), ub.len());
    let set_a: std::collections::HashSet<_> = ua.iter().collect();
    assert_eq!(set_a.len(), ua.len(), "uids repeat within a run");
    assert!(ub.iter().all(|u| !set_a.contains(u)), "a uid of the first run came back in the second");
    // Transactions and alerts refer to their flow by the same uid.
    let tx_uids: std::collections::HashSet<_> =
        a.jsonl("transactions.jsonl").iter().map(|t| t["uid"].as_str().unwrap().to_owned()).collect();
    assert!(!tx_uids.is_empty() && tx_uids.iter().all(|u| set_a.contains(u)));
}
