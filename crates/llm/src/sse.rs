//! Server-sent events (the WHATWG `text/event-stream` format), parsed incrementally from chunks
//! that may split an event, a line, or a UTF-8 character anywhere.

use bytes::{BufMut, Bytes, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    /// Every `data:` line of the event, joined with `\n`.
    pub data: String,
}

/// Incremental parser: [`Parser::push`] bytes as they arrive, then drain [`Parser::next_event`].
#[derive(Debug, Default)]
pub struct Parser {
    buf: BytesMut,
    /// How far `buf` has been scanned for a line end without finding one.
    scanned: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// A `\r` ended the previous line: a `\n` right after it belongs to that line end.
    after_cr: bool,
}

/// An event larger than this is an error rather than unbounded memory.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("server-sent event larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes pushed so far hold one.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        loop {
            if self.after_cr && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    let _ = self.buf.split_to(1);
                }
                self.after_cr = false;
            }
            let Some(pos) = self.buf[self.scanned..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .map(|p| p + self.scanned)
            else {
                self.scanned = self.buf.len();
                if self.buf.len() + self.data.len() > MAX_EVENT_BYTES {
                    return Err(SseError::TooLarge);
                }
                return Ok(None);
            };
            let line = self.buf.split_to(pos + 1);
            self.scanned = 0;
            if line[pos] == b'\r' {
                self.after_cr = true;
            }
            let line = &line[..pos];
            if line.is_empty() {
                if let Some(ev) = self.dispatch() {
                    return Ok(Some(ev));
                }
                continue;
            }
            self.field(line);
            if self.data.len() > MAX_EVENT_BYTES {
                return Err(SseError::TooLarge);
            }
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 is the rule: checking it whole is much faster than the lossy decoder.
        let value = match std::str::from_utf8(value) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(value),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // id, retry and unknown fields carry nothing the gateway needs
        }
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(Event {
            event,
            data: std::mem::take(&mut self.data),
        })
    }

    /// Whether bytes of an unfinished event are buffered (a stream that ends here was cut).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.has_data
    }
}

/// One event in wire form: optional `event:` line, one `data:` line per line of `data`, blank line.
pub fn encode(event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    encode_into(&mut out, event, data);
    out.freeze()
}

pub fn encode_into(out: &mut BytesMut, event: Option<&str>, data: &str) {
    if let Some(e) = event {
        out.put_slice(b"event: ");
        out.put_slice(e.as_bytes());
        out.put_u8(b'\n');
    }
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = p.next_event().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn events_split_at_every_byte() {
        let wire = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\n\n";
        let expected = vec![
            Event {
                event: Some("message_start".into()),
                data: "{\"a\":1}".into(),
            },
            Event {
                event: None,
                data: "line1\nline2".into(),
            },
            Event {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        // Whole, and split at every position.
        let mut p = Parser::new();
        p.push(wire.as_bytes());
        assert_eq!(all(&mut p), expected);
        for cut in 0..wire.len() {
            let mut p = Parser::new();
            p.push(&wire.as_bytes()[..cut]);
            let mut got = all(&mut p);
            p.push(&wire.as_bytes()[cut..]);
            got.extend(all(&mut p));
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn bare_cr_line_ends_and_no_space_after_colon() {
        let mut p = Parser::new();
        p.push(b"data:x\r\rdata:y\r");
        assert_eq!(
            all(&mut p),
            vec![Event {
                event: None,
                data: "x".into()
            }]
        );
        p.push(b"\n");
        assert!(all(&mut p).is_empty());
        p.push(b"\n");
        assert_eq!(
            all(&mut p),
            vec![Event {
                event: None,
                data: "y".into()
            }]
        );
    }

    #[test]
    fn partial_event_is_visible() {
        let mut p = Parser::new();
        p.push(b"data: {\"cut\":");
        assert!(all(&mut p).is_empty());
        assert!(p.has_partial());
    }

    #[test]
    fn encode_round_trips() {
        let wire = encode(Some("delta"), "a\nb");
        assert_eq!(&wire[..], b"event: delta\ndata: a\ndata: b\n\n");
        let mut p = Parser::new();
        p.push(&wire);
        assert_eq!(
            all(&mut p),
            vec![Event {
                event: Some("delta".into()),
                data: "a\nb".into()
            }]
        );
    }
}
