//! RTMP and RTMPS ingest: `rtmp://HOST/live/STREAMNAME`, or `/rec/STREAMNAME` to force
//! recording. Each connection is its own task; whatever a peer does ends only its own session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

use super::flv::FlvDemuxer;
use super::rtmp_session::{self, Media, Publisher, SessionError};
use crate::media::{Engine, Refusal, Session};

/// A publisher that sends nothing for this long is gone.
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

/// Accepts publishers on the RTMP listener and, when it is on, the RTMPS one; both count
/// against the same limits.
pub async fn serve(
    rtmp: TcpListener,
    rtmps: Option<(TcpListener, TlsAcceptor)>,
    engine: Arc<Engine>,
    limits: Limits,
) {
    let gate = Arc::new(Gate::default());
    let plain = accept(rtmp, None, engine.clone(), gate.clone(), limits);
    match rtmps {
        Some((listener, tls)) => {
            tokio::join!(plain, accept(listener, Some(tls), engine, gate, limits));
        }
        None => plain.await,
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    engine: Arc<Engine>,
    gate: Arc<Gate>,
    limits: Limits,
) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => match gate.admit(peer.ip(), limits) {
                Ok(places) => {
                    let connection = connection(socket, peer, engine.clone(), tls.clone(), places);
                    tokio::spawn(connection);
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

/// The TLS side of RTMPS from PEM files: a certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the RTMPS certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the RTMPS key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the RTMPS certificate and key do not go together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// An accepted connection, over TCP or TLS (RTMPS).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    engine: Arc<Engine>,
    tls: Option<TlsAcceptor>,
    (_open, waiting): (OpenGuard, WaitingGuard),
) {
    let _ = socket.set_nodelay(true);
    let (published_tx, published_rx) = tokio::sync::oneshot::channel();
    let mut handler = Handler {
        engine: engine.clone(),
        peer,
        demux: FlvDemuxer::default(),
        live: None,
        waiting: Some((waiting, published_tx)),
    };
    let deadline = async {
        if let Ok(Ok(())) = tokio::time::timeout(PUBLISH_DEADLINE, published_rx).await {
            std::future::pending::<()>().await; // publishing: no deadline
        }
    };
    let session = async {
        match tls {
            Some(acceptor) => match acceptor.accept(socket).await {
                Ok(stream) => session(stream, &mut handler).await,
                Err(e) => Err(SessionError::Io(e)),
            },
            None => session(socket, &mut handler).await,
        }
    };
    let result = tokio::select! {
        biased;
        r = session => r,
        () = deadline => {
            tracing::warn!(%peer, "rtmp: no publish within {} s; connection closed", PUBLISH_DEADLINE.as_secs());
            return;
        }
    };
    let reason = match &result {
        Ok(()) => "publisher disconnected".to_string(),
        Err(SessionError::Refused(r)) => {
            tracing::warn!(%peer, reason = %r, "rtmp: publisher refused");
            format!("refused: {r}")
        }
        Err(e) => {
            tracing::info!(%peer, error = %e, "rtmp: connection ended");
            format!("connection error: {e}")
        }
    };
    handler.end(&reason).await;
}

/// One session on `socket` with read and write timeouts.
async fn session<S: Io>(socket: S, handler: &mut Handler) -> Result<(), SessionError> {
    let mut io = TimeoutStream::new(socket);
    io.set_read_timeout(Some(READ_TIMEOUT));
    io.set_write_timeout(Some(WRITE_TIMEOUT));
    rtmp_session::run(&mut Box::pin(io), handler).await
}

impl Handler {
    /// Ends the live session, saying first what the demuxer had to correct.
    async fn end(&mut self, reason: &str) {
        let Some(live) = self.live.take() else {
            return;
        };
        let dropped = std::mem::take(&mut self.demux.audio_dropped);
        if dropped > 0 {
            let warning = format!(
                "{dropped} AAC frames dropped: the publisher's audio ran ahead of its clock by \
                 more than a frame and a half"
            );
            live.warn("audio_dropped", warning).await;
        }
        self.engine.stop(&live, reason).await;
    }
}

struct Handler {
    engine: Arc<Engine>,
    peer: SocketAddr,
    demux: FlvDemuxer,
    live: Option<Arc<Session>>,
    /// Until the peer publishes: its place among waiting connections, and the signal that
    /// lifts the publish deadline.
    waiting: Option<(WaitingGuard, tokio::sync::oneshot::Sender<()>)>,
}

impl Handler {
    async fn start(&mut self, app: &str, stream_name: &str) -> Result<(), Refusal> {
        // Encoders append queries (`name?token=…`, `live?key=…`) and instances
        // (`live/_definst_`): the application is the first path segment, the name what
        // precedes a query.
        let app = app.split(['?', '/']).next().unwrap_or_default();
        let forced_recording = match app {
            "live" => false,
            "rec" => true,
            other => return Err(Refusal::UnknownApp(other.to_string())),
        };
        let name = stream_name.split('?').next().unwrap_or_default();
        let target = self
            .engine
            .shared
            .store
            .ingest_target(name)
            .await
            .map_err(|e| Refusal::Store(e.message))?
            .ok_or_else(|| Refusal::UnknownStream(name.to_string()))?;
        let started = self
            .engine
            .start(&target, "rtmp", Some(app), forced_recording)
            .await;
        if let Err(Refusal::AlreadyLive(_)) = &started {
            // Said on the session that goes on, so the operator sees a second encoder.
            let warning = format!(
                "a second publisher (RTMP from {}) was refused: the stream is already live",
                self.peer.ip()
            );
            self.engine
                .warn_stream(&target.stream_id, "publisher_refused", warning)
                .await;
        }
        let live = started?;
        tracing::info!(peer = %self.peer, app, stream = %target.stream_id, "rtmp: publishing");
        self.live = Some(live);
        if let Some((place, published)) = self.waiting.take() {
            drop(place);
            let _ = published.send(());
        }
        Ok(())
    }
}

impl Publisher for Handler {
    async fn publish(&mut self, app: &str, name: &str) -> Result<(), String> {
        self.start(app, name).await.map_err(|r| r.to_string())
    }

    async fn media(&mut self, kind: Media, timestamp: u32, data: Bytes) -> Result<(), String> {
        let Some(live) = self.live.clone() else {
            return Ok(());
        };
        let events = self
            .demux
            .message(kind, timestamp, data)
            .map_err(|e| e.to_string())?;
        for event in events {
            live.publish(event).await;
        }
        Ok(())
    }

    async fn unpublish(&mut self) {
        self.end("publisher stopped").await;
    }
}
