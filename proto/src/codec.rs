//! Wire codecs for [`Message`]: sans-IO, no sockets here.
//!
//! - **WebSocket** (KubeEdge's format): one JSON message per text frame, no
//!   length prefix. [`encode_text`] / [`decode_text`]; [`decode_bytes`]
//!   accepts the same JSON in a binary frame.
//! - **Streams** (Apiary's QUIC): a 4-byte big-endian payload length, then
//!   the JSON message. [`FrameCodec`] encodes into any [`BufMut`] and
//!   decodes from a [`BytesMut`] that the caller fills as bytes arrive.
//!
//! Both refuse anything over a cap ([`DEFAULT_MAX_FRAME`], 32 MiB, as
//! KubeEdge's QUIC frames). A stream decoder rejects an announced length
//! over the cap as soon as the 4-byte header is in, before buffering the
//! payload. No input makes these functions panic.

use bytes::{Buf, BufMut, BytesMut};

use crate::error::CodecError;
use crate::message::Message;

/// The default cap on one frame's payload: 32 MiB.
pub const DEFAULT_MAX_FRAME: usize = 32 * 1024 * 1024;

/// Bytes in a stream frame's length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// A message as the JSON text of one WebSocket text frame.
pub fn encode_text(msg: &Message) -> Result<String, CodecError> {
    serde_json::to_string(msg).map_err(|source| CodecError::Encode { source })
}

/// The message in a WebSocket text frame of at most `max` bytes.
pub fn decode_text(text: &str, max: usize) -> Result<Message, CodecError> {
    decode_bytes(text.as_bytes(), max)
}

/// The message in a WebSocket frame payload (text or binary) of at most
/// `max` bytes. Invalid UTF-8 is [`CodecError::Malformed`].
pub fn decode_bytes(bytes: &[u8], max: usize) -> Result<Message, CodecError> {
    if bytes.len() > max {
        return Err(CodecError::FrameTooLarge {
            len: bytes.len(),
            max,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| CodecError::Malformed { source })
}

/// The length-prefixed stream framing: `u32` big-endian length, then JSON.
///
/// Stateless: [`FrameCodec::decode`] looks at the head of the buffer each
/// time, so it can be called after every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    /// The largest payload accepted or produced, in bytes.
    pub max: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max: DEFAULT_MAX_FRAME,
        }
    }
}

impl FrameCodec {
    /// A codec capping payloads at `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameCodec { max }
    }

    /// The effective cap: `max`, and never more than a `u32` can announce.
    fn cap(&self) -> usize {
        self.max.min(u32::MAX as usize)
    }

    /// Appends `msg` as one frame. Fails, writing nothing, when its JSON is
    /// over the cap.
    pub fn encode<B: BufMut>(&self, msg: &Message, dst: &mut B) -> Result<(), CodecError> {
        let payload = serde_json::to_vec(msg).map_err(|source| CodecError::Encode { source })?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|len| (*len as usize) <= self.cap())
            .ok_or(CodecError::FrameTooLarge {
                len: payload.len(),
                max: self.max,
            })?;
        dst.put_u32(len);
        dst.put_slice(&payload);
        Ok(())
    }

    /// One frame as a new buffer.
    pub fn encode_to_vec(&self, msg: &Message) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode(msg, &mut out)?;
        Ok(out)
    }

    /// Takes the next whole frame off the front of `src`.
    ///
    /// - `Ok(None)`: not a whole frame yet; read more and call again. Room
    ///   for the rest of the frame is reserved in `src`.
    /// - `Ok(Some(msg))`: the frame is removed from `src`.
    /// - `Err(FrameTooLarge)`: the announced length is over the cap; nothing
    ///   is consumed and the stream cannot be resynchronised — close it.
    /// - `Err(Malformed)`: the frame is removed but is not a message; the
    ///   stream stays in step, so the caller may drop just this frame.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(header) = src.first_chunk::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        let announced = u32::from_be_bytes(*header) as usize;
        if announced > self.cap() {
            return Err(CodecError::FrameTooLarge {
                len: announced,
                max: self.max,
            });
        }
        let total = LENGTH_PREFIX + announced;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        let payload = src.split_to(announced);
        serde_json::from_slice(&payload)
            .map(Some)
            .map_err(|source| CodecError::Malformed { source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Operation;

    fn sample() -> Message {
        Message::new(
            "edgecontroller",
            "resource",
            Operation::Insert,
            "default/pod/a",
        )
        .with_content(serde_json::json!({"k": "v"}))
    }

    #[test]
    fn text_round_trip() {
        let m = sample();
        let text = encode_text(&m).unwrap();
        assert_eq!(decode_text(&text, DEFAULT_MAX_FRAME).unwrap(), m);
    }

    #[test]
    fn text_over_the_cap_is_refused() {
        let text = encode_text(&sample()).unwrap();
        let err = decode_text(&text, 10).unwrap_err();
        assert!(matches!(err, CodecError::FrameTooLarge { max: 10, .. }));
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let err = decode_bytes(b"{\"header\":\xff}", 100).unwrap_err();
        assert!(matches!(err, CodecError::Malformed { .. }));
    }

    #[test]
    fn frame_decodes_byte_by_byte() {
        let codec = FrameCodec::default();
        let m = sample();
        let wire = codec.encode_to_vec(&m).unwrap();
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            assert!(codec.decode(&mut buf).unwrap().is_none(), "early at {i}");
            buf.put_u8(*b);
        }
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(m));
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_in_one_read() {
        let codec = FrameCodec::default();
        let (a, b) = (sample(), sample().with_content("x"));
        let mut buf = BytesMut::new();
        codec.encode(&a, &mut buf).unwrap();
        codec.encode(&b, &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(a));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(b));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn oversized_announcement_is_refused_before_buffering() {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&2048u32.to_be_bytes()[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            CodecError::FrameTooLarge {
                len: 2048,
                max: 1024
            }
        ));
        assert!(buf.capacity() < 1024, "payload room was reserved");
    }

    #[test]
    fn oversized_message_is_not_encoded() {
        let codec = FrameCodec::new(16);
        let mut out = Vec::new();
        let err = codec.encode(&sample(), &mut out).unwrap_err();
        assert!(matches!(err, CodecError::FrameTooLarge { max: 16, .. }));
        assert!(out.is_empty());
    }

    #[test]
    fn malformed_frame_is_consumed() {
        let codec = FrameCodec::default();
        let good = sample();
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        buf.put_slice(b"nop");
        codec.encode(&good, &mut buf).unwrap();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Malformed { .. })
        ));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(good));
    }
}
