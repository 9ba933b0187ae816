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

use super::mux::boxes::{be32, be64, bx, children, full, u16b, u32b, u64b, MATRIX};

/// Longest clip cut in one request.
pub const MAX_CLIP_SECONDS: f64 = 3600.0;

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

/// One segment line of the replay playlist.
#[derive(Debug, Clone)]
struct ListedSegment {
    init: String,
    file: String,
    /// Session seconds of its first presentation.
    start: f64,
    duration: f64,
}

/// The segments a replay playlist lists now, with their session times.
fn listed(dir: &Path, started_at_ms: i64) -> Result<Vec<ListedSegment>, ClipError> {
    let text = std::fs::read_to_string(dir.join("index.m3u8"))
        .map_err(|e| ClipError::Unavailable(format!("this session has no replay on disk ({e})")))?;
    let mut out = Vec::new();
    let (mut init, mut date, mut duration) = (None::<String>, None::<i64>, None::<f64>);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = v.strip_suffix('"').map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map_err(|e| io("replay playlist date", e))?;
            date = Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = v
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|d| d.parse().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            let (Some(init), Some(date), Some(duration)) = (init.clone(), date, duration) else {
                return Err(io("replay playlist", format!("segment {line} lacks a tag")));
            };
            out.push(ListedSegment {
                init,
                file: line.to_string(),
                start: (date - started_at_ms) as f64 / 1000.0,
                duration,
            });
        }
    }
    Ok(out)
}

/// A track of the init segment: the boxes a progressive file copies, and its clock.
pub(crate) struct InitTrack {
    id: u32,
    timescale: u32,
    video: bool,
    tkhd: Vec<u8>,
    mdhd: Vec<u8>,
    hdlr: Vec<u8>,
    /// vmhd/smhd and dinf.
    minf_head: Vec<u8>,
    stsd: Vec<u8>,
}

/// Re-emits a box whose body is `body`.
fn whole(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    bx(&mut o, kind, |o| o.extend_from_slice(body));
    o
}

pub(crate) fn init_tracks(data: &[u8]) -> Result<Vec<InitTrack>, ClipError> {
    let bad = || io("replay init segment", "not an fMP4 init segment");
    let (_, moov) = children(data).find(|(k, _)| k == b"moov").ok_or_else(bad)?;
    let mut tracks = Vec::new();
    for (_, trak) in children(moov).filter(|(k, _)| k == b"trak") {
        let (_, tkhd) = children(trak).find(|(k, _)| k == b"tkhd").ok_or_else(bad)?;
        let (_, mdia) = children(trak).find(|(k, _)| k == b"mdia").ok_or_else(bad)?;
        let (_, mdhd) = children(mdia).find(|(k, _)| k == b"mdhd").ok_or_else(bad)?;
        let (_, hdlr) = children(mdia).find(|(k, _)| k == b"hdlr").ok_or_else(bad)?;
        let (_, minf) = children(mdia).find(|(k, _)| k == b"minf").ok_or_else(bad)?;
        let mut minf_head = Vec::new();
        let mut stsd = None;
        for (k, b) in children(minf) {
            if &k == b"stbl" {
                stsd = children(b)
                    .find(|(k, _)| k == b"stsd")
                    .map(|(_, b)| whole(b"stsd", b));
            } else {
                minf_head.extend_from_slice(&whole(&k, b));
            }
        }
        // Version 0 boxes, as our writer makes them.
        if tkhd.first() != Some(&0) || mdhd.first() != Some(&0) {
            return Err(bad());
        }
        tracks.push(InitTrack {
            id: be32(tkhd, 12).ok_or_else(bad)?,
            timescale: be32(mdhd, 12).filter(|t| *t > 0).ok_or_else(bad)?,
            video: hdlr.get(8..12) == Some(b"vide"),
            tkhd: tkhd.to_vec(),
            mdhd: mdhd.to_vec(),
            hdlr: whole(b"hdlr", hdlr),
            minf_head,
            stsd: stsd.ok_or_else(bad)?,
        });
    }
    if tracks.is_empty() {
        return Err(bad());
    }
    Ok(tracks)
}

/// One sample of a replay segment: where its bytes are and its timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Index into the clip's source segments.
    segment: usize,
    offset: u64,
    size: u32,
    dts: i64,
    cto: i32,
    duration: u32,
    keyframe: bool,
}

impl Sample {
    fn pts(&self) -> i64 {
        self.dts + i64::from(self.cto)
    }
}

/// The samples of one fMP4 segment, per track id.
pub(crate) fn segment_samples(
    data: &[u8],
    segment: usize,
    out: &mut std::collections::HashMap<u32, Vec<Sample>>,
) -> Result<(), ClipError> {
    let bad = |what: &str| io("replay segment", what);
    let mut at = 0usize;
    for (kind, body) in children(data) {
        let moof_start = at as u64;
        at += body.len() + 8;
        if &kind != b"moof" {
            continue;
        }
        for (_, traf) in children(body).filter(|(k, _)| k == b"traf") {
            let mut id = None;
            let mut base = moof_start;
            let (mut def_dur, mut def_size, mut def_flags) = (0u32, 0u32, 0u32);
            let mut dts = 0i64;
            for (k, b) in children(traf) {
                match &k {
                    b"tfhd" => {
                        let flags = be32(b, 0).ok_or_else(|| bad("tfhd"))? & 0xFF_FFFF;
                        id = be32(b, 4);
                        let mut p = 8;
                        if flags & 0x1 != 0 {
                            base = be64(b, p).ok_or_else(|| bad("tfhd"))?;
                            p += 8;
                        }
                        if flags & 0x2 != 0 {
                            p += 4;
                        }
                        if flags & 0x8 != 0 {
                            def_dur = be32(b, p).ok_or_else(|| bad("tfhd"))?;
                            p += 4;
                        }
                        if flags & 0x10 != 0 {
                            def_size = be32(b, p).ok_or_else(|| bad("tfhd"))?;
                            p += 4;
                        }
                        if flags & 0x20 != 0 {
                            def_flags = be32(b, p).ok_or_else(|| bad("tfhd"))?;
                        }
                    }
                    b"tfdt" => {
                        dts = if b.first() == Some(&1) {
                            be64(b, 4).ok_or_else(|| bad("tfdt"))? as i64
                        } else {
                            i64::from(be32(b, 4).ok_or_else(|| bad("tfdt"))?)
                        };
                    }
                    b"trun" => {
                        let id = id.ok_or_else(|| bad("trun before tfhd"))?;
                        let flags = be32(b, 0).ok_or_else(|| bad("trun"))? & 0xFF_FFFF;
                        let version = b[0];
                        let count = be32(b, 4).ok_or_else(|| bad("trun"))? as usize;
                        // Every sample holds at least a byte of the file: a larger count is
                        // damage, and would make the loop below run for billions of samples.
                        if count > data.len() {
                            return Err(bad("trun sample count"));
                        }
                        let mut p = 8;
                        let mut offset = base;
                        if flags & 0x1 != 0 {
                            let d = be32(b, p).ok_or_else(|| bad("trun"))? as i32;
                            offset = base
                                .checked_add_signed(i64::from(d))
                                .ok_or_else(|| bad("trun data offset"))?;
                            p += 4;
                        }
                        let mut first_flags = None;
                        if flags & 0x4 != 0 {
                            first_flags = be32(b, p);
                            p += 4;
                        }
                        let list = out.entry(id).or_default();
                        for i in 0..count {
                            let mut field = |bit: u32, default: u32| -> Result<u32, ClipError> {
                                if flags & bit == 0 {
                                    return Ok(default);
                                }
                                let v = be32(b, p).ok_or_else(|| bad("trun sample"))?;
                                p += 4;
                                Ok(v)
                            };
                            let duration = field(0x100, def_dur)?;
                            let size = field(0x200, def_size)?;
                            let mut sflags = field(0x400, def_flags)?;
                            if i == 0 {
                                sflags = first_flags.unwrap_or(sflags);
                            }
                            let raw_cto = field(0x800, 0)?;
                            let cto = if version == 1 {
                                raw_cto as i32
                            } else {
                                raw_cto.min(i32::MAX as u32) as i32
                            };
                            list.push(Sample {
                                segment,
                                offset,
                                size,
                                dts,
                                cto,
                                duration,
                                keyframe: sflags & 0x0001_0000 == 0,
                            });
                            offset = offset
                                .checked_add(u64::from(size))
                                .ok_or_else(|| bad("trun sample size"))?;
                            dts = dts
                                .checked_add(i64::from(duration))
                                .ok_or_else(|| bad("trun sample duration"))?;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
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

/// The frames from the clip's keyframe up to (in decode order) the first frame it shows.
#[derive(Debug)]
pub struct FirstFrame {
    pub avcc: Vec<u8>,
    pub frames: Vec<crate::media::frame::Frame>,
    /// Which picture, in presentation order among `frames`, the clip shows first.
    pub rank: usize,
}

fn first_frame(dir: &Path, chosen: &[&ListedSegment], k: &Kept) -> Option<FirstFrame> {
    let start = k.samples[0].dts + k.media_start;
    // The first frame shown: the earliest presentation at or after the edit's start.
    let target = k
        .samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.pts() >= start)
        .min_by_key(|(_, s)| s.pts())
        .map(|(i, _)| i)?;
    let needed = &k.samples[..=target];
    let target_pts = needed[target].pts();
    let mut frames = Vec::with_capacity(needed.len());
    let mut open: Option<(usize, File)> = None;
    for s in needed {
        if open.as_ref().map(|(i, _)| *i) != Some(s.segment) {
            open = Some((
                s.segment,
                File::open(dir.join(&chosen[s.segment].file)).ok()?,
            ));
        }
        let (_, f) = open.as_mut()?;
        f.seek(SeekFrom::Start(s.offset)).ok()?;
        let mut data = vec![0u8; s.size as usize];
        f.read_exact(&mut data).ok()?;
        frames.push(crate::media::frame::Frame {
            track: crate::media::frame::Track::Video,
            dts: s.dts,
            pts: s.pts(),
            keyframe: s.keyframe,
            data: bytes::Bytes::from(data),
            arrived: std::time::Instant::now(),
        });
    }
    Some(FirstFrame {
        avcc: avcc_of(&k.track.stsd)?.to_vec(),
        rank: needed.iter().filter(|s| s.pts() < target_pts).count(),
        frames,
    })
}

impl InitTrack {
    /// The track's avcC record, when it is H.264 video.
    pub(crate) fn avcc(&self) -> Option<&[u8]> {
        avcc_of(&self.stsd)
    }
}

/// The avcC record inside an `stsd` box holding one `avc1` entry.
pub(crate) fn avcc_of(stsd: &[u8]) -> Option<&[u8]> {
    // stsd: header 8, version/flags 4, entry count 4; avc1: header 8, 78 bytes of fields.
    let avc1 = stsd.get(16..)?;
    if avc1.get(4..8)? != b"avc1" {
        return None;
    }
    children(avc1.get(8 + 78..)?)
        .find(|(k, _)| k == b"avcC")
        .map(|(_, b)| b)
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

/// Where each track's chunk of each source segment goes: one chunk per (segment, track), in
/// segment order, so audio and video interleave about once a second for progressive playback.
struct Chunk {
    segment: usize,
    kept: usize,
    /// Range within that track's kept samples.
    from: usize,
    to: usize,
}

fn chunks(kept: &[Kept]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let segments = kept
        .iter()
        .flat_map(|k| k.samples.last().map(|s| s.segment))
        .max()
        .unwrap_or(0);
    let mut cursor = vec![0usize; kept.len()];
    for segment in 0..=segments {
        for (k, track) in kept.iter().enumerate() {
            let from = cursor[k];
            let to = from
                + track.samples[from..]
                    .iter()
                    .take_while(|s| s.segment == segment)
                    .count();
            if to > from {
                out.push(Chunk {
                    segment,
                    kept: k,
                    from,
                    to,
                });
                cursor[k] = to;
            }
        }
    }
    out
}

fn write_mp4(
    dir: &Path,
    chosen: &[&ListedSegment],
    kept: &[Kept],
    duration_ms: u64,
    out: &Path,
) -> Result<u64, ClipError> {
    let chunks = chunks(kept);
    let mut ftyp = Vec::new();
    bx(&mut ftyp, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        u32b(o, 0x200);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    // Chunk offsets depend on the moov's size, which does not depend on their values.
    let probe = moov(kept, &chunks, duration_ms, 0);
    let data_start = (ftyp.len() + probe.len() + 16) as u64;
    let moov = moov(kept, &chunks, duration_ms, data_start);
    let payload: u64 = chunks
        .iter()
        .flat_map(|c| kept[c.kept].samples[c.from..c.to].iter())
        .map(|s| u64::from(s.size))
        .sum();

    let tmp = PathBuf::from(format!("{}.part", out.display()));
    let file = File::create(&tmp).map_err(|e| io("clip file", e))?;
    let mut w = BufWriter::new(file);
    let result = (|| -> std::io::Result<()> {
        w.write_all(&ftyp)?;
        w.write_all(&moov)?;
        // mdat with a 64-bit size: a long clip may pass 4 GiB.
        w.write_all(&1u32.to_be_bytes())?;
        w.write_all(b"mdat")?;
        w.write_all(&(payload + 16).to_be_bytes())?;
        let mut open: Option<(usize, File)> = None;
        let mut buf = Vec::new();
        for c in &chunks {
            if open.as_ref().map(|(i, _)| *i) != Some(c.segment) {
                open = Some((c.segment, File::open(dir.join(&chosen[c.segment].file))?));
            }
            let (_, f) = open.as_mut().expect("opened above");
            for s in &kept[c.kept].samples[c.from..c.to] {
                buf.resize(s.size as usize, 0);
                f.seek(SeekFrom::Start(s.offset))?;
                f.read_exact(&mut buf)?;
                w.write_all(&buf)?;
            }
        }
        w.flush()?;
        w.get_ref().sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("writing the clip", e));
    }
    std::fs::rename(&tmp, out).map_err(|e| io("clip file", e))?;
    Ok((ftyp.len() + moov.len()) as u64 + 16 + payload)
}

/// Patches a version-0 header's 32-bit duration field at `at` (body offset).
fn with_duration(body: &[u8], at: usize, duration: u64) -> Vec<u8> {
    let mut b = body.to_vec();
    let d = duration.min(u64::from(u32::MAX)) as u32;
    if let Some(slot) = b.get_mut(at..at + 4) {
        slot.copy_from_slice(&d.to_be_bytes());
    }
    b
}

fn moov(kept: &[Kept], chunks: &[Chunk], duration_ms: u64, data_start: u64) -> Vec<u8> {
    // Chunk offsets in file order.
    let mut offsets = vec![Vec::new(); kept.len()];
    let mut at = data_start;
    for c in chunks {
        offsets[c.kept].push((at, c.to - c.from));
        at += kept[c.kept].samples[c.from..c.to]
            .iter()
            .map(|s| u64::from(s.size))
            .sum::<u64>();
    }
    let mut o = Vec::new();
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32b(o, 0);
            u32b(o, 0);
            u32b(o, 1000);
            u32b(o, duration_ms as u32);
            u32b(o, 0x0001_0000);
            u16b(o, 0x0100);
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| u32b(o, *m));
            o.extend_from_slice(&[0; 24]);
            u32b(o, kept.iter().map(|k| k.track.id).max().unwrap_or(0) + 1);
        });
        for (k, track) in kept.iter().enumerate() {
            trak(o, track, &offsets[k], duration_ms);
        }
    });
    o
}

fn trak(o: &mut Vec<u8>, k: &Kept, chunk_offsets: &[(u64, usize)], duration_ms: u64) {
    let t = k.track;
    let media_duration: u64 = k.samples.iter().map(|s| u64::from(s.duration)).sum();
    bx(o, b"trak", |o| {
        // tkhd v0: duration after creation, modification, track id, reserved.
        o.extend_from_slice(&whole(b"tkhd", &with_duration(&t.tkhd, 20, duration_ms)));
        bx(o, b"edts", |o| {
            full(o, b"elst", 0, 0, |o| {
                u32b(o, 1);
                u32b(o, duration_ms as u32);
                u32b(o, k.media_start as u32);
                u32b(o, 0x0001_0000); // rate 1.0
            });
        });
        bx(o, b"mdia", |o| {
            // mdhd v0: duration after creation, modification, timescale.
            o.extend_from_slice(&whole(b"mdhd", &with_duration(&t.mdhd, 16, media_duration)));
            o.extend_from_slice(&t.hdlr);
            bx(o, b"minf", |o| {
                o.extend_from_slice(&t.minf_head);
                bx(o, b"stbl", |o| {
                    o.extend_from_slice(&t.stsd);
                    sample_tables(o, &k.samples, chunk_offsets, t.video);
                });
            });
        });
    });
}

/// (count, value) runs of equal consecutive values, as `stts` and `ctts` store them.
fn run_lengths<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut runs: Vec<(u32, T)> = Vec::new();
    for v in values {
        match runs.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => runs.push((1, v)),
        }
    }
    runs
}

fn sample_tables(o: &mut Vec<u8>, samples: &[Sample], chunk_offsets: &[(u64, usize)], video: bool) {
    // stts: runs of equal durations.
    let runs = run_lengths(samples.iter().map(|s| s.duration));
    full(o, b"stts", 0, 0, |o| {
        u32b(o, runs.len() as u32);
        for (n, d) in &runs {
            u32b(o, *n);
            u32b(o, *d);
        }
    });
    // ctts (signed, version 1) only when frames are reordered.
    if samples.iter().any(|s| s.cto != 0) {
        let runs = run_lengths(samples.iter().map(|s| s.cto));
        full(o, b"ctts", 1, 0, |o| {
            u32b(o, runs.len() as u32);
            for (n, c) in &runs {
                u32b(o, *n);
                u32b(o, *c as u32);
            }
        });
    }
    if video && samples.iter().any(|s| !s.keyframe) {
        let sync: Vec<u32> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.keyframe)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        full(o, b"stss", 0, 0, |o| {
            u32b(o, sync.len() as u32);
            sync.iter().for_each(|i| u32b(o, *i));
        });
    }
    // stsc: runs of chunks with the same sample count.
    let mut stsc: Vec<(u32, u32)> = Vec::new();
    for (i, (_, n)) in chunk_offsets.iter().enumerate() {
        if stsc.last().map(|(_, m)| *m) != Some(*n as u32) {
            stsc.push((i as u32 + 1, *n as u32));
        }
    }
    full(o, b"stsc", 0, 0, |o| {
        u32b(o, stsc.len() as u32);
        for (first, n) in &stsc {
            u32b(o, *first);
            u32b(o, *n);
            u32b(o, 1);
        }
    });
    full(o, b"stsz", 0, 0, |o| {
        u32b(o, 0);
        u32b(o, samples.len() as u32);
        samples.iter().for_each(|s| u32b(o, s.size));
    });
    full(o, b"co64", 0, 0, |o| {
        u32b(o, chunk_offsets.len() as u32);
        chunk_offsets.iter().for_each(|(at, _)| u64b(o, *at));
    });
}
