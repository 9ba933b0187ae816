//! A cheap RTMP publisher: replays already encoded FLV tags at real-time speed, so one benchmark
//! process can feed hundreds of streams without an encoder per stream. Chunking comes from
//! scuffle-rtmp and AMF0 from scuffle-amf0; the command flow is the one OBS uses (connect,
//! createStream, publish).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use scuffle_amf0::{Amf0Decoder, Amf0Encoder, Amf0Object, Amf0Value};
use scuffle_rtmp::chunk::reader::ChunkReader;
use scuffle_rtmp::chunk::writer::ChunkWriter;
use scuffle_rtmp::chunk::Chunk;
use scuffle_rtmp::messages::MessageType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::media::Tag;

const CHUNK_SIZE: usize = 4096;

/// What a publish run delivered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    pub tags: u64,
    pub bytes: u64,
    /// The largest lateness of a tag behind its real-time schedule.
    pub max_late_ms: u64,
}

struct Conn {
    socket: TcpStream,
    writer: ChunkWriter,
    reader: ChunkReader,
    inbox: BytesMut,
}

impl Conn {
    async fn send(&mut self, chunk: Chunk) -> anyhow::Result<()> {
        let mut out = Vec::with_capacity(chunk.payload.len() + 64);
        self.writer.write_chunk(&mut out, chunk)?;
        self.socket.write_all(&out).await?;
        Ok(())
    }

    async fn command(&mut self, stream: u32, values: &[Amf0Value<'_>]) -> anyhow::Result<()> {
        let mut payload = Vec::new();
        let mut enc = Amf0Encoder::new(&mut payload);
        for v in values {
            match v {
                Amf0Value::String(s) => enc.encode_string(s.as_str())?,
                Amf0Value::Number(n) => enc.encode_number(*n)?,
                Amf0Value::Object(o) => enc.encode_object(o)?,
                _ => enc.encode_null()?,
            }
        }
        let csid = if stream == 0 { 3 } else { 8 };
        self.send(Chunk::new(
            csid,
            0,
            MessageType::CommandAMF0,
            stream,
            Bytes::from(payload),
        ))
        .await
    }

    /// Reads messages until a command whose values satisfy `want`; answers those values.
    async fn wait_for(
        &mut self,
        what: &str,
        want: impl Fn(&[Amf0Value<'static>]) -> bool,
    ) -> anyhow::Result<Vec<Amf0Value<'static>>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(chunk) = self.reader.read_chunk(&mut self.inbox)? {
                match chunk.message_header.msg_type_id {
                    MessageType::SetChunkSize if chunk.payload.len() >= 4 => {
                        let size = u32::from_be_bytes(chunk.payload[..4].try_into()?) as usize;
                        self.reader.update_max_chunk_size(size);
                    }
                    MessageType::CommandAMF0 => {
                        let values: Vec<Amf0Value<'static>> =
                            Amf0Decoder::from_buf(chunk.payload.clone())
                                .decode_all()
                                .unwrap_or_default()
                                .into_iter()
                                .map(Amf0Value::into_owned)
                                .collect();
                        if want(&values) {
                            return Ok(values);
                        }
                        if mentions(&values, "error") || mentions(&values, "BadName") {
                            bail!("server refused {what}: {values:?}");
                        }
                    }
                    _ => {}
                }
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline.into(), self.socket.read(&mut buf))
                .await
                .with_context(|| format!("no answer to {what}"))??;
            if n == 0 {
                bail!("server closed the connection during {what}");
            }
            self.inbox.extend_from_slice(&buf[..n]);
        }
    }
}

/// Whether any string in `values` (at any depth) contains `needle`.
fn mentions(values: &[Amf0Value], needle: &str) -> bool {
    values.iter().any(|v| match v {
        Amf0Value::String(s) => s.as_str().contains(needle),
        Amf0Value::Object(o) => o
            .values()
            .any(|v| mentions(std::slice::from_ref(v), needle)),
        Amf0Value::Array(a) => mentions(a, needle),
        _ => false,
    })
}

fn object(pairs: &[(&'static str, &str)]) -> Amf0Value<'static> {
    let mut o = Amf0Object::new();
    for (k, v) in pairs {
        o.insert((*k).into(), Amf0Value::String(v.to_string().into()));
    }
    Amf0Value::Object(o)
}

/// Connects to `addr`, publishes `tags` to `app/name` at real-time speed (looping them) for
/// `seconds`, then closes.
pub async fn publish(
    addr: std::net::SocketAddr,
    app: &str,
    name: &str,
    tags: &[Tag],
    seconds: f64,
) -> anyhow::Result<Published> {
    publish_stamped(addr, app, name, tags, seconds, |at| at).await
}

/// [`publish`], sending each tag due at `at` ms with the RTMP timestamp `stamp(at)`: a
/// publisher whose clock jumps or wraps, for the tests.
pub async fn publish_stamped(
    addr: std::net::SocketAddr,
    app: &str,
    name: &str,
    tags: &[Tag],
    seconds: f64,
    stamp: impl Fn(u64) -> u64,
) -> anyhow::Result<Published> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    // Simple handshake: C0+C1, then S0+S1+S2, then C2 echoes S1.
    let mut c1 = vec![0u8; 1 + 1536];
    c1[0] = 3;
    for (i, b) in c1[9..].iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    socket.write_all(&c1).await?;
    let mut s = vec![0u8; 1 + 1536 * 2];
    socket.read_exact(&mut s).await?;
    socket.write_all(&s[1..1537]).await?;
    let mut c = Conn {
        socket,
        writer: ChunkWriter::default(),
        reader: ChunkReader::default(),
        inbox: BytesMut::new(),
    };
    c.send(Chunk::new(
        2,
        0,
        MessageType::SetChunkSize,
        0,
        Bytes::copy_from_slice(&(CHUNK_SIZE as u32).to_be_bytes()),
    ))
    .await?;
    c.writer.set_chunk_size(CHUNK_SIZE);
    let tc_url = format!("rtmp://{addr}/{app}");
    c.command(
        0,
        &[
            Amf0Value::String("connect".into()),
            Amf0Value::Number(1.0),
            object(&[
                ("app", app),
                ("type", "nonprivate"),
                ("flashVer", "FMLE/3.0 (compatible; liveproc-bench)"),
                ("tcUrl", &tc_url),
            ]),
        ],
    )
    .await?;
    c.wait_for("connect", |v| mentions(v, "_result")).await?;
    c.command(
        0,
        &[
            Amf0Value::String("createStream".into()),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
        ],
    )
    .await?;
    let created = c
        .wait_for("createStream", |v| mentions(v, "_result"))
        .await?;
    let stream = match created.get(3) {
        Some(Amf0Value::Number(n)) => *n as u32,
        _ => 1,
    };
    c.command(
        stream,
        &[
            Amf0Value::String("publish".into()),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            Amf0Value::String(name.to_string().into()),
            Amf0Value::String("live".into()),
        ],
    )
    .await?;
    c.wait_for("publish", |v| mentions(v, "NetStream.Publish.Start"))
        .await?;

    // Drain whatever the server sends from now on (acknowledgements), so it never blocks.
    let (mut rx, mut tx) = c.socket.into_split();
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while matches!(rx.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let media: Vec<&Tag> = tags.iter().filter(|t| t.kind == 8 || t.kind == 9).collect();
    let span = media.last().map_or(1000, |t| t.timestamp + 33);
    let start = Instant::now();
    let end_ms = (seconds * 1000.0) as u64;
    let mut out = Published::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    'outer: for lap in 0u64.. {
        for t in &media {
            let at = lap * u64::from(span) + u64::from(t.timestamp);
            if at >= end_ms {
                break 'outer;
            }
            let due = start + Duration::from_millis(at);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep_until(due.into()).await;
            } else {
                out.max_late_ms = out.max_late_ms.max((now - due).as_millis() as u64);
            }
            let (csid, kind) = if t.kind == 8 {
                (4, MessageType::Audio)
            } else {
                (6, MessageType::Video)
            };
            buf.clear();
            c.writer.write_chunk(
                &mut buf,
                Chunk::new(csid, stamp(at) as u32, kind, stream, t.data.clone()),
            )?;
            tx.write_all(&buf).await?;
            out.tags += 1;
            out.bytes += t.data.len() as u64;
        }
    }
    let _ = tx.shutdown().await;
    drain.abort();
    Ok(out)
}
