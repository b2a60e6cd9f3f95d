//! Fuzz target: a byte stream through `FrameCodec::decode`, fed in pieces.
//!
//! The first byte picks the cap and the piece size, the rest is the
//! stream. Never panics; every decoded message re-frames under the same
//! cap; a frame over the cap ends the stream as a connection would.

#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use proto::{CodecError, FrameCodec};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let codec = FrameCodec::new(usize::from(knobs & 0x0f) * 64);
    let piece = usize::from(knobs >> 4) + 1;
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(piece) {
        buf.put_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let mut again = BytesMut::new();
                    let encoded = codec.encode(&msg, &mut again);
                    // Re-encoding may grow past the cap (defaults are written
                    // out, e.g. `{}` becomes a full envelope) but never fails
                    // any other way.
                    if let Err(e) = encoded {
                        assert!(matches!(e, CodecError::FrameTooLarge { .. }));
                    }
                }
                Ok(None) => break,
                Err(CodecError::Malformed { .. }) => continue,
                Err(_) => return,
            }
        }
    }
});
