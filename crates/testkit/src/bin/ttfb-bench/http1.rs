//! The little HTTP/1.1 both modes need: message heads and the chunked transfer coding.

use crate::Result;

/// Longest head either side accepts.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;

/// Where the head ends (just past its blank line), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A parsed request or response head.
pub struct Head {
    /// `POST /v1/chat/completions HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Parses `buf[..head_end(buf)]`.
    pub fn parse(head: &[u8]) -> Result<Head> {
        let text = std::str::from_utf8(head).map_err(|_| "the head is not UTF-8")?;
        let mut lines = text.trim_end_matches("\r\n").split("\r\n");
        let start = lines.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("malformed header line {line:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Ok(Head { start, headers })
    }

    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// How the body is delimited.
    pub fn framing(&self) -> Result<Framing> {
        if self.has_token("transfer-encoding", "chunked") {
            return Ok(Framing::Chunked(Chunked::default()));
        }
        match self.header("content-length") {
            Some(v) => {
                Ok(Framing::Length(v.parse().map_err(|_| {
                    format!("content-length {v:?} is not a number")
                })?))
            }
            None => Ok(Framing::UntilClose),
        }
    }
}

/// How a message body ends.
pub enum Framing {
    Chunked(Chunked),
    /// Bytes still to come.
    Length(u64),
    /// Read to the end of the connection (responses only).
    UntilClose,
}

impl Framing {
    /// Decodes what it can of `input`, handing body bytes to `sink`; returns how many bytes of
    /// `input` belong to this body (anything after them is the next message).
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<usize> {
        match self {
            Framing::Chunked(c) => c.feed(input, sink),
            Framing::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                if take > 0 {
                    sink(&input[..take]);
                }
                *left -= take as u64;
                Ok(take)
            }
            Framing::UntilClose => {
                if !input.is_empty() {
                    sink(input);
                }
                Ok(input.len())
            }
        }
    }

    /// Whether the body has ended (a close-delimited body ends with the connection).
    pub fn done(&self) -> bool {
        match self {
            Framing::Chunked(c) => matches!(c.state, ChunkState::Done),
            Framing::Length(left) => *left == 0,
            Framing::UntilClose => false,
        }
    }
}

#[derive(Default)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to the blank line.
    Trailer,
    Done,
}

/// An incremental decoder of the chunked transfer coding.
#[derive(Default)]
pub struct Chunked {
    state: ChunkState,
    line: Vec<u8>,
}

impl Chunked {
    fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data(left) => {
                    let take = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    sink(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let Some(line) = self.take_line(input, &mut i)? else {
                        break;
                    };
                    self.state = match self.state {
                        ChunkState::Size => {
                            let text = std::str::from_utf8(&line).unwrap_or_default();
                            let hex = text.split(';').next().unwrap_or_default().trim();
                            match u64::from_str_radix(hex, 16) {
                                Ok(0) => ChunkState::Trailer,
                                Ok(size) => ChunkState::Data(size),
                                Err(_) => {
                                    return Err(format!(
                                        "malformed chunk-size line {:?}",
                                        String::from_utf8_lossy(&line)
                                    )
                                    .into())
                                }
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => {
                            return Err("chunk data longer than its size".into());
                        }
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailer,
                    };
                }
            }
        }
        Ok(i)
    }

    /// The next complete line (without its CRLF), consuming it from `input[*i..]`; `None` when
    /// the line is still incomplete (what there is of it is kept).
    fn take_line(&mut self, input: &[u8], i: &mut usize) -> Result<Option<Vec<u8>>> {
        let rest = &input[*i..];
        let Some(pos) = rest.iter().position(|&b| b == b'\n') else {
            self.line.extend_from_slice(rest);
            *i = input.len();
            if self.line.len() > MAX_LINE {
                return Err("chunk-size or trailer line too long".into());
            }
            return Ok(None);
        };
        self.line.extend_from_slice(&rest[..pos]);
        *i += pos + 1;
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }
}

/// One chunk of the chunked transfer coding.
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(wire: &[u8], piece: usize) -> (Vec<u8>, usize, bool) {
        let mut framing = Framing::Chunked(Chunked::default());
        let mut out = Vec::new();
        let mut used = 0;
        for part in wire.chunks(piece) {
            used += framing
                .feed(part, &mut |b| out.extend_from_slice(b))
                .expect("valid chunked body");
            if framing.done() {
                break;
            }
        }
        (out, used, framing.done())
    }

    #[test]
    fn chunked_split_anywhere() {
        let mut wire = Vec::new();
        chunk(&mut wire, b"data: one\n\n");
        chunk(&mut wire, b"data: [DONE]\n\n");
        wire.extend_from_slice(b"0;ext=1\r\nx-trailer: y\r\n\r\n");
        let len = wire.len();
        wire.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        for piece in 1..=wire.len() {
            let (out, used, done) = decode_in_pieces(&wire, piece);
            assert_eq!(out, b"data: one\n\ndata: [DONE]\n\n", "piece {piece}");
            assert!(done);
            // The decoder stops at the end of the body: what follows is the next message's.
            assert_eq!(used, len, "piece {piece}");
        }
    }

    #[test]
    fn chunked_errors() {
        let mut framing = Framing::Chunked(Chunked::default());
        assert!(framing.feed(b"zz\r\n", &mut |_| {}).is_err());
        let mut framing = Framing::Chunked(Chunked::default());
        assert!(framing.feed(b"1\r\nab\r\n", &mut |_| {}).is_err());
    }

    #[test]
    fn heads() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: gzip, Chunked\r\n\r\nrest";
        let end = head_end(raw).expect("complete");
        assert_eq!(&raw[end..], b"rest");
        let head = Head::parse(&raw[..end]).expect("valid");
        assert_eq!(head.start, "HTTP/1.1 200 OK");
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        assert!(matches!(head.framing(), Ok(Framing::Chunked(_))));
    }
}
