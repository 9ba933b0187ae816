//! The RTMP chunk stream (RTMP 1.0 §5.3): whole messages out of a peer's chunks, and chunks out
//! of our messages.
//!
//! Real publishers compress chunk headers in ways a strict reading of the specification does
//! not foresee, so the reader takes what they send:
//! - librtmp (GStreamer's `rtmpsink`, OBS's ancestor) begins chunk streams with a type 1 header
//!   (no message stream id): the fields it leaves out are taken as zero, as nginx-rtmp does;
//! - a type 3 header that begins a message repeats the previous delta, and after a type 0
//!   header that delta is the type 0 timestamp (§5.3.1.2.4), as ffmpeg reads it;
//! - a type 3 chunk after an extended timestamp carries the extended field again.
//!
//! And it refuses what would harm the server ([`super::rtmp_guard`]): sizes out of bounds,
//! a new header over an unfinished message, a chunk stream continuing a message it never
//! began, more chunk streams or buffered bytes than any encoder uses, and command messages
//! whose AMF0 would make the decoder allocate without bound.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

// The command message types are the guard's: it bounds commands tighter than media.
use super::rtmp_guard::{self, be32, GuardError};
pub use super::rtmp_guard::{COMMAND_AMF0, COMMAND_AMF3};

pub const SET_CHUNK_SIZE: u8 = 1;
pub const ABORT: u8 = 2;
pub const ACKNOWLEDGEMENT: u8 = 3;
pub const USER_CONTROL: u8 = 4;
pub const WINDOW_ACK_SIZE: u8 = 5;
pub const SET_PEER_BANDWIDTH: u8 = 6;
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA_AMF3: u8 = 15;
pub const DATA_AMF0: u8 = 18;

/// The chunk size every peer starts with.
pub const DEFAULT_CHUNK: usize = 128;

/// One whole message from the peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: u8,
    /// The message stream id (0 for the connection's own messages).
    pub stream: u32,
    /// Milliseconds, as the peer counts them (wrapping at 2^32).
    pub timestamp: u32,
    pub payload: Bytes,
}

/// The last header seen on a chunk stream, what the next compressed header builds on.
#[derive(Default, Clone, Copy)]
struct Header {
    timestamp: u32,
    delta: u32,
    length: u32,
    kind: u8,
    stream: u32,
    extended: bool,
}

#[derive(Default)]
struct ChunkStream {
    header: Header,
    /// Whether a type 0 or 1 header gave this chunk stream a length and a type.
    began: bool,
    /// The unfinished message's bytes so far.
    partial: BytesMut,
}

impl ChunkStream {
    fn unfinished(&self) -> bool {
        (self.partial.len() as u32) < self.header.length && !self.partial.is_empty()
    }
}

pub struct ChunkReader {
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    /// Bytes held in unfinished messages, over all chunk streams.
    buffered: usize,
}

impl Default for ChunkReader {
    fn default() -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK,
            streams: HashMap::new(),
            buffered: 0,
        }
    }
}

impl ChunkReader {
    /// The next whole message at the front of `buf`, taking the chunks it reads out of `buf`;
    /// `None` when more bytes are needed. Set Chunk Size and Abort are applied here, where the
    /// chunks that follow them depend on them, and are not returned.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, GuardError> {
        loop {
            let Some((used, message)) = self.chunk(buf)? else {
                return Ok(None);
            };
            buf.advance(used);
            let Some(message) = message else { continue };
            match message.kind {
                SET_CHUNK_SIZE => self.chunk_size = rtmp_guard::chunk_size(&message.payload)?,
                ABORT => {
                    let id = be32(&message.payload).ok_or(GuardError::Short("Abort"))?;
                    if let Some(s) = self.streams.get_mut(&id) {
                        self.buffered -= s.partial.len();
                        s.partial.clear();
                    }
                }
                COMMAND_AMF0 => {
                    rtmp_guard::check_command(&message.payload)?;
                    return Ok(Some(message));
                }
                COMMAND_AMF3 => {
                    // An AMF3 command is AMF0 after one format byte.
                    rtmp_guard::check_command(message.payload.get(1..).unwrap_or_default())?;
                    return Ok(Some(message));
                }
                _ => return Ok(Some(message)),
            }
        }
    }

    /// Reads one chunk at the front of `b`: the bytes it takes and the message it completes,
    /// or `None` if the chunk is not all here yet (nothing changes then).
    fn chunk(&mut self, b: &[u8]) -> Result<Option<(usize, Option<Message>)>, GuardError> {
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
        let size = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = b.get(at..at + size) else {
            return Ok(None);
        };
        at += size;
        if !self.streams.contains_key(&id) && self.streams.len() >= rtmp_guard::MAX_CHUNK_STREAMS {
            return Err(GuardError::TooManyChunkStreams);
        }
        let stream = self.streams.get(&id);
        let before = stream.map(|s| s.header).unwrap_or_default();
        let began = stream.is_some_and(|s| s.began);
        let unfinished = stream.is_some_and(ChunkStream::unfinished);
        if fmt < 3 && unfinished {
            return Err(GuardError::HeaderOverUnfinished(id));
        }
        if fmt >= 2 && !began {
            return Err(GuardError::NeverBegun(id));
        }
        let mut header = before;
        let be24 = |x: &[u8]| u32::from_be_bytes([0, x[0], x[1], x[2]]);
        let field = if fmt < 3 { be24(&h[0..3]) } else { 0 };
        if fmt < 3 {
            header.extended = field == 0xFF_FFFF;
        }
        if fmt < 2 {
            header.length = be24(&h[3..6]);
            header.kind = h[6];
        }
        if fmt == 0 {
            header.stream = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        let field = if header.extended {
            let Some(x) = b.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            be32(x).unwrap_or_default()
        } else {
            field
        };
        if !unfinished {
            match fmt {
                0 => (header.timestamp, header.delta) = (field, field),
                1 | 2 => {
                    header.delta = field;
                    header.timestamp = before.timestamp.wrapping_add(field);
                }
                _ => header.timestamp = before.timestamp.wrapping_add(before.delta),
            }
            rtmp_guard::message_length(header.kind, header.length)?;
        }
        let received = stream.map_or(0, |s| if unfinished { s.partial.len() } else { 0 });
        let take = (header.length as usize - received).min(self.chunk_size);
        let Some(body) = b.get(at..at + take) else {
            return Ok(None);
        };
        at += take;
        if self.buffered + take > rtmp_guard::MAX_BUFFERED {
            return Err(GuardError::Buffered);
        }
        // The chunk is all here: it changes the chunk stream.
        let stream = self.streams.entry(id).or_default();
        stream.header = header;
        stream.began |= fmt < 2;
        if received + take == header.length as usize {
            let payload = if received == 0 {
                Bytes::copy_from_slice(body)
            } else {
                self.buffered -= stream.partial.len();
                stream.partial.extend_from_slice(body);
                std::mem::take(&mut stream.partial).freeze()
            };
            let message = Message {
                kind: header.kind,
                stream: header.stream,
                timestamp: header.timestamp,
                payload,
            };
            return Ok(Some((at, Some(message))));
        }
        stream.partial.extend_from_slice(body);
        self.buffered += take;
        Ok(Some((at, None)))
    }
}

/// Writes one message as chunks of `chunk_size`: a type 0 header, then type 3 headers.
pub fn write(out: &mut Vec<u8>, chunk_size: usize, csid: u8, m: &Message) {
    debug_assert!((2..64).contains(&csid));
    let extended = m.timestamp >= 0xFF_FFFF;
    out.push(csid);
    out.extend_from_slice(&m.timestamp.min(0xFF_FFFF).to_be_bytes()[1..]);
    out.extend_from_slice(&(m.payload.len() as u32).to_be_bytes()[1..]);
    out.push(m.kind);
    out.extend_from_slice(&m.stream.to_le_bytes());
    for (i, part) in m.payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xC0 | csid);
        }
        if extended {
            out.extend_from_slice(&m.timestamp.to_be_bytes());
        }
        out.extend_from_slice(part);
    }
    if m.payload.is_empty() && extended {
        out.extend_from_slice(&m.timestamp.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, stream: u32, timestamp: u32, payload: &[u8]) -> Message {
        Message {
            kind,
            stream,
            timestamp,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn read_all(reader: &mut ChunkReader, bytes: &[u8]) -> Result<Vec<Message>, GuardError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = reader.read(&mut buf)? {
            out.push(m);
        }
        assert!(buf.is_empty(), "{} bytes left", buf.len());
        Ok(out)
    }

    #[test]
    fn what_we_write_reads_back_in_pieces_of_any_size() {
        let sent = [
            message(VIDEO, 1, 0, &[0x17; 5000]),
            message(AUDIO, 1, 23, &[0xAF; 300]),
            message(VIDEO, 1, 0x0100_0000, &[0x27; 200]), // extended timestamp
        ];
        let mut bytes = Vec::new();
        for (m, csid) in sent.iter().zip([6, 4, 6]) {
            write(&mut bytes, DEFAULT_CHUNK, csid, m);
        }
        for piece in [1, 7, 129, 100_000] {
            let mut reader = ChunkReader::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for p in bytes.chunks(piece) {
                buf.extend_from_slice(p);
                while let Some(m) = reader.read(&mut buf).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, sent);
            assert_eq!(reader.buffered, 0);
        }
    }

    #[test]
    fn librtmp_compressed_first_headers_and_type_3_deltas() {
        // librtmp's acknowledgement: a type 1 header on a chunk stream never used before.
        let mut b = vec![0x42, 0, 0, 0, 0, 0, 4, ACKNOWLEDGEMENT, 0, 0, 0x10, 0];
        // A type 0 audio message at 1000 ms, then a type 3 header beginning the next message:
        // 2000 ms (the type 0 timestamp is the delta), then a type 2 delta of 21, then type 3.
        b.extend_from_slice(&[0x04, 0, 0x03, 0xE8, 0, 0, 1, AUDIO, 1, 0, 0, 0, 0xAF]);
        b.extend_from_slice(&[0xC4, 0xAF]);
        b.extend_from_slice(&[0x84, 0, 0, 21, 0xAF]);
        b.extend_from_slice(&[0xC4, 0xAF]);
        let got = read_all(&mut ChunkReader::default(), &b).unwrap();
        assert_eq!(got[0], message(ACKNOWLEDGEMENT, 0, 0, &[0, 0, 0x10, 0]));
        let times: Vec<u32> = got[1..].iter().map(|m| m.timestamp).collect();
        assert_eq!(times, [1000, 2000, 2021, 2042]);
        assert!(got[1..].iter().all(|m| m.stream == 1));
    }

    #[test]
    fn set_chunk_size_and_abort_apply_to_what_follows() {
        let mut b = Vec::new();
        write(
            &mut b,
            DEFAULT_CHUNK,
            2,
            &message(SET_CHUNK_SIZE, 0, 0, &4096u32.to_be_bytes()),
        );
        // Half a message on chunk stream 6, aborted, then a whole one in one 4096-byte chunk.
        let mut half = Vec::new();
        write(&mut half, 4096, 6, &message(VIDEO, 1, 0, &[1; 5000]));
        b.extend_from_slice(&half[..12 + 4096]);
        write(&mut b, 4096, 2, &message(ABORT, 0, 0, &6u32.to_be_bytes()));
        write(&mut b, 4096, 6, &message(VIDEO, 1, 40, &[2; 3000]));
        let mut reader = ChunkReader::default();
        let got = read_all(&mut reader, &b).unwrap();
        assert_eq!(got, [message(VIDEO, 1, 40, &[2; 3000])]);
        assert_eq!(reader.buffered, 0);
    }

    #[test]
    fn chunk_stream_abuse_is_refused() {
        // A new header while the message is unfinished.
        let mut b = Vec::new();
        write(&mut b, DEFAULT_CHUNK, 3, &message(VIDEO, 1, 0, &[0; 200]));
        b.truncate(12 + DEFAULT_CHUNK);
        write(&mut b, DEFAULT_CHUNK, 3, &message(VIDEO, 1, 0, &[0; 10]));
        assert!(read_all(&mut ChunkReader::default(), &b).is_err());
        // A chunk size out of range.
        let mut b = Vec::new();
        let set = message(SET_CHUNK_SIZE, 0, 0, &0x7FFF_FFFFu32.to_be_bytes());
        write(&mut b, DEFAULT_CHUNK, 2, &set);
        assert!(matches!(
            read_all(&mut ChunkReader::default(), &b),
            Err(GuardError::ChunkSize(_))
        ));
        // Continuing a message never begun.
        assert!(read_all(&mut ChunkReader::default(), &[0xC5, 1, 2, 3]).is_err());
        // A command longer than any command.
        let mut r = ChunkReader::default();
        let mut buf = BytesMut::from(&[0x03, 0, 0, 0, 0x10, 0, 0, COMMAND_AMF0, 0, 0, 0, 0][..]);
        assert!(matches!(
            r.read(&mut buf),
            Err(GuardError::MessageLength { .. })
        ));
    }

    #[test]
    fn buffered_bytes_are_bounded_over_chunk_streams() {
        let mut reader = ChunkReader::default();
        let mut b = Vec::new();
        let set = message(SET_CHUNK_SIZE, 0, 0, &65536u32.to_be_bytes());
        write(&mut b, DEFAULT_CHUNK, 2, &set);
        let mut buf = BytesMut::from(&b[..]);
        assert!(reader.read(&mut buf).unwrap().is_none());
        let big = message(VIDEO, 1, 0, &vec![0; rtmp_guard::MAX_MESSAGE as usize]);
        let mut refused = false;
        for csid in 3..10u8 {
            let mut m = Vec::new();
            write(&mut m, 65536, csid, &big);
            m.truncate(m.len() - 1 - 65536); // each message a whole chunk short of its end
            buf.extend_from_slice(&m);
            match reader.read(&mut buf) {
                Ok(None) => {}
                Err(GuardError::Buffered) => {
                    refused = true;
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(refused, "{} bytes held", reader.buffered);
    }
}
