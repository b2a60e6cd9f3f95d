//! Golden messages in KubeEdge's wire shape (v1.15 captures and field lists,
//! ids and times anonymised): each decodes with the expected fields and
//! re-encodes with the same keys, empty fields left out as KubeEdge does.

use proto::modules::{cloud, content, group};
use proto::{
    add_node_prefix, decode_text, encode_text, needs_ack, Message, Operation, ResourceKind,
    ResourcePath, DEFAULT_MAX_FRAME,
};
use serde_json::{json, Value};

const ID1: &str = "2d5ee0ab-6ab6-4b35-9a43-7a4c0f1e3c01";
const ID2: &str = "8f1c9d7e-0f55-4c0e-b1b4-5f3e2a9d6c02";
const ID3: &str = "c3a1f0e2-77d4-4e5b-8d2c-1b0a9e8f7d03";

fn decode(raw: &str) -> Message {
    decode_text(raw, DEFAULT_MAX_FRAME).expect("golden message decodes")
}

/// The encoded text up to `"content":`, where header and route end.
fn envelope(encoded: &str) -> &str {
    let at = encoded.find(",\"content\":").expect("content key");
    &encoded[..at]
}

/// Decodes, re-encodes and checks the result is the same JSON with the same
/// header and route text; returns the message.
fn round_trip(raw: &str) -> Message {
    let msg = decode(raw);
    let encoded = encode_text(&msg).expect("encodes");
    assert_eq!(
        envelope(&encoded),
        envelope(raw),
        "header/route keys differ"
    );
    let a: Value = serde_json::from_str(raw).expect("golden is JSON");
    let b: Value = serde_json::from_str(&encoded).expect("output is JSON");
    assert_eq!(a, b);
    msg
}

/// As CloudHub sees the message inside the cloud.
fn in_cloud(msg: &Message) -> Message {
    let mut m = msg.clone();
    m.route.resource = add_node_prefix("edge-1", &m.route.resource);
    m
}

#[test]
fn keepalive() {
    let raw = format!(
        r#"{{"header":{{"msg_id":"{ID1}","timestamp":1700000000000}},"route":{{"source":"websocket","group":"resource","operation":"keepalive","resource":"node"}},"content":"ping"}}"#
    );
    let m = round_trip(&raw);
    assert_eq!(m.id(), ID1);
    assert_eq!(m.header.timestamp, 1_700_000_000_000);
    assert_eq!(m.parent_id(), None);
    assert!(!m.header.sync);
    assert_eq!(m.route.operation, Operation::Keepalive);
    assert_eq!(m.content, json!("ping"));
    assert_eq!(encode_text(&m).unwrap(), raw);
    let fresh = proto::modules::keepalive();
    assert_eq!(fresh.route, m.route);
    assert_eq!(fresh.content, m.content);
}

fn configmap_insert() -> String {
    format!(
        r#"{{"header":{{"msg_id":"{ID2}","timestamp":1700000001000,"resourceversion":"476"}},"route":{{"source":"edgecontroller","group":"resource","operation":"insert","resource":"default/configmap/cm2"}},"content":{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"cm2","namespace":"default","uid":"0b7e3f52-1c7a-4d0e-9a51-2f8d6b4c9e10","resourceVersion":"476","creationTimestamp":"2024-01-01T00:00:00Z"}},"data":{{"greeting":"hi"}}}}}}"#
    )
}

#[test]
fn configmap_insert_with_resource_version() {
    let m = round_trip(&configmap_insert());
    assert_eq!(m.header.resource_version, "476");
    assert_eq!(m.route.source, cloud::EDGECONTROLLER);
    assert_eq!(m.route.group, group::RESOURCE);
    assert_eq!(m.route.operation, Operation::Insert);
    assert_eq!(m.content["data"]["greeting"], "hi");
    let path = ResourcePath::parse(m.resource()).unwrap();
    assert_eq!(path.kind(), Some(&ResourceKind::ConfigMap));
    assert_eq!(path.name(), Some("cm2"));
    assert!(needs_ack(&in_cloud(&m)));
}

#[test]
fn configmap_ack() {
    let raw = format!(
        r#"{{"header":{{"msg_id":"{ID3}","parent_msg_id":"{ID2}","timestamp":1700000001050}},"route":{{"source":"edgecontroller","group":"resource","operation":"response","resource":"default/configmap/cm2"}},"content":"OK"}}"#
    );
    let m = round_trip(&raw);
    assert_eq!(encode_text(&m).unwrap(), raw);
    assert_eq!(m.parent_id(), Some(ID2));
    assert_eq!(m.route.operation, Operation::Response);
    assert_eq!(m.content, json!(content::OK));
    assert!(!needs_ack(&in_cloud(&m)));

    // MetaManager builds the same ack from the request.
    let ours = decode(&configmap_insert()).reply(content::OK);
    assert_eq!(ours.parent_id(), Some(ID2));
    assert_eq!(ours.route, m.route);
}

#[test]
fn twin_edge_updated_and_its_ack() {
    let raw = format!(
        r#"{{"header":{{"msg_id":"{ID1}","timestamp":1700000002000}},"route":{{"source":"twin","group":"resource","operation":"update","resource":"device/dev1/twin/edge_updated"}},"content":{{"event_id":"","timestamp":1700000002000,"twin":{{"temperature":{{"actual":{{"value":"21.5","metadata":{{"timestamp":1700000002000}}}},"optional":true,"metadata":{{"type":"Updated"}},"actual_version":{{"cloud":0,"edge":1}}}}}}}}}}"#
    );
    let m = round_trip(&raw);
    assert_eq!(m.route.operation, Operation::Update);
    assert_eq!(
        m.content["twin"]["temperature"]["actual_version"]["edge"],
        1
    );
    let path = ResourcePath::parse(m.resource()).unwrap();
    assert_eq!(path.device_id(), Some("dev1"));

    let ack = format!(
        r#"{{"header":{{"msg_id":"{ID2}","parent_msg_id":"{ID1}","timestamp":1700000002010}},"route":{{"source":"devicecontroller","group":"twin","operation":"response","resource":"twin"}},"content":"OK"}}"#
    );
    let a = round_trip(&ack);
    assert_eq!(encode_text(&a).unwrap(), ack);
    assert_eq!(a.parent_id(), Some(ID1));
    assert!(ResourcePath::parse(a.resource()).is_ok());
}

#[test]
fn membership_detail_with_string_content() {
    let raw = format!(
        r#"{{"header":{{"msg_id":"{ID1}","timestamp":1700000003000}},"route":{{"source":"twin","group":"resource","operation":"get","resource":"membership/detail"}},"content":"{{\"event_type\":\"group_membership_event\",\"event_id\":\"{ID3}\",\"operation\":\"detail\",\"group_id\":\"edge-1\",\"timestamp\":1700000003000}}"}}"#
    );
    let m = round_trip(&raw);
    assert_eq!(encode_text(&m).unwrap(), raw);
    assert!(m.content.is_string(), "content stays a JSON string");
    let inner = m.content_json();
    assert_eq!(inner["operation"], "detail");
    assert_eq!(inner["group_id"], "edge-1");
    assert_eq!(m.route.operation, Operation::Get);
    assert!(!needs_ack(&in_cloud(&m)));
}

#[test]
fn nodepatch_with_string_content() {
    let raw = format!(
        r#"{{"header":{{"msg_id":"{ID1}","timestamp":1700000004000}},"route":{{"source":"metamanager","group":"resource","operation":"patch","resource":"default/nodepatch/edge-1"}},"content":"{{\"status\":{{\"conditions\":[{{\"type\":\"Ready\",\"status\":\"True\"}}]}}}}"}}"#
    );
    let m = round_trip(&raw);
    assert_eq!(encode_text(&m).unwrap(), raw);
    assert_eq!(m.route.operation, Operation::Patch);
    assert_eq!(m.content_json()["status"]["conditions"][0]["type"], "Ready");
    let path = ResourcePath::parse(m.resource()).unwrap();
    assert_eq!(path.kind(), Some(&ResourceKind::NodePatch));
}

#[test]
fn query_reply_object_and_err() {
    let raw = format!(
        r#"{{"header":{{"msg_id":"{ID2}","parent_msg_id":"{ID1}","timestamp":1700000005000}},"route":{{"source":"edgecontroller","group":"resource","operation":"response","resource":"default/node/edge-1"}},"content":{{"Object":{{"kind":"Node","apiVersion":"v1","metadata":{{"name":"edge-1","resourceVersion":"812"}},"status":{{"phase":"Running"}}}},"Err":null}}}}"#
    );
    let m = round_trip(&raw);
    assert_eq!(m.parent_id(), Some(ID1));
    assert_eq!(m.content["Object"]["metadata"]["name"], "edge-1");
    assert!(m.content["Err"].is_null());
    // EdgeController's node replies are not acked.
    assert!(!needs_ack(&in_cloud(&m)));
}

#[test]
fn all_empty_shutdown_message() {
    let raw = r#"{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}"#;
    let m = decode(raw);
    assert!(m.is_empty());
    assert_eq!(encode_text(&m).unwrap(), raw);
    assert_eq!(m.route.operation, Operation::default());
}

#[test]
fn sync_and_type_are_written_when_set() {
    let mut m = Message::new("edged", "meta", Operation::Query, "default/configmap/cm2");
    m.header.msg_id = ID1.into();
    m.header.timestamp = 1;
    m.header.sync = true;
    m.header.message_type = "task".into();
    let text = encode_text(&m).unwrap();
    assert_eq!(
        envelope(&text),
        format!(
            r#"{{"header":{{"msg_id":"{ID1}","timestamp":1,"sync":true,"type":"task"}},"route":{{"source":"edged","group":"meta","operation":"query","resource":"default/configmap/cm2"}}"#
        )
    );
}

#[test]
fn unknown_fields_and_missing_parts_are_tolerated() {
    let m = decode(
        r#"{"header":{"msg_id":"x","timestamp":5,"extra":1},"route":{"operation":"frobnicate"},"future":true}"#,
    );
    assert_eq!(m.id(), "x");
    assert_eq!(m.route.operation, Operation::Other("frobnicate".into()));
    assert!(m.content.is_null());
    let m = decode("{}");
    assert!(m.is_empty());
}
