//! A small fragmented-MP4 (CMAF) writer: one init segment (`ftyp` + `moov`) and media fragments
//! (`moof` + `mdat`), for H.264 and AAC. Written by hand because it is little code and the crates
//! for it are young; boxes follow ISO/IEC 14496-12 and 14496-15.

use bytes::Bytes;

use super::boxes::{be32, bx, children, full, u16b, u32b, u64b, MATRIX};
use crate::media::frame::{AudioParams, Frame, OpusParams, VideoParams, VIDEO_TIMESCALE};

pub const VIDEO_TRACK_ID: u32 = 1;
pub const AUDIO_TRACK_ID: u32 = 2;

/// The init segment for the tracks present.
pub fn init_segment(video: Option<&VideoParams>, audio: Option<&AudioParams>) -> Bytes {
    let mut o = Vec::with_capacity(1024);
    bx(&mut o, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32b(o, 0);
        for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32b(o, 0); // creation
            u32b(o, 0); // modification
            u32b(o, 1000); // timescale
            u32b(o, 0); // duration: unknown, fragments follow
            u32b(o, 0x0001_0000); // rate 1.0
            u16b(o, 0x0100); // volume 1.0
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| u32b(o, *m));
            o.extend_from_slice(&[0; 24]);
            u32b(o, 3); // next track id
        });
        if let Some(v) = video {
            video_trak(o, v);
        }
        if let Some(a) = audio {
            audio_trak(o, a);
        }
        bx(o, b"mvex", |o| {
            for (present, id) in [
                (video.is_some(), VIDEO_TRACK_ID),
                (audio.is_some(), AUDIO_TRACK_ID),
            ] {
                if present {
                    full(o, b"trex", 0, 0, |o| {
                        u32b(o, id);
                        u32b(o, 1); // sample description index
                        u32b(o, 0);
                        u32b(o, 0);
                        u32b(o, 0);
                    });
                }
            }
        });
    });
    Bytes::from(o)
}

fn tkhd(o: &mut Vec<u8>, id: u32, audio: bool, width: u32, height: u32) {
    full(o, b"tkhd", 0, 0x3, |o| {
        u32b(o, 0);
        u32b(o, 0);
        u32b(o, id);
        u32b(o, 0);
        u32b(o, 0); // duration
        o.extend_from_slice(&[0; 8]);
        u16b(o, 0); // layer
        u16b(o, 0); // alternate group
        u16b(o, if audio { 0x0100 } else { 0 });
        u16b(o, 0);
        MATRIX.iter().for_each(|m| u32b(o, *m));
        u32b(o, width << 16);
        u32b(o, height << 16);
    });
}

fn mdhd_hdlr(o: &mut Vec<u8>, timescale: u32, handler: &[u8; 4], name: &str) {
    full(o, b"mdhd", 0, 0, |o| {
        u32b(o, 0);
        u32b(o, 0);
        u32b(o, timescale);
        u32b(o, 0);
        u16b(o, 0x55C4); // language "und"
        u16b(o, 0);
    });
    full(o, b"hdlr", 0, 0, |o| {
        u32b(o, 0);
        o.extend_from_slice(handler);
        o.extend_from_slice(&[0; 12]);
        o.extend_from_slice(name.as_bytes());
        o.push(0);
    });
}

/// dinf + the empty sample tables a fragmented file carries; `stsd` comes from the caller.
fn stbl(o: &mut Vec<u8>, stsd: impl FnOnce(&mut Vec<u8>)) {
    bx(o, b"dinf", |o| {
        full(o, b"dref", 0, 0, |o| {
            u32b(o, 1);
            full(o, b"url ", 0, 1, |_| {});
        })
    });
    bx(o, b"stbl", |o| {
        full(o, b"stsd", 0, 0, |o| {
            u32b(o, 1);
            stsd(o);
        });
        for kind in [b"stts", b"stsc", b"stco"] {
            full(o, kind, 0, 0, |o| u32b(o, 0));
        }
        full(o, b"stsz", 0, 0, |o| {
            u32b(o, 0);
            u32b(o, 0);
        });
    });
}

fn video_trak(o: &mut Vec<u8>, v: &VideoParams) {
    bx(o, b"trak", |o| {
        tkhd(o, VIDEO_TRACK_ID, false, v.width, v.height);
        bx(o, b"mdia", |o| {
            mdhd_hdlr(o, VIDEO_TIMESCALE, b"vide", "liveproc video");
            bx(o, b"minf", |o| {
                full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                stbl(o, |o| {
                    let (entry, config) = if v.is_h265() {
                        (b"hvc1", b"hvcC")
                    } else {
                        (b"avc1", b"avcC")
                    };
                    bx(o, entry, |o| {
                        o.extend_from_slice(&[0; 6]);
                        u16b(o, 1); // data reference index
                        o.extend_from_slice(&[0; 16]);
                        u16b(o, v.width as u16);
                        u16b(o, v.height as u16);
                        u32b(o, 0x0048_0000); // 72 dpi
                        u32b(o, 0x0048_0000);
                        u32b(o, 0);
                        u16b(o, 1); // frame count
                        o.extend_from_slice(&[0; 32]); // compressor name
                        u16b(o, 0x0018); // depth
                        u16b(o, 0xFFFF);
                        bx(o, config, |o| o.extend_from_slice(&v.avcc));
                    });
                });
            });
        });
    });
}

fn audio_trak(o: &mut Vec<u8>, a: &AudioParams) {
    bx(o, b"trak", |o| {
        tkhd(o, AUDIO_TRACK_ID, true, 0, 0);
        bx(o, b"mdia", |o| {
            mdhd_hdlr(o, a.sample_rate, b"soun", "liveproc audio");
            bx(o, b"minf", |o| {
                full(o, b"smhd", 0, 0, |o| u32b(o, 0));
                stbl(o, |o| {
                    let entry = if a.opus.is_some() { b"Opus" } else { b"mp4a" };
                    bx(o, entry, |o| {
                        o.extend_from_slice(&[0; 6]);
                        u16b(o, 1);
                        o.extend_from_slice(&[0; 8]);
                        u16b(o, u16::from(a.channels.max(1)));
                        u16b(o, 16); // sample size
                        u32b(o, 0);
                        // 16.16 sample rate; rates above 65535 Hz do not fit and are signalled in esds.
                        u32b(o, (a.sample_rate.min(65535)) << 16);
                        match a.opus {
                            Some(opus) => bx(o, b"dOps", |o| dops(o, a.channels, opus)),
                            None => full(o, b"esds", 0, 0, |o| esds(o, &a.asc)),
                        }
                    });
                });
            });
        });
    });
}

/// Opus specific box ("Encapsulation of Opus in ISO Base Media File Format" §4.3.2): mono or
/// stereo, channel mapping family 0.
fn dops(o: &mut Vec<u8>, channels: u8, opus: OpusParams) {
    o.push(0); // version
    o.push(channels.max(1));
    u16b(o, opus.pre_skip);
    u32b(o, opus.input_rate);
    u16b(o, 0); // output gain
    o.push(0); // channel mapping family
}

/// MPEG-4 ES descriptor carrying the AudioSpecificConfig (ISO 14496-1 §7.2.6.5).
fn esds(o: &mut Vec<u8>, asc: &[u8]) {
    let dec_specific = 2 + asc.len();
    let dec_config = 2 + 13 + dec_specific;
    let es = 2 + 3 + dec_config + 3;
    o.extend_from_slice(&[0x03, es as u8 - 2, 0, AUDIO_TRACK_ID as u8, 0]);
    o.extend_from_slice(&[0x04, dec_config as u8 - 2, 0x40, 0x15, 0, 0, 0]);
    u32b(o, 0); // max bitrate
    u32b(o, 0); // average bitrate
    o.extend_from_slice(&[0x05, asc.len() as u8]);
    o.extend_from_slice(asc);
    o.extend_from_slice(&[0x06, 0x01, 0x02]);
}

/// The samples of one track within a fragment.
pub struct TrackRun<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_dts: i64,
    pub frames: &'a [Frame],
    /// Duration of the last sample (the others follow from the next sample's dts).
    pub last_duration: u32,
}

/// One `moof` + `mdat` with a run per track.
pub fn fragment(sequence: u32, runs: &[TrackRun]) -> Bytes {
    let mut o = Vec::new();
    let mut offset_slots = Vec::new();
    bx(&mut o, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| u32b(o, sequence));
        for run in runs.iter().filter(|r| !r.frames.is_empty()) {
            bx(o, b"traf", |o| {
                // default-base-is-moof: data offsets count from the start of this moof.
                full(o, b"tfhd", 0, 0x02_0000, |o| u32b(o, run.track_id));
                full(o, b"tfdt", 1, 0, |o| u64b(o, run.base_dts.max(0) as u64));
                // data-offset, duration, size, flags and (signed, version 1) composition offset.
                full(o, b"trun", 1, 0x000F01, |o| {
                    u32b(o, run.frames.len() as u32);
                    offset_slots.push(o.len());
                    u32b(o, 0);
                    for (i, f) in run.frames.iter().enumerate() {
                        let duration = match run.frames.get(i + 1) {
                            Some(next) => (next.dts - f.dts).max(0) as u32,
                            None => run.last_duration,
                        };
                        u32b(o, duration);
                        u32b(o, f.data.len() as u32);
                        // sample_depends_on = 2 (no other sample) for sync samples, else
                        // 1 and is_non_sync_sample.
                        u32b(o, if f.keyframe { 0x0200_0000 } else { 0x0101_0000 });
                        u32b(o, (f.pts - f.dts) as i32 as u32);
                    }
                });
            });
        }
    });
    let moof_len = o.len();
    let mut data_offset = moof_len + 8;
    for (slot, run) in offset_slots
        .iter()
        .zip(runs.iter().filter(|r| !r.frames.is_empty()))
    {
        o[*slot..*slot + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
        data_offset += run.frames.iter().map(|f| f.data.len()).sum::<usize>();
    }
    bx(&mut o, b"mdat", |o| {
        for run in runs {
            for f in run.frames {
                o.extend_from_slice(&f.data);
            }
        }
    });
    Bytes::from(o)
}

/// [`duration_seconds`] of a file without reading its media: only `moov` and `moof` boxes are read
/// (kilobytes), `mdat` payloads are skipped, so an hours-long recording recovers in milliseconds.
pub fn file_duration_seconds(
    file: &mut (impl std::io::Read + std::io::Seek),
) -> std::io::Result<Option<f64>> {
    use std::io::SeekFrom;
    let len = file.seek(SeekFrom::End(0))?;
    let mut at = 0u64;
    let mut compact = Vec::new();
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at))?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8])?;
        let mut size = u64::from(u32::from_be_bytes(head[0..4].try_into().expect("4 bytes")));
        let kind: [u8; 4] = head[4..8].try_into().expect("4 bytes");
        if size == 1 && at + 16 <= len {
            file.read_exact(&mut head[8..16])?;
            size = u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
        }
        if size < 8 || size > len - at {
            break; // cut short by a crash
        }
        match &kind {
            b"moov" | b"moof" if size <= 64 << 20 => {
                let mut b = vec![0u8; size as usize];
                file.seek(SeekFrom::Start(at))?;
                file.read_exact(&mut b)?;
                compact.extend_from_slice(&b);
            }
            // A complete mdat counts; its payload does not matter here.
            b"mdat" => compact.extend_from_slice(&[0, 0, 0, 8, b'm', b'd', b'a', b't']),
            _ => {}
        }
        at += size;
    }
    Ok(duration_seconds(&compact))
}

/// The playable length of a fragmented MP4 written by [`init_segment`] and [`fragment`]: the
/// sample durations of its complete fragments, for the video track (else the audio track).
/// Used to list a recording a crash left unfinished.
pub fn duration_seconds(data: &[u8]) -> Option<f64> {
    let mut timescales = std::collections::HashMap::new();
    let mut totals: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    // A fragment counts once its mdat is complete too.
    let mut pending: Vec<(u32, u64)> = Vec::new();
    for (kind, body) in children(data) {
        match &kind {
            b"moov" => {
                for (_, trak) in children(body).filter(|(k, _)| k == b"trak") {
                    let mut id = None;
                    let mut scale = None;
                    for (k, b) in children(trak) {
                        if &k == b"tkhd" {
                            id = be32(b, 12);
                        }
                        if &k == b"mdia" {
                            for (k2, b2) in children(b) {
                                if &k2 == b"mdhd" {
                                    scale = be32(b2, 12);
                                }
                            }
                        }
                    }
                    if let (Some(id), Some(scale)) = (id, scale) {
                        timescales.insert(id, scale);
                    }
                }
            }
            b"moof" => {
                for (_, traf) in children(body).filter(|(k, _)| k == b"traf") {
                    let mut id = None;
                    for (k, b) in children(traf) {
                        match &k {
                            b"tfhd" => id = be32(b, 4),
                            b"trun" => {
                                let flags = be32(b, 0)? & 0x00FF_FFFF;
                                let count = be32(b, 4)? as usize;
                                let mut at = 8 + if flags & 0x1 != 0 { 4 } else { 0 };
                                at += if flags & 0x4 != 0 { 4 } else { 0 };
                                let per = [0x100, 0x200, 0x400, 0x800]
                                    .iter()
                                    .filter(|f| flags & **f != 0)
                                    .count()
                                    * 4;
                                if flags & 0x100 == 0 {
                                    continue;
                                }
                                let mut sum = 0u64;
                                for i in 0..count {
                                    sum += u64::from(be32(b, at + i * per)?);
                                }
                                pending.push((id?, sum));
                            }
                            _ => {}
                        }
                    }
                }
            }
            b"mdat" => {
                for (id, sum) in pending.drain(..) {
                    *totals.entry(id).or_default() += sum;
                }
            }
            _ => {}
        }
    }
    [VIDEO_TRACK_ID, AUDIO_TRACK_ID].iter().find_map(|id| {
        let total = *totals.get(id)?;
        let scale = *timescales.get(id)?;
        (scale > 0).then(|| total as f64 / f64::from(scale))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::Track;

    fn boxes(data: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + 8 <= data.len() {
            let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
            out.push((String::from_utf8_lossy(&data[i + 4..i + 8]).into(), size));
            assert!(size >= 8 && i + size <= data.len(), "box sizes nest");
            i += size;
        }
        assert_eq!(i, data.len());
        out
    }

    #[test]
    fn fragment_offsets_point_into_mdat() {
        let frames: Vec<Frame> = (0..3)
            .map(|i| Frame {
                track: Track::Video,
                dts: i * 3000,
                pts: i * 3000 + 6000,
                keyframe: i == 0,
                data: Bytes::from(vec![i as u8; 10 + i as usize]),
                arrived: std::time::Instant::now(),
            })
            .collect();
        let f = fragment(
            7,
            &[TrackRun {
                track_id: 1,
                base_dts: 0,
                frames: &frames,
                last_duration: 3000,
            }],
        );
        let top = boxes(&f);
        assert_eq!(top[0].0, "moof");
        assert_eq!(top[1].0, "mdat");
        let moof_len = top[0].1;
        // trun's data offset is the first sample's position relative to moof.
        let trun = f.windows(4).position(|w| w == b"trun").unwrap();
        let offset = u32::from_be_bytes(f[trun + 12..trun + 16].try_into().unwrap()) as usize;
        assert_eq!(offset, moof_len + 8);
        assert_eq!(&f[offset..offset + 10], &[0u8; 10]);
    }

    #[test]
    fn duration_counts_complete_fragments_only() {
        let v = VideoParams::for_tests(64, 64);
        let mut file = init_segment(Some(&v), None).to_vec();
        let frames: Vec<Frame> = (0..25)
            .map(|i| Frame {
                track: Track::Video,
                dts: i * 3600,
                pts: i * 3600,
                keyframe: i == 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                arrived: std::time::Instant::now(),
            })
            .collect();
        for seq in 1..=3 {
            let run = TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_dts: 0,
                frames: &frames,
                last_duration: 3600,
            };
            file.extend_from_slice(&fragment(seq, &[run]));
        }
        assert_eq!(duration_seconds(&file), Some(3.0));
        // A crash in the middle of the third fragment: two complete ones remain.
        let cut = file.len() - 20;
        assert_eq!(duration_seconds(&file[..cut]), Some(2.0));
        // The same from a file, reading only box headers, moov and moofs.
        let mut whole = std::io::Cursor::new(file.clone());
        assert_eq!(file_duration_seconds(&mut whole).unwrap(), Some(3.0));
        let mut cut_file = std::io::Cursor::new(file[..cut].to_vec());
        assert_eq!(file_duration_seconds(&mut cut_file).unwrap(), Some(2.0));
    }

    #[test]
    fn init_segment_nests() {
        let v = VideoParams::for_tests(1280, 720);
        let a = AudioParams::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let init = init_segment(Some(&v), Some(&a));
        let top = boxes(&init);
        assert_eq!(
            top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
    }
}
