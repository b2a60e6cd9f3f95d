//! Fuzz target: a WebSocket frame payload through `decode_bytes`.
//!
//! Never panics; anything that decodes re-encodes to JSON that decodes to
//! the same header and route.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::{decode_bytes, decode_text, encode_text, DEFAULT_MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode_bytes(data, DEFAULT_MAX_FRAME) else {
        return;
    };
    let text = encode_text(&msg).expect("a decoded message encodes");
    let back = decode_text(&text, usize::MAX).expect("our own output decodes");
    // Content is compared loosely: JSON floats need not survive bit-exact.
    assert_eq!(back.header, msg.header);
    assert_eq!(back.route, msg.route);
});
