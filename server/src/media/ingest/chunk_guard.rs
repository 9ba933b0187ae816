//! Reads an RTMP peer's bytes alongside scuffle-rtmp and stops the ones that would harm the whole
//! server before scuffle-rtmp parses them.
//!
//! scuffle-rtmp 0.2.3 / scuffle-amf0 0.2.4 size their collections from the counts a peer
//! declares: an AMF0 ECMA array of 4 billion entries makes a hash table whose control bytes alone
//! are gigabytes, written at once (found by our fuzz run: 4 GB resident from a 1 KB message), and
//! deep nesting recurses without a bound. So the guard follows the chunk stream (RTMP 1.0 §5.3),
//! reassembles AMF0 command messages (the only ones scuffle-rtmp decodes) and refuses one whose
//! counts exceed its own length or whose values nest deeper than [`MAX_DEPTH`].
//!
//! It is stricter than the specification needs in two places, so that its view of the stream can
//! never differ from scuffle-rtmp's: a new message header on a chunk stream whose message is
//! unfinished, and a chunk longer than what its message has left, are refused.

use std::collections::HashMap;

/// C0 + C1 + C2, which come before the first chunk.
pub const HANDSHAKE: usize = 1 + 1536 + 1536;
/// scuffle-rtmp's bounds on the peer's chunk size.
const MIN_CHUNK: usize = 128;
const MAX_CHUNK: usize = 64 * 1024;
/// Commands are a few hundred bytes (connect, createStream, publish).
const MAX_COMMAND: u32 = 64 * 1024;
/// Objects within objects: real commands nest two levels deep.
const MAX_DEPTH: usize = 32;

const SET_CHUNK_SIZE: u8 = 1;
const COMMAND_AMF0: u8 = 20;

#[derive(Default)]
struct ChunkStream {
    extended: bool,
    length: u32,
    kind: u8,
    received: u32,
    /// The message so far, kept for commands only.
    payload: Vec<u8>,
}

pub struct ChunkGuard {
    handshake_left: usize,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    /// Bytes of an unfinished chunk.
    pending: Vec<u8>,
}

impl Default for ChunkGuard {
    fn default() -> Self {
        ChunkGuard {
            handshake_left: HANDSHAKE,
            chunk_size: MIN_CHUNK,
            streams: HashMap::new(),
            pending: Vec::new(),
        }
    }
}

impl ChunkGuard {
    /// Takes the next bytes from the peer; an error says why the connection must end.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        let skip = self.handshake_left.min(data.len());
        self.handshake_left -= skip;
        data = &data[skip..];
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(data);
        let mut at = 0;
        let result = loop {
            match self.chunk(&pending[at..]) {
                Ok(Some(used)) => at += used,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        pending.drain(..at);
        self.pending = pending;
        result
    }

    /// Reads one chunk from the front of `b`: the bytes it took, or None if it is not all here.
    fn chunk(&mut self, b: &[u8]) -> Result<Option<usize>, String> {
        let Some(&b0) = b.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (id, mut at) = match b0 & 0x3F {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(None),
            },
            1 => match b.get(1..3) {
                Some(x) => (64 + u32::from(x[0]) + 256 * u32::from(x[1]), 3),
                None => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let header = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = b.get(at..at + header) else {
            return Ok(None);
        };
        at += header;
        let be24 = |x: &[u8]| u32::from_be_bytes([0, x[0], x[1], x[2]]);
        // What this chunk makes of its stream's state; applied only once it is all here.
        let stream = self.streams.get(&id);
        let (mut extended, mut length, mut kind, received) = stream.map_or((false, 0, 0, 0), |s| {
            (s.extended, s.length, s.kind, s.received)
        });
        let began = stream.is_some_and(|s| s.length > 0 || s.kind > 0);
        let unfinished = received < length;
        if fmt < 3 {
            if unfinished {
                return Err(format!(
                    "a new message header on chunk stream {id} before its message ended"
                ));
            }
            extended = be24(&h[0..3]) == 0xFF_FFFF;
            if fmt < 2 {
                length = be24(&h[3..6]);
                kind = h[6];
            }
        }
        if fmt >= 2 && !began {
            return Err(format!(
                "chunk stream {id} continues a message it never began"
            ));
        }
        if extended {
            at += 4;
        }
        let received = if unfinished { received } else { 0 };
        if !unfinished && kind == COMMAND_AMF0 && length > MAX_COMMAND {
            return Err(format!("a command of {length} bytes"));
        }
        let take = ((length - received) as usize).min(self.chunk_size);
        let Some(body) = b.get(at..at + take) else {
            return Ok(None);
        };
        at += take;
        let stream = self.streams.entry(id).or_default();
        (stream.extended, stream.length, stream.kind) = (extended, length, kind);
        if !unfinished {
            stream.payload.clear();
        }
        stream.received = received + take as u32;
        let keep = matches!(kind, COMMAND_AMF0 | SET_CHUNK_SIZE);
        if keep {
            stream.payload.extend_from_slice(body);
        }
        if stream.received == length && keep {
            let payload = std::mem::take(&mut stream.payload);
            self.message(kind, &payload)?;
        }
        Ok(Some(at))
    }

    fn message(&mut self, kind: u8, payload: &[u8]) -> Result<(), String> {
        match kind {
            SET_CHUNK_SIZE => {
                let size = payload
                    .get(..4)
                    .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]) & 0x7FFF_FFFF)
                    .ok_or("a short Set Chunk Size")? as usize;
                if !(MIN_CHUNK..=MAX_CHUNK).contains(&size) {
                    return Err(format!("a chunk size of {size} bytes"));
                }
                self.chunk_size = size;
                Ok(())
            }
            _ => {
                let mut rest = payload;
                while !rest.is_empty() {
                    rest = amf0_value(rest, 0)?;
                }
                Ok(())
            }
        }
    }
}

/// Checks one AMF0 value at the front of `b` and answers what follows it. Anything this does not
/// understand, or that is cut short, is refused: a command that is not plain AMF0 has no use
/// here, and being stricter than scuffle-amf0 means no value it decodes went unchecked.
fn amf0_value(b: &[u8], depth: usize) -> Result<&[u8], String> {
    if depth > MAX_DEPTH {
        return Err(format!("AMF0 values nested more than {MAX_DEPTH} deep"));
    }
    let short = || "a cut-short AMF0 value".to_string();
    let (&marker, rest) = b.split_first().ok_or_else(short)?;
    let after = |n: usize| rest.get(n..).ok_or_else(short);
    let u32_at = |r: &[u8]| {
        r.get(..4)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as usize)
            .ok_or_else(short)
    };
    match marker {
        0 => after(8),                                 // number
        1 => after(1),                                 // boolean
        2 => after(2 + be16(rest).ok_or_else(short)?), // string
        5 | 6 => Ok(rest),                             // null, undefined
        3 => properties(rest, depth),                  // object
        8 => {
            // ECMA array: a count, then properties. Each takes at least 3 bytes.
            let count = u32_at(rest)?;
            let body = &rest[4..];
            if count > body.len() / 3 {
                return Err(format!(
                    "an AMF0 ECMA array of {count} entries in {} bytes",
                    body.len()
                ));
            }
            properties(body, depth)
        }
        10 => {
            // Strict array: a count, then that many values of at least a byte each.
            let count = u32_at(rest)?;
            let mut body = &rest[4..];
            if count > body.len() {
                return Err(format!(
                    "an AMF0 strict array of {count} values in {} bytes",
                    body.len()
                ));
            }
            for _ in 0..count {
                body = amf0_value(body, depth + 1)?;
            }
            Ok(body)
        }
        other => Err(format!("AMF0 type {other} in a command")),
    }
}

/// The big-endian u16 at the front of `b` (AMF0's string and key lengths).
fn be16(b: &[u8]) -> Option<usize> {
    b.get(..2)
        .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
}

/// Key/value pairs up to the empty key and object-end marker.
fn properties(mut b: &[u8], depth: usize) -> Result<&[u8], String> {
    loop {
        let len = be16(b).ok_or("a cut-short AMF0 object")?;
        if len == 0 {
            return match b.get(2) {
                Some(9) => Ok(&b[3..]),
                _ => Err("an AMF0 object without its end marker".into()),
            };
        }
        let value = b.get(2 + len..).ok_or("a cut-short AMF0 key")?;
        b = amf0_value(value, depth + 1)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0x03, 0, 0, 0];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        m.push(kind);
        m.extend_from_slice(&[0, 0, 0, 0]);
        for (i, part) in payload.chunks(MIN_CHUNK).enumerate() {
            if i > 0 {
                m.push(0xC3); // fmt 3, chunk stream 3
            }
            m.extend_from_slice(part);
        }
        m
    }

    fn command(args: &[u8]) -> Vec<u8> {
        let mut c = vec![0x02, 0, 7];
        c.extend_from_slice(b"connect");
        c.push(0);
        c.extend_from_slice(&1f64.to_be_bytes());
        c.extend_from_slice(args);
        c
    }

    fn guard_after_handshake() -> ChunkGuard {
        let mut g = ChunkGuard::default();
        g.feed(&[3u8; HANDSHAKE]).unwrap();
        g
    }

    #[test]
    fn a_real_connect_passes_in_pieces_of_any_size() {
        // connect's command object: {app: "live", tcUrl: "rtmp://h/live"}, over two chunks.
        let mut object = vec![0x03];
        for (k, v) in [("app", "live"), ("tcUrl", "rtmp://127.0.0.1:1935/live/with/a/long/path/to/need/two/chunks/of/the/default/size/x")] {
            object.extend_from_slice(&(k.len() as u16).to_be_bytes());
            object.extend_from_slice(k.as_bytes());
            object.push(0x02);
            object.extend_from_slice(&(v.len() as u16).to_be_bytes());
            object.extend_from_slice(v.as_bytes());
        }
        object.extend_from_slice(&[0, 0, 9]);
        let bytes = chunked(COMMAND_AMF0, &command(&object));
        assert!(bytes.len() > MIN_CHUNK + 12);
        for piece in [1, 7, 1000] {
            let mut g = guard_after_handshake();
            for p in bytes.chunks(piece) {
                g.feed(p).unwrap();
            }
            assert!(g.pending.is_empty());
        }
    }

    #[test]
    fn declared_counts_beyond_the_message_are_refused() {
        let mut g = guard_after_handshake();
        let e = g
            .feed(&chunked(
                COMMAND_AMF0,
                &command(&[0x08, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 9]),
            ))
            .unwrap_err();
        assert!(e.contains("ECMA array"), "{e}");
        let mut g = guard_after_handshake();
        let e = g
            .feed(&chunked(
                COMMAND_AMF0,
                &command(&[0x0A, 0xFF, 0xFF, 0xFF, 0xF0]),
            ))
            .unwrap_err();
        assert!(e.contains("strict array"), "{e}");
        // Deep nesting: strict arrays of one strict array…
        let mut g = guard_after_handshake();
        let nested: Vec<u8> = (0..100).flat_map(|_| [0x0A, 0, 0, 0, 1]).collect();
        assert!(g
            .feed(&chunked(COMMAND_AMF0, &command(&nested)))
            .unwrap_err()
            .contains("nested"));
    }

    #[test]
    fn chunk_stream_abuse_is_refused() {
        // A new header while the message is unfinished.
        let mut g = guard_after_handshake();
        let mut b = chunked(COMMAND_AMF0, &command(&[0x05; 200]));
        b.truncate(12 + MIN_CHUNK);
        b.extend_from_slice(&chunked(COMMAND_AMF0, &command(&[])));
        assert!(g.feed(&b).is_err());
        // A chunk size out of scuffle-rtmp's range.
        let mut g = guard_after_handshake();
        let set = chunked(SET_CHUNK_SIZE, &0x7FFF_FFFFu32.to_be_bytes());
        assert!(g.feed(&set).unwrap_err().contains("chunk size"));
        // Continuing a message never begun.
        let mut g = guard_after_handshake();
        assert!(g.feed(&[0xC5, 1, 2, 3]).is_err());
    }

    #[test]
    fn audio_and_video_pass_without_being_kept() {
        let mut g = guard_after_handshake();
        let big = vec![0x17u8; 100_000];
        g.feed(&chunked(9, &big)).unwrap();
        assert!(g.pending.is_empty());
        assert!(g.streams.values().all(|s| s.payload.is_empty()));
    }
}
