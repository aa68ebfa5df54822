//! AWS event-stream framing (`application/vnd.amazon.eventstream`), the binary envelope Bedrock's
//! streaming responses come in.
//!
//! A message is: a 12-byte prelude (total length u32 BE, headers length u32 BE, CRC-32 of those
//! 8 bytes), the headers, the payload, and a CRC-32 of everything before it. A header is a name
//! (u8 length, UTF-8), a value type (u8) and a value whose encoding depends on the type. All
//! integers are big-endian and the CRC is CRC-32 (IEEE).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of the prelude: total length, headers length, prelude CRC.
const PRELUDE_LEN: usize = 12;
/// Bytes of the trailing message CRC.
const CRC_LEN: usize = 4;
/// The smallest possible message: a prelude and a message CRC, no headers, no payload.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + CRC_LEN;

/// A message larger than this is an error rather than unbounded memory (the format's own limit).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Headers larger than this are an error (the format's own limit).
pub const MAX_HEADERS_BYTES: usize = 128 * 1024;

/// A header value, one variant per value type of the format (type byte 0–9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false): the type alone carries the value.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6: u16 length, then the bytes.
    Bytes(Bytes),
    /// Type 7: u16 length, then UTF-8.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

impl HeaderValue {
    /// The value as text, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// In wire order; names may repeat.
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Message {
    /// The first header of this name, when it is a string (`:event-type`, `:message-type`, …).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventStreamError {
    #[error("event-stream message length {0} is out of bounds")]
    BadLength(usize),
    #[error("event-stream headers length {0} is out of bounds")]
    BadHeadersLength(usize),
    #[error("event-stream prelude CRC mismatch")]
    PreludeCrc,
    #[error("event-stream message CRC mismatch")]
    MessageCrc,
    #[error("event-stream header is malformed: {0}")]
    BadHeader(&'static str),
    #[error("event-stream header value type {0} is unknown")]
    BadHeaderType(u8),
}

/// Incremental decoder: [`Decoder::push`] bytes as they arrive, then drain
/// [`Decoder::next_message`]. After an error the stream cannot be resynchronised (the framing has
/// no markers to find the next message by), so the caller should give up on it.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes of an unfinished message are buffered: at the end of the body this means the
    /// stream was cut short.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete message, if the bytes pushed so far hold one.
    pub fn next_message(&mut self) -> Result<Option<Message>, EventStreamError> {
        if self.buf.len() < PRELUDE_LEN {
            return Ok(None);
        }
        // The prelude is checked as soon as it is here, so a corrupt length is caught before
        // waiting (possibly forever) for that many bytes.
        let (total, headers_len) = check_prelude(&self.buf[..PRELUDE_LEN])?;
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        decode_frame(frame, headers_len).map(Some)
    }
}

/// Validates a prelude; returns the total message length and the headers length.
fn check_prelude(prelude: &[u8]) -> Result<(usize, usize), EventStreamError> {
    let mut p = prelude;
    let total = p.get_u32() as usize;
    let headers_len = p.get_u32() as usize;
    let crc = p.get_u32();
    if crc32fast::hash(&prelude[..8]) != crc {
        return Err(EventStreamError::PreludeCrc);
    }
    if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_BYTES).contains(&total) {
        return Err(EventStreamError::BadLength(total));
    }
    if headers_len > MAX_HEADERS_BYTES || headers_len > total - MIN_MESSAGE_LEN {
        return Err(EventStreamError::BadHeadersLength(headers_len));
    }
    Ok((total, headers_len))
}

/// Decodes one whole frame whose prelude was already checked.
fn decode_frame(frame: Bytes, headers_len: usize) -> Result<Message, EventStreamError> {
    let body_end = frame.len() - CRC_LEN;
    let crc = (&frame[body_end..]).get_u32();
    if crc32fast::hash(&frame[..body_end]) != crc {
        return Err(EventStreamError::MessageCrc);
    }
    let headers_end = PRELUDE_LEN + headers_len;
    let headers = decode_headers(frame.slice(PRELUDE_LEN..headers_end))?;
    Ok(Message {
        headers,
        payload: frame.slice(headers_end..body_end),
    })
}

fn decode_headers(mut buf: Bytes) -> Result<Vec<(String, HeaderValue)>, EventStreamError> {
    let mut headers = Vec::new();
    while buf.has_remaining() {
        let name_len = usize::from(buf.get_u8());
        let name = take(&mut buf, name_len, "name longer than the headers")?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| EventStreamError::BadHeader("name is not UTF-8"))?;
        let value = decode_value(&mut buf)?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn decode_value(buf: &mut Bytes) -> Result<HeaderValue, EventStreamError> {
    let kind = take(buf, 1, "missing value type")?[0];
    Ok(match kind {
        0 => HeaderValue::Bool(true),
        1 => HeaderValue::Bool(false),
        2 => HeaderValue::Byte(take(buf, 1, "short byte value")?.get_i8()),
        3 => HeaderValue::Short(take(buf, 2, "short short value")?.get_i16()),
        4 => HeaderValue::Int(take(buf, 4, "short int value")?.get_i32()),
        5 => HeaderValue::Long(take(buf, 8, "short long value")?.get_i64()),
        6 => HeaderValue::Bytes(take_sized(buf)?),
        7 => {
            let raw = take_sized(buf)?;
            let s = String::from_utf8(raw.to_vec())
                .map_err(|_| EventStreamError::BadHeader("string value is not UTF-8"))?;
            HeaderValue::String(s)
        }
        8 => HeaderValue::Timestamp(take(buf, 8, "short timestamp value")?.get_i64()),
        9 => {
            let raw = take(buf, 16, "short uuid value")?;
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&raw);
            HeaderValue::Uuid(uuid)
        }
        other => return Err(EventStreamError::BadHeaderType(other)),
    })
}

/// The next `n` bytes, or an error naming what was cut short.
fn take(buf: &mut Bytes, n: usize, what: &'static str) -> Result<Bytes, EventStreamError> {
    if buf.remaining() < n {
        return Err(EventStreamError::BadHeader(what));
    }
    Ok(buf.split_to(n))
}

/// A u16 length followed by that many bytes (byte-array and string values).
fn take_sized(buf: &mut Bytes) -> Result<Bytes, EventStreamError> {
    let len = take(buf, 2, "short value length")?.get_u16();
    take(buf, usize::from(len), "value longer than the headers")
}

/// Encodes one message with string headers. Names longer than 255 bytes and values longer than
/// 65535 bytes are cut to fit the format (callers are tests and simulators with short headers).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut hbuf = BytesMut::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(usize::from(u8::MAX))];
        let value = &value.as_bytes()[..value.len().min(usize::from(u16::MAX))];
        // Both lengths fit their fields: they were just cut to the field's maximum.
        hbuf.put_u8(name.len() as u8);
        hbuf.put_slice(name);
        hbuf.put_u8(7);
        hbuf.put_u16(value.len() as u16);
        hbuf.put_slice(value);
    }
    frame(&hbuf, payload)
}

/// Wraps already-encoded headers and a payload in a prelude and CRCs.
fn frame(headers: &[u8], payload: &[u8]) -> Bytes {
    let total = PRELUDE_LEN + headers.len() + payload.len() + CRC_LEN;
    let mut out = BytesMut::with_capacity(total);
    // The format's lengths are u32; messages built here are far below 4 GiB.
    out.put_u32(total as u32);
    out.put_u32(headers.len() as u32);
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.put_u32(prelude_crc);
    out.put_slice(headers);
    out.put_slice(payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Message> {
        let mut d = Decoder::new();
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            out.push(m);
        }
        assert!(!d.has_partial());
        out
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn string(s: &str) -> HeaderValue {
        HeaderValue::String(s.into())
    }

    // Known-good frames from the test suite of AWS's own C implementation (awslabs/
    // aws-c-event-stream, tests/message_deserializer_test.c): an empty message, a payload with no
    // headers, and a payload with one string header.
    #[test]
    fn aws_known_frame_empty() {
        let m = decode_all(&hex("00000010 00000000 05c248eb 7d98c8ff"));
        assert_eq!(m.len(), 1);
        assert!(m[0].headers.is_empty());
        assert!(m[0].payload.is_empty());
        assert_eq!(encode(&[], b""), hex("00000010 00000000 05c248eb 7d98c8ff"));
    }

    #[test]
    fn aws_known_frame_payload_only() {
        let frame = hex("0000001D 00000000 fd528c5a 7b27666f6f273a27626172277d c3653936");
        let m = decode_all(&frame);
        assert_eq!(m[0].payload, &b"{'foo':'bar'}"[..]);
        assert_eq!(encode(&[], b"{'foo':'bar'}"), frame);
    }

    #[test]
    fn aws_known_frame_with_string_header() {
        let frame = hex("0000003D 00000020 07FD8396
             0C 636f6e74656e742d74797065 07 0010 6170706c69636174696f6e2f6a736f6e
             7b27666f6f273a27626172277d 8D9C08B1");
        let m = decode_all(&frame);
        assert_eq!(
            m[0].headers,
            vec![("content-type".into(), string("application/json"))]
        );
        assert_eq!(m[0].header_str("content-type"), Some("application/json"));
        assert_eq!(m[0].payload, &b"{'foo':'bar'}"[..]);
        assert_eq!(
            encode(&[("content-type", "application/json")], b"{'foo':'bar'}"),
            frame
        );
    }

    #[test]
    fn every_header_value_type_decodes() {
        let mut h = BytesMut::new();
        let name = |h: &mut BytesMut, n: &str, t: u8| {
            h.put_u8(n.len() as u8);
            h.put_slice(n.as_bytes());
            h.put_u8(t);
        };
        name(&mut h, "t", 0);
        name(&mut h, "f", 1);
        name(&mut h, "byte", 2);
        h.put_i8(-2);
        name(&mut h, "short", 3);
        h.put_i16(-300);
        name(&mut h, "int", 4);
        h.put_i32(70_000);
        name(&mut h, "long", 5);
        h.put_i64(-5_000_000_000);
        name(&mut h, "bytes", 6);
        h.put_u16(3);
        h.put_slice(&[0, 1, 255]);
        name(&mut h, "str", 7);
        h.put_u16(2);
        h.put_slice("é".as_bytes());
        name(&mut h, "ts", 8);
        h.put_i64(1_440_938_160_000);
        name(&mut h, "id", 9);
        h.put_slice(&[7u8; 16]);
        let m = decode_all(&frame(&h, b"x"));
        let want = vec![
            ("t".to_string(), HeaderValue::Bool(true)),
            ("f".into(), HeaderValue::Bool(false)),
            ("byte".into(), HeaderValue::Byte(-2)),
            ("short".into(), HeaderValue::Short(-300)),
            ("int".into(), HeaderValue::Int(70_000)),
            ("long".into(), HeaderValue::Long(-5_000_000_000)),
            (
                "bytes".into(),
                HeaderValue::Bytes(Bytes::from_static(&[0, 1, 255])),
            ),
            ("str".into(), string("é")),
            ("ts".into(), HeaderValue::Timestamp(1_440_938_160_000)),
            ("id".into(), HeaderValue::Uuid([7u8; 16])),
        ];
        assert_eq!(m[0].headers, want);
        // Only string values answer header_str.
        assert_eq!(m[0].header_str("str"), Some("é"));
        assert_eq!(m[0].header_str("int"), None);
        assert_eq!(m[0].header_str("missing"), None);
    }

    #[test]
    fn round_trip_several_messages() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&encode(
            &[(":message-type", "event"), (":event-type", "chunk")],
            br#"{"a":1}"#,
        ));
        wire.extend_from_slice(&encode(&[], b""));
        wire.extend_from_slice(&encode(&[("k", "")], &[0u8; 1000]));
        let m = decode_all(&wire);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].header_str(":event-type"), Some("chunk"));
        assert_eq!(m[0].header_str(":message-type"), Some("event"));
        assert_eq!(m[0].payload, &br#"{"a":1}"#[..]);
        assert_eq!(
            m[1],
            Message {
                headers: vec![],
                payload: Bytes::new()
            }
        );
        assert_eq!(m[2].header_str("k"), Some(""));
        assert_eq!(m[2].payload.len(), 1000);
    }

    #[test]
    fn split_at_every_byte() {
        let a = encode(&[(":event-type", "one")], b"first payload");
        let b = encode(&[(":event-type", "two"), ("x", "y")], b"second");
        let wire = [a.as_ref(), b.as_ref()].concat();
        let whole = decode_all(&wire);
        for cut in 0..=wire.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            d.push(&wire[..cut]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            d.push(&wire[cut..]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            assert_eq!(got, whole, "cut at {cut}");
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn byte_by_byte() {
        let wire = encode(&[(":event-type", "one")], b"payload");
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            d.push(&[*b]);
            if let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, &b"payload"[..]);
    }

    #[test]
    fn truncated_input_is_partial() {
        let wire = encode(&[(":event-type", "one")], b"payload");
        for cut in 1..wire.len() {
            let mut d = Decoder::new();
            d.push(&wire[..cut]);
            assert_eq!(d.next_message(), Ok(None), "cut at {cut}");
            assert!(d.has_partial());
        }
        assert!(!Decoder::new().has_partial());
    }

    #[test]
    fn corrupt_prelude_crc_is_an_error() {
        let mut wire = encode(&[("a", "b")], b"payload").to_vec();
        wire[9] ^= 0x01;
        let mut d = Decoder::new();
        d.push(&wire);
        assert_eq!(d.next_message(), Err(EventStreamError::PreludeCrc));
        // A corrupt length is caught by the prelude CRC too, before waiting for its bytes.
        let mut wire = encode(&[], b"p").to_vec();
        wire[1] = 0x7f;
        let mut d = Decoder::new();
        d.push(&wire[..PRELUDE_LEN]);
        assert_eq!(d.next_message(), Err(EventStreamError::PreludeCrc));
    }

    #[test]
    fn corrupt_message_crc_is_an_error() {
        let wire = encode(&[("a", "b")], b"payload");
        // Flip a bit in the headers, in the payload, and in the CRC itself.
        for pos in [PRELUDE_LEN + 1, wire.len() - 5, wire.len() - 1] {
            let mut bad = wire.to_vec();
            bad[pos] ^= 0x80;
            let mut d = Decoder::new();
            d.push(&bad);
            assert_eq!(d.next_message(), Err(EventStreamError::MessageCrc), "{pos}");
        }
    }

    /// A prelude with a valid CRC for the given lengths.
    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = BytesMut::new();
        p.put_u32(total);
        p.put_u32(headers);
        let crc = crc32fast::hash(&p);
        p.put_u32(crc);
        p.to_vec()
    }

    #[test]
    fn lengths_are_bounded() {
        let cases = [
            (
                prelude(17 * 1024 * 1024, 0),
                EventStreamError::BadLength(17 * 1024 * 1024),
            ),
            (prelude(15, 0), EventStreamError::BadLength(15)),
            (prelude(20, 5), EventStreamError::BadHeadersLength(5)),
            (
                prelude(1024 * 1024, 200 * 1024),
                EventStreamError::BadHeadersLength(200 * 1024),
            ),
        ];
        for (p, err) in cases {
            let mut d = Decoder::new();
            d.push(&p);
            assert_eq!(d.next_message(), Err(err));
        }
    }

    #[test]
    fn malformed_headers_are_errors() {
        // Name length past the end of the headers.
        let bad_name = frame(&[5, b'a'], b"");
        // Unknown value type.
        let bad_type = frame(&[1, b'a', 10], b"");
        // String value longer than the headers.
        let bad_len = frame(&[1, b'a', 7, 0, 9, b'x'], b"");
        // String value that is not UTF-8.
        let bad_utf8 = frame(&[1, b'a', 7, 0, 1, 0xff], b"");
        // Int value cut short.
        let short_int = frame(&[1, b'a', 4, 0, 0], b"");
        for (wire, want) in [
            (
                bad_name,
                EventStreamError::BadHeader("name longer than the headers"),
            ),
            (bad_type, EventStreamError::BadHeaderType(10)),
            (
                bad_len,
                EventStreamError::BadHeader("value longer than the headers"),
            ),
            (
                bad_utf8,
                EventStreamError::BadHeader("string value is not UTF-8"),
            ),
            (short_int, EventStreamError::BadHeader("short int value")),
        ] {
            let mut d = Decoder::new();
            d.push(&wire);
            assert_eq!(d.next_message(), Err(want));
        }
    }
}
