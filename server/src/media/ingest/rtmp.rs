//! RTMP ingest (scuffle-rtmp): `rtmp://HOST/live/STREAMNAME`, or `/rec/STREAMNAME` to force
//! recording. Each connection is its own task; whatever a peer does ends only its own session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scuffle_rtmp::session::server::{
    ServerSession, ServerSessionError, SessionData, SessionHandler,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;

use super::flv::{DemuxError, FlvDemuxer};
use crate::media::frame::Event;
use crate::media::{Engine, LiveStream, Refusal};

/// A publisher that sends nothing for this long is gone (scuffle-rtmp has no data timeout of
/// its own; its handshake timeout is 2 s).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection must be publishing this long after it was accepted: handshake, connect and
/// publish take milliseconds for a real encoder; an idle or half-open socket is closed.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(10);

/// Bounds on RTMP connections, so idle or hostile peers cannot use up the server (defaults in
/// `config.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections in total.
    pub total: usize,
    /// Connections per IP address that are not publishing (yet). Publishing ones are bounded
    /// by the streams themselves: one publisher per stream.
    pub waiting_per_ip: usize,
}

/// Counts open and not-yet-publishing connections; the guards give their place back on drop.
#[derive(Default)]
struct Gate {
    open: AtomicUsize,
    waiting: Mutex<HashMap<IpAddr, usize>>,
}

struct OpenGuard(Arc<Gate>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

struct WaitingGuard(Arc<Gate>, IpAddr);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        let mut waiting = self.0.waiting.lock().expect("rtmp gate");
        if let Some(n) = waiting.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(&self.1);
            }
        }
    }
}

impl Gate {
    /// Places for a new connection from `ip`, or why there is none.
    fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: Limits,
    ) -> Result<(OpenGuard, WaitingGuard), String> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= limits.total {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(format!("{} connections open", limits.total));
        }
        let open = OpenGuard(self.clone());
        let mut waiting = self.waiting.lock().expect("rtmp gate");
        let n = waiting.entry(ip).or_default();
        if *n >= limits.waiting_per_ip {
            return Err(format!(
                "{} connections from this address are not publishing",
                limits.waiting_per_ip
            ));
        }
        *n += 1;
        Ok((open, WaitingGuard(self.clone(), ip)))
    }
}

pub async fn serve(listener: TcpListener, engine: Arc<Engine>, limits: Limits) {
    let gate = Arc::new(Gate::default());
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => match gate.admit(peer.ip(), limits) {
                Ok(places) => {
                    tokio::spawn(connection(socket, peer, engine.clone(), places));
                }
                // Dropping the socket closes it; the peer learns nothing more.
                Err(why) => tracing::warn!(%peer, reason = %why, "rtmp: connection refused"),
            },
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "rtmp: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the handler leaves behind for the connection task, which outlives it.
#[derive(Default)]
struct Outcome {
    live: Option<Arc<LiveStream>>,
    refusal: Option<String>,
}

async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    engine: Arc<Engine>,
    (_open, waiting): (OpenGuard, WaitingGuard),
) {
    let _ = socket.set_nodelay(true);
    let mut io = TimeoutStream::new(socket);
    io.set_read_timeout(Some(READ_TIMEOUT));
    io.set_write_timeout(Some(WRITE_TIMEOUT));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let (published_tx, published_rx) = tokio::sync::oneshot::channel();
    let handler = Handler {
        engine: engine.clone(),
        peer,
        demux: FlvDemuxer::default(),
        live: None,
        outcome: outcome.clone(),
        waiting: Some((waiting, published_tx)),
    };
    // Boxed and pinned, the timeout wrapper is `Unpin`, as scuffle-rtmp asks.
    let run = ServerSession::new(Inbound::new(Box::pin(io)), handler).run();
    let deadline = async {
        if let Ok(Ok(())) = tokio::time::timeout(PUBLISH_DEADLINE, published_rx).await {
            std::future::pending::<()>().await; // publishing: no deadline
        }
    };
    let result = tokio::select! {
        biased;
        r = run => r,
        () = deadline => {
            tracing::warn!(%peer, "rtmp: no publish within {} s; connection closed", PUBLISH_DEADLINE.as_secs());
            return;
        }
    };
    let (live, refusal) = {
        let mut o = outcome.lock().expect("rtmp outcome");
        (o.live.take(), o.refusal.take())
    };
    let reason = match (&refusal, &result) {
        (Some(r), _) => {
            tracing::warn!(%peer, reason = %r, "rtmp: publisher refused");
            "refused: ".to_string() + r
        }
        (None, Ok(_)) => "publisher disconnected".to_string(),
        (None, Err(e)) => {
            tracing::info!(%peer, error = %e, "rtmp: connection ended");
            format!("connection error: {e}")
        }
    };
    if let Some(live) = live {
        engine.stop(&live, &reason).await;
    }
}

/// What the peer sends, checked before scuffle-rtmp reads it.
///
/// - A read of zero bytes (the peer shut down its side) becomes an `UnexpectedEof` error:
///   scuffle-rtmp's handshake reads until it has 1537 bytes without checking for the end of the
///   stream, so a peer that sends a few bytes and half-closes would spin that loop (found while
///   writing the fuzz harness). After the handshake, scuffle-rtmp counts `UnexpectedEof` as the
///   client closing.
/// - [`ChunkGuard`] refuses messages whose declared sizes would make scuffle-rtmp allocate
///   gigabytes (found by fuzzing).
pub struct Inbound<S> {
    io: S,
    guard: super::chunk_guard::ChunkGuard,
}

impl<S> Inbound<S> {
    pub fn new(io: S) -> Self {
        Inbound {
            io,
            guard: Default::default(),
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Inbound<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                Poll::Ready(Err(std::io::ErrorKind::UnexpectedEof.into()))
            }
            Poll::Ready(Ok(())) => match this.guard.feed(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(why) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    why,
                ))),
            },
            other => other,
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Inbound<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

struct Handler {
    engine: Arc<Engine>,
    peer: SocketAddr,
    demux: FlvDemuxer,
    live: Option<Arc<LiveStream>>,
    outcome: Arc<Mutex<Outcome>>,
    /// Until the peer publishes: its place among waiting connections, and the signal that
    /// lifts the publish deadline.
    waiting: Option<(WaitingGuard, tokio::sync::oneshot::Sender<()>)>,
}

impl Handler {
    /// Records why the peer is refused and gives scuffle-rtmp an error that closes it.
    fn refuse(&self, reason: String) -> ServerSessionError {
        self.outcome.lock().expect("rtmp outcome").refusal = Some(reason);
        // scuffle-rtmp has no "refused" error; this one ends the session, and our log says why.
        ServerSessionError::PublishBeforeConnect
    }

    async fn publish(&mut self, app: &str, stream_name: &str) -> Result<(), Refusal> {
        let forced_recording = match app {
            "live" => false,
            "rec" => true,
            other => return Err(Refusal::UnknownApp(other.to_string())),
        };
        // Encoders sometimes append a query (`name?token=…`): the name is what precedes it.
        let name = stream_name.split('?').next().unwrap_or_default();
        let target = self
            .engine
            .store
            .ingest_target(name)
            .await
            .map_err(|e| Refusal::Store(e.message))?
            .ok_or_else(|| Refusal::UnknownStream(name.to_string()))?;
        let live = self
            .engine
            .start(&target, "rtmp", Some(app), forced_recording)
            .await?;
        tracing::info!(peer = %self.peer, app, stream = %target.stream_id, "rtmp: publishing");
        self.outcome.lock().expect("rtmp outcome").live = Some(live.clone());
        self.live = Some(live);
        if let Some((place, published)) = self.waiting.take() {
            drop(place);
            let _ = published.send(());
        }
        Ok(())
    }

    async fn media(
        &mut self,
        event: Result<Option<Event>, DemuxError>,
    ) -> Result<(), ServerSessionError> {
        let Some(live) = self.live.clone() else {
            return Ok(()); // data before publish: nothing to feed
        };
        match event {
            Ok(Some(event)) => {
                self.engine.publish(&live, event).await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(self.refuse(e.to_string())),
        }
    }
}

impl SessionHandler for Handler {
    async fn on_publish(
        &mut self,
        _stream_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<(), ServerSessionError> {
        if self.live.is_some() {
            return Err(self.refuse("a second publish on one connection".into()));
        }
        self.publish(app_name, stream_name)
            .await
            .map_err(|r| self.refuse(r.to_string()))
    }

    async fn on_unpublish(&mut self, _stream_id: u32) -> Result<(), ServerSessionError> {
        if let Some(live) = self.live.take() {
            self.outcome.lock().expect("rtmp outcome").live = None;
            self.engine.stop(&live, "publisher stopped").await;
        }
        Ok(())
    }

    async fn on_data(
        &mut self,
        _stream_id: u32,
        data: SessionData,
    ) -> Result<(), ServerSessionError> {
        match data {
            SessionData::Video { timestamp, data } => {
                let event = self.demux.video(timestamp, data);
                self.media(event).await
            }
            SessionData::Audio { timestamp, data } => {
                let event = self.demux.audio(timestamp, data);
                self.media(event).await
            }
            SessionData::Amf0 { .. } => Ok(()), // onMetaData: the codec headers say it better
        }
    }
}
