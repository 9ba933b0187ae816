//! Clip & Share: cuts a span of a session's replay (fMP4 segments on disk) into one progressive
//! MP4 with `moov` first, without re-encoding.
//!
//! Timeline: "session time" is seconds since the session started (`sessions.started_at`). The
//! replay playlist's program dates follow media time (see `hls::Segment::wall_ms`), so a
//! segment's session time is its program date minus the session start, and a player that shows
//! `playingDate - startedAt` shows the same clock.
//!
//! The clip starts at the keyframe at or before the in-point (a decoder needs it) and carries an
//! edit list whose media time is the in-point, so players that honour edit lists (browsers,
//! ffmpeg, QuickTime) start exactly there and play exactly `end - start`; players that ignore
//! edit lists start up to one GOP early.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use domain::ApiError;

mod mp4;
mod read;

use crate::media::mux::boxes::{be32, be64, bx, children, full, u16b, u32b, u64b, MATRIX};
use mp4::*;
use read::*;
pub(crate) use read::{init_tracks, segment_samples};

/// What went wrong, in words the API answers with.
#[derive(Debug)]
pub enum ClipError {
    /// The range is not in what the replay holds (now): 422.
    Unavailable(String),
    /// The files are not what we wrote, or the disk failed: 500.
    Io(String),
}

impl From<ClipError> for ApiError {
    fn from(e: ClipError) -> ApiError {
        match e {
            ClipError::Unavailable(m) => ApiError::new(422, "range_not_available", m),
            ClipError::Io(m) => ApiError::new(500, "clip_failed", m),
        }
    }
}

fn io(what: &str, e: impl std::fmt::Display) -> ClipError {
    ClipError::Io(format!("{what}: {e}"))
}

/// The result of a cut.
#[derive(Debug)]
pub struct Cut {
    /// Seconds the clip plays (the edit list's length).
    pub duration: f64,
    pub size: u64,
    /// What a poster of the clip's first shown frame needs to decode.
    pub first_frame: Option<FirstFrame>,
}

/// The samples of one track that the clip keeps, and its edit.
struct Kept<'a> {
    track: &'a InitTrack,
    samples: Vec<Sample>,
    /// Media time (track timescale, from the first kept sample's decode time) where play starts.
    media_start: i64,
}

/// Cuts `[start, end)` session seconds of the replay in `dir` into `out` (written to a temporary
/// name, synced, then renamed into place).
pub fn cut(
    dir: &Path,
    started_at_ms: i64,
    start: f64,
    end: f64,
    out: &Path,
) -> Result<Cut, ClipError> {
    let segments = listed(dir, started_at_ms)?;
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err(ClipError::Unavailable(
            "this session's replay holds no media yet".into(),
        ));
    };
    let (have_from, have_to) = (first.start.max(0.0), last.start + last.duration);
    // Program dates have millisecond precision; allow that much at both edges.
    if start < have_from - 0.002 || end > have_to + 0.002 {
        return Err(ClipError::Unavailable(format!(
            "the replay holds {have_from:.3}–{have_to:.3} s of this session now; {start:.3}–{end:.3} s is not all in it"
        )));
    }
    // The segment that holds the in-point, and every one up to the out-point.
    let from = segments
        .iter()
        .rposition(|s| s.start <= start + 0.002)
        .unwrap_or(0);
    let chosen: Vec<&ListedSegment> = segments[from..]
        .iter()
        .take_while(|s| s.start < end)
        .collect();
    if chosen.iter().any(|s| s.init != chosen[0].init) {
        return Err(ClipError::Unavailable(
            "the stream's format changed within this range; cut before or after the change".into(),
        ));
    }
    let init = std::fs::read(dir.join(&chosen[0].init)).map_err(|e| io("replay init", e))?;
    let tracks = init_tracks(&init)?;
    let mut samples = std::collections::HashMap::new();
    for (i, s) in chosen.iter().enumerate() {
        let data = std::fs::read(dir.join(&s.file)).map_err(|e| {
            ClipError::Unavailable(format!(
                "segment {} left the replay window while cutting ({e})",
                s.file
            ))
        })?;
        segment_samples(&data, i, &mut samples)?;
    }
    // The clock: the reference track (video, else audio) maps session seconds to its media time
    // through the first chosen segment's first presentation.
    let reference = tracks.iter().find(|t| t.video).unwrap_or(&tracks[0]);
    let ref_samples = samples
        .get(&reference.id)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| io("replay segment", "no samples"))?;
    let first_pts = ref_samples
        .iter()
        .take_while(|s| s.segment == 0)
        .map(Sample::pts)
        .min();
    let first_pts = first_pts.unwrap_or_else(|| ref_samples[0].pts());
    let to_media = |t: f64, scale: u32| -> i64 {
        let ref_time = first_pts as f64 + (t - chosen[0].start) * f64::from(reference.timescale);
        (ref_time * f64::from(scale) / f64::from(reference.timescale)).round() as i64
    };
    let mut kept = Vec::new();
    for track in &tracks {
        let Some(list) = samples.get(&track.id) else {
            continue;
        };
        let (t_in, t_out) = (
            to_media(start, track.timescale),
            to_media(end, track.timescale),
        );
        let first = if track.video {
            // The keyframe shown at or before the in-point.
            list.iter()
                .rposition(|s| s.keyframe && s.pts() <= t_in)
                .or_else(|| list.iter().position(|s| s.keyframe))
        } else {
            list.iter().rposition(|s| s.dts <= t_in).or(Some(0))
        };
        let Some(first) = first else { continue };
        // In decode order, up to the last sample shown before the out-point: everything a shown
        // frame depends on is decoded before it.
        let Some(last) = list.iter().rposition(|s| s.pts() < t_out) else {
            continue;
        };
        if last < first {
            continue;
        }
        let samples = list[first..=last].to_vec();
        let media_start = (t_in - samples[0].dts).max(0);
        kept.push(Kept {
            track,
            samples,
            media_start,
        });
    }
    if !kept.iter().any(|k| k.track.id == reference.id) {
        return Err(ClipError::Unavailable(format!(
            "no frames between {start:.3} and {end:.3} s"
        )));
    }
    let duration_ms = ((end - start) * 1000.0).round().max(1.0) as u64;
    let size = write_mp4(dir, &chosen, &kept, duration_ms, out)?;
    let first_frame = kept
        .iter()
        .find(|k| k.track.video)
        .and_then(|k| first_frame(dir, &chosen, k));
    Ok(Cut {
        duration: duration_ms as f64 / 1000.0,
        size,
        first_frame,
    })
}

/// Cuts a clip job (paths below `assets`) on a blocking thread: the MP4, and the share page's
/// poster from the clip's first shown frame (fine without).
pub async fn cut_job(
    assets: std::path::PathBuf,
    job: domain::services::ClipJob,
) -> Result<domain::services::ClipCut, ClipError> {
    let began = std::time::Instant::now();
    let out = assets.join(&job.out);
    let poster = assets.join(&job.poster);
    let (cut, has_poster) = tokio::task::spawn_blocking(move || {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ClipError::Io(format!("clip folder: {e}")))?;
        }
        let cut = cut(
            &assets.join(&job.replay_dir),
            job.started_at_ms,
            job.start,
            job.end,
            &out,
        )?;
        let has_poster = match &cut.first_frame {
            Some(f) => crate::media::picture::poster(&f.avcc, &f.frames, f.rank, &poster)
                .map_err(|e| tracing::warn!(error = %e, "clip poster failed"))
                .is_ok(),
            None => false,
        };
        Ok::<_, ClipError>((cut, has_poster))
    })
    .await
    .map_err(|e| ClipError::Io(e.to_string()))??;
    tracing::info!(
        seconds = cut.duration,
        bytes = cut.size,
        took_ms = began.elapsed().as_millis() as u64,
        "clip cut"
    );
    Ok(domain::services::ClipCut {
        duration: cut.duration,
        size: cut.size as i64,
        poster: has_poster,
    })
}
