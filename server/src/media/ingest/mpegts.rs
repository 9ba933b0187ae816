//! MPEG-TS, as SRT carries it, into bus events. mpeg2ts-reader finds the programme and each
//! stream's PES packets; here H.264 access units (Annex B) become AVCC frames with their
//! parameter sets as the decoder configuration record, AAC's ADTS frames become raw frames with
//! their AudioSpecificConfig, and the 33-bit 90 kHz times are unwrapped onto one clock for both
//! tracks. A track of another codec is dropped and said so (`dropped`).

use bytes::Bytes;
use mpeg2ts_reader::demultiplex::{self, FilterRequest};
use mpeg2ts_reader::{packet, packet_filter_switch, pes, psi, StreamType};

use crate::media::frame::{
    avc_config, AudioParams, Event, Frame, Track, VideoParams, VIDEO_TIMESCALE,
};

/// What went wrong with what the publisher sent; it ends that session only.
#[derive(Debug, thiserror::Error)]
pub enum TsError {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("no MPEG-TS sync byte in {0} bytes: is the publisher sending MPEG-TS?")]
    NotTs(usize),
}

packet_filter_switch! {
    Filters<Ctx> {
        Pat: demultiplex::PatPacketFilter<Ctx>,
        Pmt: demultiplex::PmtPacketFilter<Ctx>,
        Null: demultiplex::NullPacketFilter<Ctx>,
        Pes: pes::PesPacketFilter<Ctx, Collect>,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    H264,
    Aac,
}

/// A carried track's PES packet: whole for video, for audio each run of complete ADTS frames
/// as soon as it is in (`index`: the first one's place in its PES), so audio is not held
/// until the next PES starts.
struct Pes {
    kind: Kind,
    pts: Option<u64>,
    dts: Option<u64>,
    index: i64,
    data: Vec<u8>,
}

pub struct Ctx {
    changeset: demultiplex::FilterChangeset<Filters>,
    out: Vec<Pes>,
    video: Option<packet::Pid>,
    audio: Option<packet::Pid>,
    dropped: Vec<String>,
}

impl demultiplex::DemuxContext for Ctx {
    type F = Filters;

    fn filter_changeset(&mut self) -> &mut demultiplex::FilterChangeset<Filters> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filters {
        match req {
            FilterRequest::ByPid(psi::pat::PAT_PID) => Filters::Pat(Default::default()),
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filters::Pmt(demultiplex::PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream {
                stream_type,
                stream_info,
                ..
            } => {
                let pid = stream_info.elementary_pid();
                let kind = match stream_type {
                    StreamType::H264 if self.video.is_none_or(|v| v == pid) => {
                        self.video = Some(pid);
                        Kind::H264
                    }
                    StreamType::ADTS if self.audio.is_none_or(|a| a == pid) => {
                        self.audio = Some(pid);
                        Kind::Aac
                    }
                    other => {
                        if let Some(why) = dropped_track(other, self) {
                            if !self.dropped.contains(&why) {
                                self.dropped.push(why);
                            }
                        }
                        return Filters::Null(Default::default());
                    }
                };
                Filters::Pes(pes::PesPacketFilter::new(Collect {
                    kind,
                    pts: None,
                    dts: None,
                    data: Vec::new(),
                    started: false,
                    sent: 0,
                }))
            }
            _ => Filters::Null(Default::default()),
        }
    }
}

/// Why a track of the programme is not carried (data and other non-media streams go unsaid).
fn dropped_track(t: StreamType, ctx: &Ctx) -> Option<String> {
    let video = matches!(t.0, 0x01 | 0x02 | 0x10 | 0x1B | 0x24 | 0x33 | 0xD1 | 0xEA);
    let audio = matches!(t.0, 0x03 | 0x04 | 0x0F | 0x11 | 0x81 | 0x87 | 0x06);
    if video {
        Some(if ctx.video.is_some() {
            format!(
                "the source's extra video track ({t:?}) is not carried: one video track per stream"
            )
        } else {
            format!(
                "the source's video track ({t:?}) is dropped: liveproc takes H.264 over SRT, so \
                 this session has no video; set the encoder to H.264"
            )
        })
    } else if audio {
        Some(if ctx.audio.is_some() {
            format!(
                "the source's extra audio track ({t:?}) is not carried: one audio track per stream"
            )
        } else {
            format!(
                "the source's audio track ({t:?}) is dropped: liveproc takes AAC (ADTS) over SRT, \
                 so this session has no audio; set the encoder to AAC"
            )
        })
    } else {
        None
    }
}

/// Gathers one stream's PES packets whole.
pub struct Collect {
    kind: Kind,
    pts: Option<u64>,
    dts: Option<u64>,
    data: Vec<u8>,
    started: bool,
    /// AAC frames of this PES already handed on.
    sent: i64,
}

impl Collect {
    /// Hands on the complete ADTS frames at the front of an audio PES.
    fn complete_frames(&mut self, ctx: &mut Ctx) {
        let (mut at, mut frames) = (0, 0);
        while let Some(h) = self.data.get(at..at + 7) {
            let len = adts_frame_len(h);
            if h[0] != 0xFF || len < 7 || at + len > self.data.len() {
                break;
            }
            at += len;
            frames += 1;
        }
        if frames > 0 {
            ctx.out.push(Pes {
                kind: self.kind,
                pts: self.pts,
                dts: self.dts,
                index: self.sent,
                data: self.data.drain(..at).collect(),
            });
            self.sent += frames;
        }
    }
}

/// A PES larger than this is not a frame a live encoder sends: dropped, not buffered for ever.
const MAX_PES: usize = 16 << 20;

impl pes::ElementaryStreamConsumer<Ctx> for Collect {
    fn start_stream(&mut self, _ctx: &mut Ctx) {}

    fn begin_packet(&mut self, ctx: &mut Ctx, header: pes::PesHeader<'_>) {
        self.data.clear();
        (self.pts, self.dts) = (None, None);
        self.started = true;
        self.sent = 0;
        match header.contents() {
            pes::PesContents::Parsed(Some(c)) => {
                match c.pts_dts() {
                    Ok(pes::PtsDts::PtsOnly(Ok(p))) => self.pts = Some(p.value()),
                    Ok(pes::PtsDts::Both {
                        pts: Ok(p),
                        dts: Ok(d),
                    }) => {
                        self.pts = Some(p.value());
                        self.dts = Some(d.value());
                    }
                    _ => {}
                }
                self.data.extend_from_slice(c.payload());
            }
            pes::PesContents::Payload(p) => self.data.extend_from_slice(p),
            pes::PesContents::Parsed(None) => {}
        }
        if self.kind == Kind::Aac {
            self.complete_frames(ctx);
        }
    }

    fn continue_packet(&mut self, ctx: &mut Ctx, data: &[u8]) {
        if self.started && self.data.len() + data.len() <= MAX_PES {
            self.data.extend_from_slice(data);
            if self.kind == Kind::Aac {
                self.complete_frames(ctx);
            }
        } else {
            self.started = false;
        }
    }

    fn end_packet(&mut self, ctx: &mut Ctx) {
        if std::mem::take(&mut self.started) && !self.data.is_empty() {
            ctx.out.push(Pes {
                kind: self.kind,
                pts: self.pts,
                dts: self.dts,
                index: self.sent,
                data: std::mem::take(&mut self.data),
            });
        }
    }

    fn continuity_error(&mut self, _ctx: &mut Ctx) {
        // Part of this packet was lost: drop it, the next one starts clean.
        self.started = false;
        self.data.clear();
    }
}

/// A 33-bit 90 kHz time unwrapped next to the last one seen (wraps every 26.5 hours).
fn unwrap33(raw: u64, last: Option<i64>) -> i64 {
    const WRAP: i64 = 1 << 33;
    let raw = (raw & (WRAP as u64 - 1)) as i64;
    let Some(last) = last else { return raw };
    let base = last - last.rem_euclid(WRAP);
    [base - WRAP, base, base + WRAP]
        .into_iter()
        .map(|b| b + raw)
        .min_by_key(|t| (t - last).abs())
        .unwrap_or(raw)
}

/// The bus events of a TS byte stream fed in pieces of any size.
pub struct TsToBus {
    demux: demultiplex::Demultiplex<Ctx>,
    ctx: Ctx,
    /// Bytes of a TS packet cut between two messages.
    rest: Vec<u8>,
    /// The clock: the first time seen (90 kHz, unwrapped) is the stream's zero.
    base: Option<i64>,
    last_raw: Option<i64>,
    video: Option<VideoParams>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    last_video_dts: Option<i64>,
    audio: Option<AudioParams>,
    /// Where the next AAC frame would start (samples), for gapless audio.
    next_audio: Option<i64>,
    told: usize,
}

impl Default for TsToBus {
    fn default() -> Self {
        let mut ctx = Ctx {
            changeset: Default::default(),
            out: Vec::new(),
            video: None,
            audio: None,
            dropped: Vec::new(),
        };
        let demux = demultiplex::Demultiplex::new(&mut ctx);
        TsToBus {
            demux,
            ctx,
            rest: Vec::new(),
            base: None,
            last_raw: None,
            video: None,
            sps: None,
            pps: None,
            last_video_dts: None,
            audio: None,
            next_audio: None,
            told: 0,
        }
    }
}

impl TsToBus {
    /// The events of `bytes`, and the tracks newly found to be dropped (said once each).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(Vec<Event>, Vec<String>), TsError> {
        self.rest.extend_from_slice(bytes);
        // Resynchronise on a sync byte that is followed by another one a packet later.
        let size = packet::Packet::SIZE;
        let start = (0..self.rest.len())
            .find(|&i| self.rest[i] == 0x47 && self.rest.get(i + size).is_none_or(|b| *b == 0x47))
            .unwrap_or(self.rest.len());
        if start > 4 * size {
            return Err(TsError::NotTs(start));
        }
        self.rest.drain(..start);
        let whole = self.rest.len() / size * size;
        self.demux.push(&mut self.ctx, &self.rest[..whole]);
        self.rest.drain(..whole);
        let mut events = Vec::new();
        for p in std::mem::take(&mut self.ctx.out) {
            match p.kind {
                Kind::H264 => self.video_events(p, &mut events)?,
                Kind::Aac => self.audio_events(p, &mut events)?,
            }
        }
        let dropped = self.ctx.dropped[self.told..].to_vec();
        self.told = self.ctx.dropped.len();
        Ok((events, dropped))
    }

    /// A 90 kHz time on the stream's clock: zero 100 ms before the first time seen, so that
    /// the other track's first frames (an encoder starts both within a few frames) and a
    /// B-frame stream's first decode time are not before it.
    fn time(&mut self, raw: u64) -> i64 {
        let t = unwrap33(raw, self.last_raw);
        self.last_raw = Some(t);
        t - *self.base.get_or_insert(t - i64::from(VIDEO_TIMESCALE) / 10)
    }

    fn video_events(&mut self, p: Pes, out: &mut Vec<Event>) -> Result<(), TsError> {
        let Some(pts_raw) = p.pts else {
            return Ok(());
        };
        // The decode time first: it is the earlier one.
        let dts = p.dts.map(|d| self.time(d));
        let pts = self.time(pts_raw);
        let dts = dts.unwrap_or(pts);
        let mut data = Vec::with_capacity(p.data.len() + 16);
        let mut keyframe = false;
        let mut params_changed = false;
        for nal in nal_units(&p.data) {
            match nal[0] & 0x1F {
                7 => {
                    params_changed |= self.sps.as_deref() != Some(nal);
                    self.sps = Some(nal.to_vec());
                }
                8 => {
                    params_changed |= self.pps.as_deref() != Some(nal);
                    self.pps = Some(nal.to_vec());
                }
                9 => {}
                t => {
                    keyframe |= t == 5;
                    data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    data.extend_from_slice(nal);
                }
            }
        }
        if params_changed || self.video.is_none() {
            if let (Some(sps), Some(pps)) = (&self.sps, &self.pps) {
                let record = avc_config(sps, pps).ok_or(TsError::Malformed("H.264 SPS/PPS"))?;
                let params =
                    VideoParams::from_avcc(Bytes::from(record)).map_err(TsError::Malformed)?;
                if self.video.as_ref() != Some(&params) {
                    out.push(Event::Video(params.clone()));
                    self.video = Some(params);
                }
            }
        }
        if self.video.is_none() || data.is_empty() || dts < 0 {
            return Ok(());
        }
        // Decode times strictly increase on the bus, whatever the encoder stamped.
        let dts = match self.last_video_dts {
            Some(last) if dts <= last => last + 1,
            _ => dts,
        };
        self.last_video_dts = Some(dts);
        out.push(Event::Frame(Frame {
            track: Track::Video,
            dts,
            pts: pts.max(dts),
            keyframe,
            data: Bytes::from(data),
            arrived: std::time::Instant::now(),
        }));
        Ok(())
    }

    fn audio_events(&mut self, p: Pes, out: &mut Vec<Event>) -> Result<(), TsError> {
        let Some(pts_raw) = p.pts else {
            return Ok(());
        };
        let pts = self.time(pts_raw);
        let mut at = 0;
        let mut index = p.index;
        while at + 7 <= p.data.len() {
            let h = &p.data[at..];
            if h[0] != 0xFF || h[1] & 0xF0 != 0xF0 {
                return Err(TsError::Malformed("ADTS header"));
            }
            let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
            let frame_len = adts_frame_len(h);
            if frame_len < header_len || at + frame_len > p.data.len() {
                return Err(TsError::Malformed("ADTS frame length"));
            }
            let asc = adts_config(h).ok_or(TsError::Malformed("ADTS sampling rate"))?;
            if self.audio.as_ref().is_none_or(|a| a.asc != asc) {
                let params = AudioParams::from_asc(Bytes::from(asc))
                    .ok_or(TsError::Malformed("AAC configuration"))?;
                out.push(Event::Audio(params.clone()));
                self.audio = Some(params);
                self.next_audio = None;
            }
            let rate = i64::from(self.audio.as_ref().map_or(48_000, |a| a.sample_rate));
            let at90 = pts + index * 1024 * i64::from(VIDEO_TIMESCALE) / rate;
            let stamped = at90 * rate / i64::from(VIDEO_TIMESCALE);
            // Gapless while the stamps agree with the running count (within 100 ms);
            // a real gap or jump starts the count again.
            let t = match self.next_audio {
                Some(next) if (stamped - next).abs() < rate / 10 => next,
                Some(next) if stamped < next => next,
                _ => stamped,
            };
            if t >= 0 {
                out.push(Event::Frame(Frame {
                    track: Track::Audio,
                    dts: t,
                    pts: t,
                    keyframe: true,
                    data: Bytes::copy_from_slice(&p.data[at + header_len..at + frame_len]),
                    arrived: std::time::Instant::now(),
                }));
                self.next_audio = Some(t + 1024);
            }
            at += frame_len;
            index += 1;
        }
        Ok(())
    }
}

/// The NAL units of an Annex B byte stream, without start codes (or trailing zero bytes).
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|s| s - 3)
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).filter_map(move |(s, e)| {
        let mut end = e;
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        (end > s).then(|| &data[s..end])
    })
}

/// An ADTS frame's length, header included (ISO 14496-3 §1.A.2.2.2).
fn adts_frame_len(h: &[u8]) -> usize {
    ((usize::from(h[3]) & 3) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5)
}

/// The AudioSpecificConfig (ISO 14496-3 §1.6.2.1) an ADTS header describes.
fn adts_config(h: &[u8]) -> Option<Vec<u8>> {
    let object = (h[2] >> 6) + 1;
    let rate_index = (h[2] >> 2) & 0x0F;
    let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
    if rate_index > 12 {
        return None;
    }
    Some(vec![
        (object << 3) | (rate_index >> 1),
        ((rate_index & 1) << 7) | (channels << 3),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_unwrap_across_33_bits() {
        let wrap = 1u64 << 33;
        assert_eq!(unwrap33(100, None), 100);
        assert_eq!(unwrap33(5, Some(wrap as i64 - 10)), wrap as i64 + 5);
        assert_eq!(unwrap33(wrap - 10, Some(wrap as i64 + 5)), wrap as i64 - 10);
        assert_eq!(unwrap33(3000, Some(0)), 3000);
    }

    #[test]
    fn nal_units_split_on_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 7,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, [&[9, 0xF0][..], &[0x67, 1, 2], &[0x65, 7]]);
    }

    #[test]
    fn adts_headers_give_their_audio_specific_config() {
        // AAC LC, 48 kHz (index 3), stereo.
        let h = [0xFF, 0xF1, 0x4C, 0x80, 0x2E, 0x7F, 0xFC];
        assert_eq!(adts_config(&h).unwrap(), vec![0x11, 0x90]);
    }

    /// ffmpeg's MPEG-TS (1 s of 64×48 x264 High with B-frames at 25 fps, AAC 48 kHz) in SRT
    /// messages: parameters first, every frame, times increasing, audio counted in samples.
    #[test]
    fn an_ffmpeg_ts_becomes_frames() {
        let ts = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/seeds/mpegts/ffmpeg-64x48-1s.ts"
        ))
        .unwrap();
        let mut demux = TsToBus::default();
        let mut events = Vec::new();
        for message in ts.chunks(1316) {
            let (e, dropped) = demux.push(message).unwrap();
            assert!(dropped.is_empty());
            events.extend(e);
        }
        let Some(Event::Video(v)) = events.iter().find(|e| matches!(e, Event::Video(_))) else {
            panic!("video parameters")
        };
        assert_eq!((v.width, v.height), (64, 48));
        let Some(Event::Audio(a)) = events.iter().find(|e| matches!(e, Event::Audio(_))) else {
            panic!("audio parameters")
        };
        assert_eq!(a.sample_rate, 48_000);
        let frames = |track| -> Vec<&Frame> {
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Frame(f) if f.track == track => Some(f),
                    _ => None,
                })
                .collect()
        };
        let video = frames(Track::Video);
        // The last access unit waits for the next PES start, which a finished file never sends.
        assert!(video.len() >= 24, "{} video frames", video.len());
        assert!(video[0].keyframe);
        assert!(video.windows(2).all(|w| w[1].dts > w[0].dts));
        assert!(
            video.iter().any(|f| f.pts > f.dts),
            "B-frames keep their PTS"
        );
        let audio = frames(Track::Audio);
        assert!(audio.len() >= 40, "{} audio frames", audio.len());
        assert!(audio.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
    }

    #[test]
    fn garbage_is_not_ts() {
        let mut t = TsToBus::default();
        assert!(matches!(t.push(&[0u8; 2000]), Err(TsError::NotTs(_))));
    }
}
