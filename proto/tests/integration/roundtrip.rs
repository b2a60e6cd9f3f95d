//! Property tests: messages survive both codecs, resource paths survive
//! format → parse (and parse → format), and no input makes a decoder panic.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use proto::{
    decode_bytes, decode_text, encode_text, CodecError, DeviceEvent, FrameCodec, Header, Message,
    Operation, ResourceKind, ResourcePath, Route, Special, Target, DEFAULT_MAX_FRAME,
};
use serde_json::Value;

/// JSON without floats: serde_json's default float parsing is not
/// guaranteed to round-trip the last bit, and Apiary never relies on it.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        prop::sample::select(Operation::KNOWN.to_vec()),
        ".{0,12}".prop_map(|s| Operation::parse(&s)),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let header = (
        ".{0,40}",
        ".{0,40}",
        any::<i64>(),
        "[0-9]{0,8}",
        any::<bool>(),
        ".{0,8}",
    )
        .prop_map(
            |(msg_id, parent_msg_id, timestamp, resource_version, sync, message_type)| Header {
                msg_id,
                parent_msg_id,
                timestamp,
                resource_version,
                sync,
                message_type,
            },
        );
    let route = (".{0,12}", ".{0,12}", ".{0,12}", arb_operation(), ".{0,40}").prop_map(
        |(source, destination, group, operation, resource)| Route {
            source,
            destination,
            group,
            operation,
            resource,
        },
    );
    (header, route, arb_json()).prop_map(|(header, route, content)| Message {
        header,
        route,
        content,
    })
}

fn arb_kind() -> impl Strategy<Value = ResourceKind> {
    prop_oneof![
        prop::sample::select(ResourceKind::KNOWN.to_vec()),
        "[a-z]{1,12}".prop_map(|s| ResourceKind::parse(&s)),
    ]
}

fn arb_target() -> impl Strategy<Value = Target> {
    let object = (
        prop_oneof!["[a-z0-9][a-z0-9-]{0,10}", Just("null".to_owned())],
        arb_kind(),
        prop::option::of("[a-zA-Z0-9._-][a-zA-Z0-9._/-]{0,20}"),
    )
        .prop_map(|(namespace, kind, name)| Target::Object {
            namespace,
            kind,
            name,
        });
    let device = (
        "[a-z0-9-]{1,8}(/[a-z0-9-]{1,8})?",
        prop_oneof![
            Just(DeviceEvent::TwinEdgeUpdated),
            Just(DeviceEvent::TwinCloudUpdated),
            Just(DeviceEvent::StateUpdate),
            "(twin|state)/[a-z_]{1,10}".prop_map(|s| DeviceEvent::parse(&s)),
        ],
    )
        .prop_map(|(id, event)| Target::Device { id, event });
    let special = prop::sample::select(Special::ALL.to_vec()).prop_map(Target::Special);
    prop_oneof![4 => object, 1 => device, 1 => special]
}

fn arb_path() -> impl Strategy<Value = ResourcePath> {
    (prop::option::of("[a-z0-9-]{1,12}"), arb_target())
        .prop_filter_map("paths that read back differently", |(node, target)| {
            ResourcePath::new(node, target).ok()
        })
}

/// Resource-like strings from a vocabulary that hits every parser branch.
fn arb_resource_string() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "node",
        "device",
        "twin",
        "state",
        "edge_updated",
        "update",
        "k8s",
        "ca.crt",
        "membership",
        "detail",
        "connection",
        "default",
        "null",
        "pod",
        "configmap",
        "x",
        "",
    ]);
    prop::collection::vec(seg, 0..8).prop_map(|v| v.join("/"))
}

proptest! {
    #[test]
    fn message_survives_json(m in arb_message()) {
        let text = encode_text(&m).unwrap();
        prop_assert_eq!(decode_text(&text, DEFAULT_MAX_FRAME).unwrap(), m);
    }

    #[test]
    fn message_survives_frames_split_anywhere(
        msgs in prop::collection::vec(arb_message(), 1..4),
        chunk in 1usize..64,
    ) {
        let codec = FrameCodec::default();
        let mut wire = Vec::new();
        for m in &msgs {
            codec.encode(m, &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.put_slice(piece);
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                out.push(m);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn path_survives_format_then_parse(p in arb_path()) {
        let text = p.to_string();
        prop_assert_eq!(ResourcePath::parse(&text), Ok(p.clone()));
        if p.node().is_some() {
            prop_assert_eq!(ResourcePath::parse_cloud(&text), Ok(p));
        }
    }

    #[test]
    fn parsed_strings_format_back_exactly(s in arb_resource_string()) {
        if let Ok(p) = ResourcePath::parse(&s) {
            prop_assert_eq!(p.to_string(), s.clone());
            prop_assert_eq!(ResourcePath::new(p.node().map(str::to_owned), p.target().clone()), Ok(p));
        }
    }

    #[test]
    fn any_string_parses_or_fails_cleanly(s in ".{0,64}") {
        if let Ok(p) = ResourcePath::parse(&s) {
            prop_assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), max in 0usize..512) {
        let _ = decode_bytes(&bytes, max);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = decode_text(text, max);
        }
        let codec = FrameCodec::new(max);
        let mut buf = BytesMut::from(&bytes[..]);
        // Each Ok(Some) or Malformed consumes a frame; stop on anything else.
        while let Ok(Some(_)) | Err(CodecError::Malformed { .. }) = codec.decode(&mut buf) {}
    }

    #[test]
    fn json_shaped_garbage_never_panics(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "[", "]", ":", ",", "\"header\"", "\"route\"", "\"content\"",
                "\"msg_id\"", "\"timestamp\"", "\"sync\"", "\"operation\"", "null", "true",
                "1e999", "-1", "18446744073709551616", "\"x\"", "\"\\ud800\"",
            ]),
            0..40,
        )
    ) {
        let text = tokens.concat();
        let _ = decode_text(&text, DEFAULT_MAX_FRAME);
    }

    #[test]
    fn oversized_announcement_is_a_typed_error(
        max in 0usize..4096,
        extra in 1u32..1000,
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let codec = FrameCodec::new(max);
        let announced = max as u32 + extra;
        let mut buf = BytesMut::new();
        buf.put_u32(announced);
        buf.put_slice(&tail);
        let before = buf.len();
        match codec.decode(&mut buf) {
            Err(CodecError::FrameTooLarge { len, max: m }) => {
                prop_assert_eq!(len, announced as usize);
                prop_assert_eq!(m, max);
            }
            other => prop_assert!(false, "expected FrameTooLarge, got {:?}", other),
        }
        prop_assert_eq!(buf.len(), before);
    }
}

#[test]
fn oversized_frames_are_typed_errors() {
    let big = Message::default().with_content("x".repeat(2048));
    let text = encode_text(&big).unwrap();
    assert!(matches!(
        decode_text(&text, 1024),
        Err(CodecError::FrameTooLarge { max: 1024, .. })
    ));
    let codec = FrameCodec::new(1024);
    assert!(matches!(
        codec.encode_to_vec(&big),
        Err(CodecError::FrameTooLarge { max: 1024, .. })
    ));
    let wire = FrameCodec::default().encode_to_vec(&big).unwrap();
    let mut buf = BytesMut::from(&wire[..8]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLarge { max: 1024, .. })
    ));
}

#[test]
fn default_cap_is_32_mib() {
    assert_eq!(DEFAULT_MAX_FRAME, 32 * 1024 * 1024);
    assert_eq!(FrameCodec::default().max, DEFAULT_MAX_FRAME);
}
