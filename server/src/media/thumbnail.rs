//! Thumbnails: every `interval` seconds the next keyframe, and only that keyframe, is decoded and
//! written as JPEG (full size and 320 px wide).
//!
//! - The session's first keyframe always makes a thumbnail, so a preview exists within a second
//!   of going live.
//! - Black or flat pictures: a picture whose luma spread ([`picture::detail`], the standard
//!   deviation of luma on a 64×36 grid) is under [`picture::FLAT`] counts as flat. When a
//!   thumbnail is due and its keyframe is flat, the following keyframes are tried instead for up
//!   to half the interval; if none is better, the flat one is kept so the history has no gap.
//!   After a flat thumbnail (e.g. a stream that starts black), the first keyframe with a picture
//!   is published at once rather than at the next interval.

use std::sync::Arc;

use tokio::sync::mpsc;

use domain::AssetKind;

use super::assets::HistoryFile;
use super::bus::Subscription;
use super::frame::{Event, Frame, Track, VideoParams, VIDEO_TIMESCALE};
use super::picture::{self, DecodeError, KeyframeDecoders, H264};
use super::session::Session;
use super::workers::{Place, Workers};

/// Width of the small preview next to each thumbnail.
pub const PREVIEW_WIDTH: u32 = 320;

/// What a job did with its keyframe.
enum Outcome {
    Written { flat: bool },
    SkippedFlat,
    Failed(String),
}

/// What the blocking part hands back.
struct Written {
    width: u32,
    height: u32,
    size: u64,
    flat: bool,
}

/// Decodes `frame` with a pooled decoder and, unless it is flat and not `force`d, writes
/// `out`'s JPEG and its preview.
fn make(
    decoders: &KeyframeDecoders,
    params: &VideoParams,
    frame: &Frame,
    force: bool,
    out: &std::path::Path,
) -> Result<Option<Written>, DecodeError> {
    if !params.is_h265() && !picture::h264_idr(&frame.data) {
        return Err(DecodeError::Unsupported(
            "the source's keyframes are recovery points (intra refresh), not IDR pictures, \
             and cannot be decoded alone for thumbnails: set the encoder to IDR keyframes \
             (x264: no intra-refresh)"
                .into(),
        ));
    }
    let rendered = if params.is_h265() {
        render_picture(picture::h265_keyframe(params, frame)?, force)?
    } else {
        let mut decoder = decoders.take(params)?;
        let rendered = render(&mut decoder, frame, force)?;
        decoders.put(decoder);
        rendered
    };
    let Some(r) = rendered else {
        return Ok(None);
    };
    let (full, preview) = (r.full, r.preview);
    let (pic_w, pic_h, flat) = (r.width, r.height, r.flat);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| DecodeError::Write(format!("thumbnail folder: {e}")))?;
    }
    let preview_path = out.with_extension(&domain::asset_kind::PREVIEW_SUFFIX[1..]);
    std::fs::write(&preview_path, &preview)
        .map_err(|e| DecodeError::Write(format!("thumbnail: {e}")))?;
    std::fs::write(out, &full).map_err(|e| DecodeError::Write(format!("thumbnail: {e}")))?;
    Ok(Some(Written {
        width: pic_w,
        height: pic_h,
        size: full.len() as u64,
        flat,
    }))
}

/// A thumbnail in memory: the full-size JPEG and its 320 px preview.
pub struct Rendered {
    pub full: Vec<u8>,
    pub preview: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub flat: bool,
}

/// Keyframe to JPEGs: the whole per-thumbnail cost (also what the benchmark measures). None when
/// the picture is flat and not `force`d.
pub fn render(
    decoder: &mut H264,
    frame: &Frame,
    force: bool,
) -> Result<Option<Rendered>, DecodeError> {
    render_picture(decoder.keyframe(frame)?, force)
}

fn render_picture(pic: picture::Rgb, force: bool) -> Result<Option<Rendered>, DecodeError> {
    let flat = picture::detail(&pic) < picture::FLAT;
    if flat && !force {
        return Ok(None);
    }
    let full = picture::jpeg(pic.width, pic.height, &pic.data, 85)?;
    let (w, h, small) = picture::scale(&pic, PREVIEW_WIDTH, false)?;
    let preview = picture::jpeg(w, h, &small, 80)?;
    Ok(Some(Rendered {
        full,
        preview,
        width: pic.width,
        height: pic.height,
        flat,
    }))
}

/// Runs one job: decode on the pool, then register the file and trim the history.
async fn job(
    session: Arc<Session>,
    params: VideoParams,
    frame: Frame,
    force: bool,
    index: i64,
) -> Outcome {
    let rel = AssetKind::Thumbnail.history_file(&session.stream_id, &session.session_id, index);
    let out = session.shared.assets.file(&rel);
    let arrived = frame.arrived;
    let shared = session.shared.clone();
    let work = move || {
        make(
            &shared.workers.keyframe_decoders,
            &params,
            &frame,
            force,
            &out,
        )
    };
    let workers = &session.shared.workers;
    let Some(result) = workers
        .timed(Place::Thumbnail, &workers.thumbnail_cpu_us, work)
        .await
    else {
        return Outcome::Failed("the worker pool is gone".into());
    };
    let w = match result {
        Ok(Some(w)) => w,
        Ok(None) => {
            Workers::count(&workers.thumbnails_skipped_flat, 1);
            return Outcome::SkippedFlat;
        }
        Err(e) => {
            Workers::count(&workers.failures, 1);
            return Outcome::Failed(e.to_string());
        }
    };
    let file = HistoryFile {
        kind: AssetKind::Thumbnail,
        stream_id: session.stream_id.clone(),
        session_id: session.session_id.clone(),
        path: rel,
        index,
        width: w.width,
        height: w.height,
        duration_ms: None,
        size: w.size,
    };
    match session.shared.assets.register_history(file).await {
        Ok(()) => {
            Workers::count(&workers.thumbnails, 1);
            session.shared.latency.thumbnail.record(arrived.elapsed());
            Outcome::Written { flat: w.flat }
        }
        Err(e) => Outcome::Failed(format!("could not register the file: {e}")),
    }
}

/// Consumes a session's bus until it ends.
pub async fn run(mut sub: Subscription, session: Arc<Session>) {
    let interval = session.settings.thumbnail.interval.max(1) * i64::from(VIDEO_TIMESCALE);
    let mut params: Option<VideoParams> = None;
    // Decode time from which the next thumbnail is due; None = the first keyframe.
    let mut next_due: Option<i64> = None;
    // When the due thumbnail's search for a non-flat keyframe began.
    let mut searching_since: Option<i64> = None;
    // The last thumbnail was flat: publish the first keyframe with a picture at once.
    let mut after_flat = false;
    let mut index = 0i64;
    let (tx, mut rx) = mpsc::channel::<(i64, bool, Outcome)>(1);
    let mut in_flight = false;
    loop {
        tokio::select! {
            event = sub.recv() => {
                let Some(event) = event else { break };
                match &*event {
                    Event::Video(p) => params = Some(p.clone()),
                    Event::Frame(f) if f.track == Track::Video && f.keyframe && !in_flight => {
                        let Some(p) = params.clone() else { continue };
                        let due = next_due.is_none_or(|d| f.dts >= d);
                        if !due && !after_flat {
                            continue;
                        }
                        let force = if due {
                            let since = *searching_since.get_or_insert(f.dts);
                            next_due.is_none() || f.dts - since >= interval / 2
                        } else {
                            false
                        };
                        index += 1;
                        in_flight = true;
                        let (session, tx, f) = (session.clone(), tx.clone(), f.clone());
                        tokio::spawn(async move {
                            let dts = f.dts;
                            let outcome = job(session, p, f, force, index).await;
                            let _ = tx.send((dts, due, outcome)).await;
                        });
                    }
                    _ => {}
                }
            }
            Some((dts, due, outcome)) = rx.recv() => {
                in_flight = false;
                match outcome {
                    Outcome::Written { flat } => {
                        session.faults.clear("thumbnail");
                        if due {
                            next_due = Some(dts + interval);
                            searching_since = None;
                        }
                        after_flat = flat;
                    }
                    Outcome::SkippedFlat => session.faults.clear("thumbnail"),
                    // Do not retry a failing decode on every keyframe.
                    Outcome::Failed(e) => {
                        session.faults.set("thumbnail", e);
                        next_due = Some(dts + interval);
                        searching_since = None;
                        after_flat = false;
                    }
                }
            }
        }
    }
    if in_flight {
        let _ = rx.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::testing;

    #[tokio::test]
    async fn the_first_keyframe_makes_a_thumbnail_and_its_preview() {
        let mut settings = domain::Processing::default();
        settings.thumbnail.enabled = true;
        settings.thumbnail.interval = 10;
        let t = testing::run_alone(settings, 3, run).await;
        let s = &t.session;
        let rel = AssetKind::Thumbnail.history_file(&s.stream_id, &s.session_id, 1);
        for path in AssetKind::Thumbnail.files(&rel) {
            let jpeg = std::fs::read(t.file(&path)).expect(&path);
            assert_eq!(&jpeg[..2], [0xFF, 0xD8], "{path} is a JPEG");
        }
        // 3.6 s at an interval of ten: one thumbnail, registered.
        assert_eq!(
            t.rows(AssetKind::Thumbnail).await,
            [(rel, "ready".to_string())]
        );
        assert!(s.faults.snapshot().is_empty(), "{:?}", s.faults.snapshot());
    }
}
