//! Encapsulated traffic from the shared corpus: the inner TCP flows come out with the endpoints tshark
//! reports (`tshark -r X -q -z conv,tcp`) and the tunnel/VLAN metadata tshark decodes (vxlan.vni,
//! geneve.vni, erspan.spanid, vlan.id).

mod common;

use common::*;
use serde_json::Value;

fn flows_of(case: &str) -> Option<Vec<Value>> {
    let corpus = corpus()?;
    let pcap = ["pcap", "pcapng"].iter().map(|e| corpus.join(format!("{case}.{e}"))).find(|p| p.exists())?;
    let run = replay(&[&pcap], &[]);
    assert_eq!(run.code(), 0, "{case}: {}", run.stderr());
    Some(run.jsonl("flows.jsonl").into_iter().filter(|f| f["proto"] == "tcp").collect())
}

fn find<'a>(flows: &'a [Value], client: (&str, u16), server: (&str, u16)) -> &'a Value {
    flows
        .iter()
        .find(|f| {
            f["src_ip"] == client.0 && f["src_port"] == client.1 && f["dst_ip"] == server.0 && f["dst_port"] == server.1
        })
        .unwrap_or_else(|| panic!("no flow {client:?} -> {server:?} in {flows:#?}"))
}

fn tunnel_has(f: &Value, kind: &str, id: u64) -> bool {
    f["tunnel"].as_array().unwrap().iter().any(|t| t["type"] == kind && t["id"] == id)
}

#[test]
fn vxlan() {
    let Some(flows) = flows_of("zeek-tunnels-vxlan-encapsulated-http") else { return };
    assert_eq!(flows.len(), 1);
    let f = find(&flows, ("172.16.11.201", 40354), ("54.86.237.188", 80));
    assert!(tunnel_has(f, "vxlan", 1), "{f:#}");
    assert_eq!(f["client_packets"].as_u64().unwrap() + f["server_packets"].as_u64().unwrap(), 12);
}

#[test]
fn geneve_with_many_options() {
    let Some(flows) = flows_of("zeek-tunnels-geneve-many-options") else { return };
    let f = find(&flows, ("10.0.0.226", 39088), ("95.217.228.176", 80));
    assert!(tunnel_has(f, "geneve", 0x0c012e), "{f:#}");
    assert_eq!(f["client_packets"].as_u64().unwrap() + f["server_packets"].as_u64().unwrap(), 10);
}

#[test]
fn erspan_type_ii_sessions_are_distinct_flows() {
    let Some(flows) = flows_of("sv-bug-5437-01") else { return };
    assert_eq!(flows.len(), 2, "{flows:#?}");
    let a = find(&flows, ("183.171.100.129", 59938), ("1.19.8.213", 80));
    let b = find(&flows, ("183.171.100.129", 59938), ("213.39.205.178", 80));
    let ids: Vec<bool> = [a, b].iter().map(|f| tunnel_has(f, "erspan2", 2) || tunnel_has(f, "erspan2", 6)).collect();
    assert_eq!(ids, [true, true], "{a:#} {b:#}");
    assert!(a["midstream"].as_bool().unwrap() && a["one_sided"].as_bool().unwrap());
}

#[test]
fn qinqinq_vlan_stack() {
    let Some(flows) = flows_of("zeek-vlan-qinqinq") else { return };
    let f = find(&flows, ("141.142.228.5", 59856), ("192.150.187.43", 80));
    assert_eq!(f["vlan"], serde_json::json!([30, 20, 10]));
    assert_eq!(f["client_packets"].as_u64().unwrap() + f["server_packets"].as_u64().unwrap(), 14);
}

#[test]
fn gre_over_udp() {
    let Some(flows) = flows_of("zeek-tunnels-gre-over-udp-4754") else { return };
    let f = find(&flows, ("172.17.0.2", 36518), ("192.0.78.150", 80));
    assert!(f["tunnel"].as_array().unwrap().iter().any(|t| t["type"] == "gre"), "{f:#}");
    assert_eq!(f["client_packets"].as_u64().unwrap() + f["server_packets"].as_u64().unwrap(), 10);
}

#[test]
fn pppoe() {
    let Some(flows) = flows_of("sv-bug-4810") else { return };
    let f = find(&flows, ("10.100.0.0", 57013), ("142.250.179.131", 80));
    assert_eq!(f["client_packets"].as_u64().unwrap() + f["server_packets"].as_u64().unwrap(), 30);
}

#[test]
fn ipv4_fragments_reassembled() {
    let Some(flows) = flows_of("arkime-socks5-http-302-frag") else { return };
    let f = find(&flows, ("10.0.0.1", 1637), ("10.0.0.2", 21477));
    assert_eq!(f["client_packets"].as_u64().unwrap() + f["server_packets"].as_u64().unwrap(), 14);
    assert_eq!(f["client_gaps"], 0);
    assert_eq!(f["server_gaps"], 0);
}

#[test]
fn mpls_in_vlan() {
    let Some(flows) = flows_of("zeek-mpls-in-vlan") else { return };
    assert!(flows.iter().any(|f| f["dst_port"] == 80 && f["src_ip"] == "65.65.65.65"), "{flows:#?}");
}
