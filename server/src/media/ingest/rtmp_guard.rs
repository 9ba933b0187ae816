//! What a hostile RTMP peer must not get past: the bounds the chunk reader
//! ([`super::rtmp_chunks`]) holds every peer to, and the check of command messages before their
//! AMF0 is decoded.
//!
//! scuffle-amf0 0.2.4 sizes its collections from the counts a peer declares: an AMF0 ECMA array
//! of 4 billion entries makes a hash table whose control bytes alone are gigabytes, written at
//! once (found by our fuzz run: 4 GB resident from a 1 KB message), and deep nesting recurses
//! without a bound. So a command whose counts exceed its own length, whose values nest deeper
//! than [`MAX_DEPTH`], or which holds a type no command uses, is refused before decoding.

/// C0 + C1 + C2, which come before the first chunk.
pub const HANDSHAKE: usize = 1 + 1536 + 1536;
/// Bounds on the peer's chunk size: no encoder goes below the default or past 64 KiB.
const MIN_CHUNK: usize = 128;
const MAX_CHUNK: usize = 64 * 1024;
/// Commands are a few hundred bytes (connect, createStream, publish).
pub const MAX_COMMAND: u32 = 64 * 1024;
/// A message of any other kind (RTMP's length field stops at 16 MiB): a 4K keyframe at a high
/// bitrate is a few megabytes.
pub const MAX_MESSAGE: u32 = 8 * 1024 * 1024;
/// Bytes held in unfinished messages over all chunk streams of a connection.
pub const MAX_BUFFERED: usize = 32 * 1024 * 1024;
/// Encoders use a handful of chunk streams (control, commands, audio, video, data).
pub const MAX_CHUNK_STREAMS: usize = 64;
/// Objects within objects: real commands nest two levels deep.
const MAX_DEPTH: usize = 32;

/// Why a peer's connection ends.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("a new message header on chunk stream {0} before its message ended")]
    HeaderOverUnfinished(u32),
    #[error("chunk stream {0} continues a message it never began")]
    NeverBegun(u32),
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("more than {MAX_BUFFERED} bytes in unfinished messages")]
    Buffered,
    #[error("a message of type {kind} and {length} bytes")]
    MessageLength { kind: u8, length: u32 },
    #[error("a chunk size of {0} bytes")]
    ChunkSize(usize),
    #[error("a short {0} message")]
    Short(&'static str),
    #[error("{0}")]
    Command(String),
}

/// RTMP message types of commands (AMF3 and AMF0 encoded).
pub const COMMAND_AMF3: u8 = 17;
pub const COMMAND_AMF0: u8 = 20;

/// Checks a message's declared length against what its kind may take.
pub fn message_length(kind: u8, length: u32) -> Result<(), GuardError> {
    let max = match kind {
        COMMAND_AMF0 | COMMAND_AMF3 => MAX_COMMAND,
        _ => MAX_MESSAGE,
    };
    if length > max {
        return Err(GuardError::MessageLength { kind, length });
    }
    Ok(())
}

/// The chunk size a Set Chunk Size message asks for, if it is in bounds.
pub fn chunk_size(payload: &[u8]) -> Result<usize, GuardError> {
    let size = be32(payload)
        .map(|x| x & 0x7FFF_FFFF)
        .ok_or(GuardError::Short("Set Chunk Size"))? as usize;
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&size) {
        return Err(GuardError::ChunkSize(size));
    }
    Ok(size)
}

/// Checks a whole AMF0 command message before it is decoded.
pub fn check_command(mut payload: &[u8]) -> Result<(), GuardError> {
    while !payload.is_empty() {
        payload = amf0_value(payload, 0).map_err(GuardError::Command)?;
    }
    Ok(())
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
    let u32_at = |r: &[u8]| be32(r).map(|x| x as usize).ok_or_else(short);
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

/// The big-endian u32 at the front of `b` (RTMP's and AMF0's four-byte fields).
pub(super) fn be32(b: &[u8]) -> Option<u32> {
    b.get(..4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
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

    fn command(args: &[u8]) -> Vec<u8> {
        let mut c = vec![0x02, 0, 7];
        c.extend_from_slice(b"connect");
        c.push(0);
        c.extend_from_slice(&1f64.to_be_bytes());
        c.extend_from_slice(args);
        c
    }

    #[test]
    fn a_real_connect_passes() {
        // connect's command object: {app: "live", tcUrl: "rtmp://h/live"}.
        let mut object = vec![0x03];
        for (k, v) in [("app", "live"), ("tcUrl", "rtmp://127.0.0.1:1935/live")] {
            object.extend_from_slice(&(k.len() as u16).to_be_bytes());
            object.extend_from_slice(k.as_bytes());
            object.push(0x02);
            object.extend_from_slice(&(v.len() as u16).to_be_bytes());
            object.extend_from_slice(v.as_bytes());
        }
        object.extend_from_slice(&[0, 0, 9]);
        check_command(&command(&object)).unwrap();
    }

    #[test]
    fn declared_counts_beyond_the_message_are_refused() {
        let e = check_command(&command(&[0x08, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 9])).unwrap_err();
        assert!(e.to_string().contains("ECMA array"), "{e}");
        let e = check_command(&command(&[0x0A, 0xFF, 0xFF, 0xFF, 0xF0])).unwrap_err();
        assert!(e.to_string().contains("strict array"), "{e}");
        // Deep nesting: strict arrays of one strict array…
        let nested: Vec<u8> = (0..100).flat_map(|_| [0x0A, 0, 0, 0, 1]).collect();
        let e = check_command(&command(&nested)).unwrap_err();
        assert!(e.to_string().contains("nested"), "{e}");
        // Types no command uses, and values cut short.
        assert!(check_command(&command(&[0x11])).is_err());
        assert!(check_command(&command(&[0x02, 0, 9, b'x'])).is_err());
    }

    #[test]
    fn chunk_sizes_in_bounds_only() {
        assert_eq!(chunk_size(&4096u32.to_be_bytes()).unwrap(), 4096);
        assert!(chunk_size(&0x7FFF_FFFFu32.to_be_bytes()).is_err());
        assert!(chunk_size(&1u32.to_be_bytes()).is_err());
        assert!(chunk_size(&[0, 0]).is_err());
    }
}
