//! Reading a session's replay for a clip: its playlist, init segments and the samples of the
//! segments a range needs.

use super::*;

/// One segment line of the replay playlist.
#[derive(Debug, Clone)]
pub(super) struct ListedSegment {
    pub(super) init: String,
    pub(super) file: String,
    /// Session seconds of its first presentation.
    pub(super) start: f64,
    pub(super) duration: f64,
}

/// The segments a replay playlist lists now, with their session times.
pub(super) fn listed(dir: &Path, started_at_ms: i64) -> Result<Vec<ListedSegment>, ClipError> {
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
    pub(crate) id: u32,
    pub(crate) timescale: u32,
    pub(crate) video: bool,
    pub(crate) tkhd: Vec<u8>,
    pub(crate) mdhd: Vec<u8>,
    pub(crate) hdlr: Vec<u8>,
    /// vmhd/smhd and dinf.
    pub(crate) minf_head: Vec<u8>,
    pub(crate) stsd: Vec<u8>,
}

/// Re-emits a box whose body is `body`.
pub(super) fn whole(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
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
    pub(crate) segment: usize,
    pub(crate) offset: u64,
    pub(crate) size: u32,
    pub(crate) dts: i64,
    pub(crate) cto: i32,
    pub(crate) duration: u32,
    pub(crate) keyframe: bool,
}

impl Sample {
    pub(super) fn pts(&self) -> i64 {
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

/// The frames from the clip's keyframe up to (in decode order) the first frame it shows.
#[derive(Debug)]
pub struct FirstFrame {
    pub avcc: Vec<u8>,
    pub frames: Vec<crate::media::frame::Frame>,
    /// Which picture, in presentation order among `frames`, the clip shows first.
    pub rank: usize,
}

pub(super) fn first_frame(dir: &Path, chosen: &[&ListedSegment], k: &Kept) -> Option<FirstFrame> {
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
