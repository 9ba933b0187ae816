//! SRT ingest (srt-tokio, listener mode): a caller names its stream in the SRT stream id —
//! `#!::r=STREAMNAME,m=publish` (access-control syntax), `live/STREAMNAME`, `rec/STREAMNAME`
//! (also records, as RTMP's `/rec/`) or the bare stream name — and sends MPEG-TS with H.264 and
//! AAC, which `mpegts` turns into the stream's bus. An unknown stream, a reading caller or a
//! second publisher is refused in the handshake, with a log line and no session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use srt_tokio::access::{
    AccessControlList, ConnectionMode, RejectReason, ServerRejectReason, StandardAccessControlEntry,
};
use srt_tokio::{ConnectionRequest, SrtListener, SrtSocket};

use super::mpegts::TsToBus;
use crate::media::frame::Event;
use crate::media::{Engine, Refusal};

/// A publisher that sends nothing for this long is gone (SRT's own idle timeout is 5 s).
const STALL: Duration = Duration::from_secs(10);

/// What a stream id asks for: the stream name and whether it forces recording.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub record: bool,
}

/// Reads a caller's stream id; `Err` says why it is refused.
pub fn parse_stream_id(id: Option<&str>) -> Result<Request, String> {
    let id = id.unwrap_or("").trim();
    let resource = if id.starts_with("#!::") {
        let acl: AccessControlList = id
            .parse()
            .map_err(|_| format!("malformed stream id {id:?}"))?;
        let mut resource = None;
        for entry in acl.0 {
            match StandardAccessControlEntry::try_from(entry) {
                Ok(StandardAccessControlEntry::ResourceName(r)) => resource = Some(r),
                Ok(StandardAccessControlEntry::Mode(m)) if m != ConnectionMode::Publish => {
                    return Err(format!(
                        "stream id {id:?} asks for {m:?}: this server takes publishers only (m=publish)"
                    ))
                }
                _ => {}
            }
        }
        resource.ok_or_else(|| format!("stream id {id:?} names no resource (r=STREAMNAME)"))?
    } else {
        id.to_string()
    };
    let (record, name) = match resource.split_once('/') {
        Some(("live", name)) => (false, name),
        Some(("rec", name)) => (true, name),
        Some((app, _)) => return Err(format!("unknown application {app:?}: use live or rec")),
        None => (false, resource.as_str()),
    };
    if name.is_empty() {
        return Err("the stream id names no stream: set streamid=STREAMNAME".into());
    }
    Ok(Request {
        name: name.to_string(),
        record,
    })
}

/// Listens on `addr` for as long as the server runs; a listener that stops (srt-tokio ends it
/// on some malformed handshakes) is bound again.
pub async fn serve(addr: SocketAddr, latency: Duration, engine: Arc<Engine>) {
    loop {
        match SrtListener::builder().latency(latency).bind(addr).await {
            Ok((_listener, mut incoming)) => {
                tracing::info!(%addr, "srt: listening");
                while let Some(request) = incoming.incoming().next().await {
                    handshake(request, engine.clone()).await;
                }
                tracing::error!(%addr, "srt: the listener stopped; binding it again");
            }
            Err(e) => tracing::error!(%addr, error = %e, "srt: cannot bind the listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Answers one caller: refused with a reason, or accepted with its session running on a task
/// of its own (the listener answers the next caller at once).
async fn handshake(request: ConnectionRequest, engine: Arc<Engine>) {
    let peer = request.remote();
    let id = request.stream_id().map(|s| s.to_string());
    let (target, wanted) = match admit(id.as_deref(), peer, &engine).await {
        Ok(admitted) => admitted,
        Err((reason, why)) => {
            tracing::warn!(%peer, stream_id = id.as_deref().unwrap_or(""), why, "srt: caller refused");
            let _ = request.reject(RejectReason::Server(reason)).await;
            return;
        }
    };
    let socket = match request.accept(None).await {
        Ok(s) => s,
        Err(e) => {
            // srt-protocol refuses the caller itself here: a key where the stream has no
            // passphrase, or a bad one (vendor/srt-protocol/VENDORED.md).
            tracing::warn!(%peer, stream = %target.stream_id, error = %e,
                "srt: caller refused in the handshake (it encrypts; this stream takes no passphrase)");
            return;
        }
    };
    tokio::spawn(async move {
        let app = if wanted.record { "rec" } else { "live" };
        let live = match engine.start(&target, "srt", Some(app), wanted.record).await {
            Ok(live) => live,
            Err(refusal) => {
                tracing::warn!(%peer, error = %refusal, "srt: publish refused");
                return;
            }
        };
        tracing::info!(%peer, stream = %target.stream_id, "srt: publishing");
        let reason = publish(socket, &live).await;
        tracing::info!(%peer, stream = %target.stream_id, reason, "srt: session ended");
        engine.stop(&live, &reason).await;
    });
}

/// The stream a caller may publish to, or the SRT reason and the words why not.
async fn admit(
    id: Option<&str>,
    peer: SocketAddr,
    engine: &Arc<Engine>,
) -> Result<(domain::store::IngestTarget, Request), (ServerRejectReason, String)> {
    let wanted = parse_stream_id(id).map_err(|why| (ServerRejectReason::BadRequest, why))?;
    let target = match engine.shared.store.ingest_target(&wanted.name).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let why = Refusal::UnknownStream(wanted.name.clone()).to_string();
            return Err((ServerRejectReason::Notfound, why));
        }
        Err(e) => return Err((ServerRejectReason::InternalServerError, e.message)),
    };
    if engine.session(&target.stream_id).is_some() {
        let warning = format!(
            "a second publisher (SRT from {}) was refused: the stream is already live",
            peer.ip()
        );
        engine
            .warn_stream(&target.stream_id, "publisher_refused", warning)
            .await;
        let why = Refusal::AlreadyLive(target.stream_id.clone()).to_string();
        return Err((ServerRejectReason::Conflict, why));
    }
    Ok((target, wanted))
}

/// Feeds the socket's MPEG-TS into the session until the caller leaves, stalls or sends what
/// cannot be read; answers why it ended.
async fn publish(mut socket: SrtSocket, live: &Arc<crate::media::session::Session>) -> String {
    let mut ts = TsToBus::default();
    loop {
        let message = match tokio::time::timeout(STALL, socket.next()).await {
            Err(_) => return format!("source lost: no data for {} s", STALL.as_secs()),
            Ok(None) => return "publisher stopped".into(),
            Ok(Some(Err(e))) => return format!("source lost: {e}"),
            Ok(Some(Ok((_, bytes)))) => bytes,
        };
        let (events, dropped) = match ts.push(&message) {
            Ok(out) => out,
            Err(e) => return format!("source lost: {e}"),
        };
        for warning in dropped {
            live.warn("track_dropped", warning).await;
        }
        for e in events {
            match e {
                Event::Frame(_) => live.publish_frame(e),
                params => live.publish(params).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_name_the_stream() {
        let ok = |id: &str, name: &str, record: bool| {
            assert_eq!(
                parse_stream_id(Some(id)),
                Ok(Request {
                    name: name.into(),
                    record
                }),
                "{id}"
            )
        };
        ok("#!::r=abc-123,m=publish", "abc-123", false);
        ok("#!::m=publish,r=live/abc", "abc", false);
        ok("#!::r=rec/abc", "abc", true);
        ok("abc", "abc", false);
        ok("live/abc", "abc", false);
        ok("rec/abc", "abc", true);
        for bad in [
            "",
            "#!::m=publish",
            "#!::r=abc,m=request",
            "vod/abc",
            "live/",
        ] {
            assert!(parse_stream_id(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(parse_stream_id(None).is_err());
    }
}
