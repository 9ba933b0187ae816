//! The server side of one RTMP connection: handshake, then the commands a publisher sends and
//! the answers each kind of client waits for, then its audio and video messages.
//!
//! What the clients of the interop matrix (design/rtmp-interop.md) rely on:
//! - S2 echoes C1 byte for byte in the simple handshake (librtmp compares them); the complex
//!   (digest) handshake of ffmpeg and OBS is scuffle-rtmp's;
//! - `connect` is answered with Window Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size
//!   and `_result`; `releaseStream` and `FCPublish` get `_result` (and `onFCPublish`);
//!   `FCUnpublish` ends the publish at once, unanswered;
//! - `onStatus` goes on the publishing message stream with transaction 0 (GStreamer's
//!   `rtmp2sink` waits for exactly that), and a refused publish gets an error `onStatus` that
//!   says why before the connection closes;
//! - acknowledgements every window of bytes the peer asked for, ping answers.
//!
//! The session knows no engine: a [`Publisher`] takes the publish and the media.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use scuffle_amf0::{Amf0Decoder, Amf0Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::rtmp_chunks::{self as chunks, ChunkReader, Message};
use super::rtmp_guard::{be32, GuardError};

/// Our chunk size, announced right after `connect`.
const OUR_CHUNK: usize = 4096;
/// The acknowledgement window we ask of the peer, and the one we keep until it sets its own:
/// what ffmpeg and nginx-rtmp use.
const WINDOW: u32 = 2_500_000;
/// The handshake takes two round trips; a peer that has not finished it by then is idle or
/// hostile, and holds a place among the waiting connections.
const HANDSHAKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);
/// Message stream ids handed out by `createStream` start here.
const FIRST_STREAM: u32 = 1;

const CSID_CONTROL: u8 = 2;
const CSID_COMMAND: u8 = 3;
const CSID_STATUS: u8 = 5;

/// Audio or video, as the message said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Audio,
    Video,
}

/// What the session hands on: the publish (with the application and name as the client sent
/// them) and the media of the published stream.
pub trait Publisher {
    /// `Err(reason)` refuses the publish; the client is told why.
    fn publish(&mut self, app: &str, name: &str)
        -> impl Future<Output = Result<(), String>> + Send;
    /// `Err(reason)` ends the connection.
    fn media(
        &mut self,
        kind: Media,
        timestamp: u32,
        data: Bytes,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// The client stopped publishing (`deleteStream`, `closeStream`).
    fn unpublish(&mut self) -> impl Future<Output = ()> + Send;
}

/// Why a session ended other than by the client closing.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(#[from] GuardError),
    #[error("{0}")]
    BadCommand(String),
    /// The publisher refused the publish or its media.
    #[error("{0}")]
    Refused(String),
    #[error("a client asked to play: this server takes publishers only")]
    Play,
}

/// Runs one connection until the client closes it (`Ok`) or it must end (`Err`).
pub async fn run<S, P>(io: &mut S, publisher: &mut P) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    P: Publisher,
{
    let handshake = async {
        let mut c0c1 = [0u8; 1537];
        io.read_exact(&mut c0c1).await?;
        io.write_all(&handshake_reply(&c0c1)).await?;
        io.flush().await?;
        let mut c2 = [0u8; 1536];
        io.read_exact(&mut c2).await.map(|_| ())
    };
    tokio::time::timeout(HANDSHAKE_DEADLINE, handshake)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))??;

    let mut session = Session {
        out: Vec::new(),
        out_chunk: chunks::DEFAULT_CHUNK,
        app: None,
        next_stream: FIRST_STREAM,
        publishing: None,
    };
    let mut reader = ChunkReader::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // The sequence number counts every byte, the handshake's too.
    let (mut received, mut acknowledged, mut window) =
        (super::rtmp_guard::HANDSHAKE as u64, 0u64, u64::from(WINDOW));
    loop {
        while let Some(message) = reader.read(&mut buf)? {
            if message.kind == chunks::WINDOW_ACK_SIZE {
                window = u64::from(be32(&message.payload).unwrap_or(WINDOW).max(4096));
                continue;
            }
            // Answers go out once the bytes read so far are all handled (below), except when
            // the session ends here: then what it says (a refusal's status) goes first.
            if let Err(e) = session.message(message, publisher).await {
                let _ = io.write_all(&session.out).await;
                return Err(e);
            }
        }
        if !session.out.is_empty() {
            io.write_all(&session.out).await?;
            session.out.clear();
        }
        let n = io.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        received += n as u64;
        if received - acknowledged >= window {
            session.send(
                CSID_CONTROL,
                chunks::ACKNOWLEDGEMENT,
                0,
                &(received as u32).to_be_bytes(),
            );
            acknowledged = received;
        }
    }
}

/// S0 S1 S2 for the client's C0 C1: the complex (digest) handshake when C1 carries a digest,
/// otherwise the simple one with S2 an exact echo of C1.
fn handshake_reply(c0c1: &[u8; 1537]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 2 * 1536);
    let mut complex = scuffle_rtmp::handshake::complex::ComplexHandshakeServer::default();
    let mut input = std::io::Cursor::new(Bytes::copy_from_slice(c0c1));
    if complex.handshake(&mut input, &mut out).is_ok() && out.len() == 1 + 2 * 1536 {
        return out;
    }
    out.clear();
    out.push(3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u32);
    out.extend_from_slice(&now.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut random = [0u8; 1528];
    rand::Rng::fill(&mut rand::thread_rng(), &mut random[..]);
    out.extend_from_slice(&random);
    out.extend_from_slice(&c0c1[1..]);
    out
}

struct Session {
    /// Bytes for the peer, written once the bytes read so far are handled.
    out: Vec<u8>,
    out_chunk: usize,
    app: Option<String>,
    next_stream: u32,
    /// The message stream being published on.
    publishing: Option<u32>,
}

impl Session {
    async fn message<P: Publisher>(
        &mut self,
        m: Message,
        publisher: &mut P,
    ) -> Result<(), SessionError> {
        match m.kind {
            chunks::AUDIO | chunks::VIDEO if self.publishing == Some(m.stream) => {
                let kind = if m.kind == chunks::AUDIO {
                    Media::Audio
                } else {
                    Media::Video
                };
                publisher
                    .media(kind, m.timestamp, m.payload)
                    .await
                    .map_err(SessionError::Refused)
            }
            chunks::COMMAND_AMF0 => self.command(m.stream, &m.payload, publisher).await,
            chunks::COMMAND_AMF3 => {
                let amf0 = m.payload.get(1..).unwrap_or_default();
                self.command(m.stream, amf0, publisher).await
            }
            chunks::USER_CONTROL => {
                // Ping request (6): answered with a ping response (7) of the same time.
                if m.payload.len() >= 6 && m.payload[..2] == [0, 6] {
                    let mut answer = vec![0, 7];
                    answer.extend_from_slice(&m.payload[2..6]);
                    self.send(CSID_CONTROL, chunks::USER_CONTROL, 0, &answer);
                }
                Ok(())
            }
            // Acknowledgements, Set Peer Bandwidth, @setDataFrame/onMetaData (the codec
            // headers say it better) and media before a publish.
            _ => Ok(()),
        }
    }

    async fn command<P: Publisher>(
        &mut self,
        stream: u32,
        payload: &[u8],
        publisher: &mut P,
    ) -> Result<(), SessionError> {
        let values = Amf0Decoder::from_slice(payload)
            .decode_all()
            .map_err(|e| SessionError::BadCommand(format!("an undecodable command: {e}")))?;
        let mut values = values.into_iter();
        let Some(Amf0Value::String(name)) = values.next() else {
            return Err(SessionError::BadCommand("a command without a name".into()));
        };
        let transaction = match values.next() {
            Some(Amf0Value::Number(n)) => n,
            _ => 0.0,
        };
        let object = values.next();
        let arguments: Vec<Amf0Value> = values.collect();
        let first_string = || match arguments.first() {
            Some(Amf0Value::String(s)) => Some(s.as_str().to_string()),
            _ => None,
        };
        match name.as_str() {
            "connect" => {
                let field = |key: &str| match &object {
                    Some(Amf0Value::Object(o)) => o
                        .iter()
                        .find_map(|(k, v)| (k.as_str() == key).then_some(v.clone())),
                    _ => None,
                };
                let Some(Amf0Value::String(app)) = field("app") else {
                    return Err(SessionError::BadCommand("connect without an app".into()));
                };
                let encoding = match field("objectEncoding") {
                    Some(Amf0Value::Number(n)) => n,
                    _ => 0.0,
                };
                self.app = Some(app.as_str().to_string());
                self.send(
                    CSID_CONTROL,
                    chunks::WINDOW_ACK_SIZE,
                    0,
                    &WINDOW.to_be_bytes(),
                );
                let mut bandwidth = WINDOW.to_be_bytes().to_vec();
                bandwidth.push(2); // dynamic
                self.send(CSID_CONTROL, chunks::SET_PEER_BANDWIDTH, 0, &bandwidth);
                self.send(
                    CSID_CONTROL,
                    chunks::SET_CHUNK_SIZE,
                    0,
                    &(OUR_CHUNK as u32).to_be_bytes(),
                );
                self.out_chunk = OUR_CHUNK;
                let mut a = Amf0::command("_result", transaction);
                a.object(&[
                    ("fmsVer", V::Str("FMS/3,5,7,7009")),
                    ("capabilities", V::Num(31.0)),
                    ("mode", V::Num(1.0)),
                ]);
                a.object(&[
                    ("level", V::Str("status")),
                    ("code", V::Str("NetConnection.Connect.Success")),
                    ("description", V::Str("Connection succeeded.")),
                    ("objectEncoding", V::Num(encoding)),
                ]);
                self.send_command(CSID_COMMAND, 0, a);
            }
            "releaseStream" | "FCPublish" => {
                if name.as_str() == "FCPublish" {
                    let mut a = Amf0::command("onFCPublish", 0.0);
                    a.null();
                    let what = first_string().unwrap_or_default();
                    let code = V::Str("NetStream.Publish.Start");
                    a.object(&[("code", code), ("description", V::Str(&what))]);
                    self.send_command(CSID_COMMAND, 0, a);
                }
                self.result(transaction, None);
            }
            "FCUnpublish" => {
                // The client stops now: ffmpeg closes the socket right after deleteStream, and
                // an answer it no longer reads makes its side reset the connection, which can
                // lose the deleteStream still queued here. So the stop counts from FCUnpublish,
                // and FCUnpublish gets no answer (nginx-rtmp sends none either).
                if self.publishing.take().is_some() {
                    publisher.unpublish().await;
                }
            }
            "createStream" => {
                let id = self.next_stream;
                self.next_stream += 1;
                self.result(transaction, Some(f64::from(id)));
            }
            "publish" => {
                let Some(app) = self.app.clone() else {
                    return Err(SessionError::BadCommand("publish before connect".into()));
                };
                let name = first_string().unwrap_or_default();
                let outcome = if self.publishing.is_some() {
                    Err("a second publish on one connection".to_string())
                } else {
                    publisher.publish(&app, &name).await
                };
                if let Err(why) = outcome {
                    self.status(stream, "error", "NetStream.Publish.BadName", &why);
                    return Err(SessionError::Refused(why));
                }
                self.publishing = Some(stream);
                // User control Stream Begin (event 0) for the stream.
                let mut begin = vec![0, 0];
                begin.extend_from_slice(&stream.to_be_bytes());
                self.send(CSID_CONTROL, chunks::USER_CONTROL, 0, &begin);
                let what = format!("{name} is now published");
                self.status(stream, "status", "NetStream.Publish.Start", &what);
            }
            "deleteStream" | "closeStream" => {
                let closed = match arguments.first() {
                    Some(Amf0Value::Number(n)) if name.as_str() == "deleteStream" => *n as u32,
                    _ => stream,
                };
                if self.publishing.is_some_and(|s| s == closed || closed == 0) {
                    self.publishing = None;
                    publisher.unpublish().await;
                    self.status(closed, "status", "NetStream.Unpublish.Success", "stopped");
                }
            }
            "play" | "play2" => {
                let why = "this server takes publishers only: watch over HLS";
                self.status(stream, "error", "NetStream.Play.Failed", why);
                return Err(SessionError::Play);
            }
            // _checkbw, getStreamLength and the like: nothing a publisher waits for.
            other => tracing::debug!(command = other, "rtmp: command ignored"),
        }
        Ok(())
    }

    /// `_result` for a transaction the client counts on (transaction 0 expects none).
    fn result(&mut self, transaction: f64, value: Option<f64>) {
        if transaction == 0.0 {
            return;
        }
        let mut a = Amf0::command("_result", transaction);
        a.null();
        match value {
            Some(n) => a.number(n),
            None => a.undefined(),
        }
        self.send_command(CSID_COMMAND, 0, a);
    }

    /// `onStatus` on a message stream, transaction 0.
    fn status(&mut self, stream: u32, level: &str, code: &str, description: &str) {
        let mut a = Amf0::command("onStatus", 0.0);
        a.null();
        a.object(&[
            ("level", V::Str(level)),
            ("code", V::Str(code)),
            ("description", V::Str(description)),
        ]);
        self.send_command(CSID_STATUS, stream, a);
    }

    fn send_command(&mut self, csid: u8, stream: u32, a: Amf0) {
        self.send(csid, chunks::COMMAND_AMF0, stream, &a.0);
    }

    fn send(&mut self, csid: u8, kind: u8, stream: u32, payload: &[u8]) {
        let message = Message {
            kind,
            stream,
            timestamp: 0,
            payload: Bytes::copy_from_slice(payload),
        };
        chunks::write(&mut self.out, self.out_chunk, csid, &message);
    }
}

/// A value of an answer's object.
enum V<'a> {
    Str(&'a str),
    Num(f64),
}

/// AMF0 answers, written by hand: a few strings, numbers and flat objects.
struct Amf0(Vec<u8>);

impl Amf0 {
    fn command(name: &str, transaction: f64) -> Amf0 {
        let mut a = Amf0(Vec::with_capacity(256));
        a.string(name);
        a.number(transaction);
        a
    }

    fn string(&mut self, s: &str) {
        self.0.push(0x02);
        self.key(s);
    }

    fn key(&mut self, s: &str) {
        let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        self.0.extend_from_slice(&(s.len() as u16).to_be_bytes());
        self.0.extend_from_slice(s);
    }

    fn number(&mut self, n: f64) {
        self.0.push(0x00);
        self.0.extend_from_slice(&n.to_be_bytes());
    }

    fn null(&mut self) {
        self.0.push(0x05);
    }

    fn undefined(&mut self) {
        self.0.push(0x06);
    }

    fn object(&mut self, fields: &[(&str, V)]) {
        self.0.push(0x03);
        for (k, v) in fields {
            self.key(k);
            match v {
                V::Str(s) => self.string(s),
                V::Num(n) => self.number(*n),
            }
        }
        self.0.extend_from_slice(&[0, 0, 9]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what the session hands on.
    #[derive(Default)]
    struct Recorder {
        publishes: Vec<(String, String)>,
        media: [usize; 2],
        unpublished: bool,
    }

    impl Publisher for Recorder {
        async fn publish(&mut self, app: &str, name: &str) -> Result<(), String> {
            self.publishes.push((app.to_string(), name.to_string()));
            Ok(())
        }
        async fn media(&mut self, kind: Media, _: u32, _: Bytes) -> Result<(), String> {
            self.media[usize::from(kind == Media::Video)] += 1;
            Ok(())
        }
        async fn unpublish(&mut self) {
            self.unpublished = true;
        }
    }

    /// Runs the session on a client's bytes after a simple handshake; returns what it handed
    /// on and what it answered.
    async fn session(client: &[u8]) -> (Recorder, Result<(), SessionError>, Vec<u8>) {
        let mut input = vec![3u8];
        input.resize(super::super::rtmp_guard::HANDSHAKE, 0);
        input.extend_from_slice(client);
        let mut answers = Vec::new();
        let mut io = tokio::io::join(std::io::Cursor::new(input), &mut answers);
        let mut recorder = Recorder::default();
        let result = run(&mut io, &mut recorder).await;
        drop(io);
        (recorder, result, answers)
    }

    /// The first 24 KB two GStreamer publishers sent nginx-rtmp after the handshake (tcpdump):
    /// librtmp's type 1 headers on fresh chunk streams and rtmp2sink's order of messages.
    #[tokio::test]
    async fn captured_gstreamer_and_librtmp_publishes_reach_media() {
        for capture in [
            &include_bytes!("../../../../fuzz/seeds/rtmp_session/rtmpsink-publish-start")[..],
            &include_bytes!("../../../../fuzz/seeds/rtmp_session/rtmp2sink-publish-start")[..],
        ] {
            let (recorder, result, answers) = session(capture).await;
            assert!(result.is_ok(), "{result:?}");
            assert_eq!(recorder.publishes, [("live".into(), "test".into())]);
            assert!(
                recorder.media.iter().all(|&n| n >= 5),
                "{:?}",
                recorder.media
            );
            // S2 echoes C1 (all zeros here) byte for byte.
            assert!(answers[1537..1537 + 1536].iter().all(|&b| b == 0));
            let status = String::from_utf8_lossy(&answers);
            assert!(status.contains("NetStream.Publish.Start"));
        }
    }

    #[tokio::test]
    async fn play_is_refused_with_a_status() {
        let mut client = Vec::new();
        let mut connect = Amf0::command("connect", 1.0);
        connect.object(&[("app", V::Str("live"))]);
        let mut play = Amf0::command("play", 2.0);
        play.null();
        play.string("x");
        for payload in [connect.0, play.0] {
            let m = Message {
                kind: chunks::COMMAND_AMF0,
                stream: 0,
                timestamp: 0,
                payload: payload.into(),
            };
            chunks::write(&mut client, chunks::DEFAULT_CHUNK, 3, &m);
        }
        let (_, result, answers) = session(&client).await;
        assert!(matches!(result, Err(SessionError::Play)), "{result:?}");
        assert!(String::from_utf8_lossy(&answers).contains("NetStream.Play.Failed"));
    }
}
