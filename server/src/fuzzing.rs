//! Entry points that feed arbitrary bytes to every parser of untrusted input: the RTMP session
//! (handshake, our chunk reader and its guard, scuffle-amf0, then our FLV demuxer), an RTSP camera's side of a
//! pull (retina's RTSP, SDP and RTP parsing and depacketizers, then our track conversion), FLV tag bodies, H.264
//! parameter sets and access units (into OpenH264), and the fMP4 readers that crash recovery and
//! clip cutting run on files a crash may have cut short, and the MPEG-TS an SRT caller sends. `fuzz/` wraps each for cargo-fuzz; the
//! test below replays the seeds and mutations of them on every CI run.
//!
//! Each function must return for any input; a panic, hang or abort is a finding.

use bytes::Bytes;

use crate::media::frame::{Event, Track, VideoParams};
use crate::media::ingest::flv::FlvDemuxer;

/// A parser's entry point: takes any bytes, must return.
pub type Target = fn(&[u8]);

/// The targets, by name, as `fuzz/fuzz_targets/` and `fuzz/seeds/` name them.
pub const TARGETS: [(&str, Target); 6] = [
    ("rtmp_session", rtmp_session),
    ("rtsp_session", rtsp_session),
    ("flv_tags", flv_tags),
    ("h264_access_unit", h264_access_unit),
    ("fmp4_read", fmp4_read),
    ("mpegts", mpegts),
];

/// What an SRT caller sends: MPEG-TS, fed to the demuxer in SRT-sized messages (1316 bytes,
/// the last one shorter), as the SRT ingest does; stops at the first error as a session would.
pub fn mpegts(data: &[u8]) {
    let mut ts = crate::media::ingest::mpegts::TsToBus::default();
    for message in data.chunks(1316) {
        if ts.push(message).is_err() {
            return;
        }
    }
}

/// A client's side of an RTMP connection after the handshake: `data` is what it sends once
/// C0, C1 and C2 are through (the harness sends a valid simple handshake first, so inputs
/// need not rediscover it). The server's answers are discarded.
pub fn rtmp_session(data: &[u8]) {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
    }
    let mut input = vec![3u8];
    input.resize(crate::media::ingest::rtmp_guard::HANDSHAKE, 0);
    input.extend_from_slice(data);
    let mut io = tokio::io::join(std::io::Cursor::new(input), tokio::io::sink());
    let mut handler = DemuxOnly {
        demux: FlvDemuxer::default(),
    };
    RUNTIME.with(|rt| {
        let _ = rt.block_on(crate::media::ingest::rtmp_session::run(
            &mut io,
            &mut handler,
        ));
    });
}

/// What an RTSP camera sends to a pull: `data` is the camera's whole side of the connection
/// (answers to DESCRIBE, SETUP, SETUP and PLAY, then interleaved RTP and RTCP), written at once
/// on a loopback connection that then closes. The pull's own code connects and converts every
/// frame as a live pull does, with each video frame's NAL units split as the decoders do.
pub fn rtsp_session(data: &[u8]) {
    rtsp_session_events(data);
}

/// Third-party panics the RTSP pull contains (`rtsp::contained` turns them into a retry), as
/// panic locations name their files; fuzzing goes on past them.
/// sdp-types: `m=` asserted after a malformed session line; retina: `unwrap` on an `m=` line
/// without formats (both found by this target).
const CONTAINED_PANICS: [&str; 2] = [
    "sdp-types-0.1.8/src/parser.rs",
    "retina-0.4.21/src/client/parse.rs",
];

thread_local! {
    static UNEXPECTED_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lets the contained panics unwind to the pull's guard, as in production (libFuzzer's hook
/// aborts on every panic), and hands every other panic to the hook before. Installed once.
fn let_contained_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file()).unwrap_or_default();
            if !CONTAINED_PANICS.iter().any(|f| file.ends_with(f)) {
                UNEXPECTED_PANIC.with(|p| p.set(true));
                previous(info);
            }
        }));
    });
}

/// [`rtsp_session`], answering how many events the pull made of `data`.
fn rtsp_session_events(data: &[u8]) -> usize {
    use crate::media::ingest::rtsp::{connect, contained, next_events, Tracks};
    let_contained_panics_unwind();
    UNEXPECTED_PANIC.with(|p| p.set(false));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
    }
    let events = RUNTIME.with(|rt| {
        rt.block_on(async {
            let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
                return 0;
            };
            let Ok(addr) = listener.local_addr() else {
                return 0;
            };
            let camera = async {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (mut rx, mut tx) = socket.into_split();
                let _ = tx.write_all(data).await;
                let _ = tx.shutdown().await;
                // Read the client's requests until it hangs up: closing with unread bytes
                // would reset the connection before the client has read the answers.
                let mut sink = [0u8; 4096];
                while matches!(rx.read(&mut sink).await, Ok(n) if n > 0) {}
            };
            let client = async {
                let url = url::Url::parse(&format!("rtsp://{addr}/cam")).expect("a URL");
                // No TEARDOWN task left behind: it would dial whatever Content-Base said.
                let options = retina::client::SessionOptions::default()
                    .teardown(retina::client::TeardownPolicy::Never);
                let Ok(Ok((mut demuxed, _))) = contained(connect(url, options)).await else {
                    return 0;
                };
                let mut tracks = Tracks::default();
                let mut avcc = None;
                let mut count = 0;
                while let Ok(Some(Ok(events))) =
                    contained(next_events(&mut demuxed, &mut tracks)).await
                {
                    count += events.len();
                    for e in events {
                        match e {
                            Event::Video(p) => avcc = Some(p.avcc),
                            Event::Frame(f) if f.track == Track::Video => {
                                if let Some(Ok((_, length_size))) =
                                    avcc.as_deref().map(crate::media::picture::parameter_sets)
                                {
                                    let _ = crate::media::picture::to_annexb(
                                        &f.data,
                                        length_size,
                                        &mut Vec::new(),
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                }
                count
            };
            tokio::join!(camera, client).1
        })
    });
    // A panic the pull caught that is not a known, contained one is a finding.
    assert!(
        !UNEXPECTED_PANIC.with(|p| p.get()),
        "rtsp_session: a panic outside the contained ones"
    );
    events
}

/// The server handler without the engine: publishes are accepted and media goes through the
/// same demuxer and NAL unit checks as a live stream's.
struct DemuxOnly {
    demux: FlvDemuxer,
}

impl crate::media::ingest::rtmp_session::Publisher for DemuxOnly {
    async fn publish(&mut self, _app: &str, _name: &str) -> Result<(), String> {
        Ok(())
    }

    async fn media(
        &mut self,
        kind: crate::media::ingest::rtmp_session::Media,
        timestamp: u32,
        data: Bytes,
    ) -> Result<(), String> {
        let events = self
            .demux
            .message(kind, timestamp, data)
            .map_err(|e| e.to_string())?;
        for event in events {
            check_nal_units(&self.demux, &event);
        }
        Ok(())
    }

    async fn unpublish(&mut self) {}
}

/// Splits a video frame into NAL units the way the decoders do.
fn check_nal_units(demux: &FlvDemuxer, event: &Event) {
    if let (Event::Frame(f), Some(video)) = (event, &demux.video) {
        if f.track == Track::Video {
            if let Ok((_, length_size)) = crate::media::picture::parameter_sets(&video.avcc) {
                let _ = crate::media::picture::to_annexb(&f.data, length_size, &mut Vec::new());
            }
        }
    }
}

/// FLV tag bodies as RTMP delivers them: records of `[kind][timestamp: u32][length: u16]
/// [body]`, kind even for video, odd for audio.
pub fn flv_tags(data: &[u8]) {
    let mut demux = FlvDemuxer::default();
    let mut rest = data;
    while rest.len() >= 7 {
        let kind = rest[0];
        let timestamp = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let body = Bytes::copy_from_slice(&rest[7..7 + len]);
        rest = &rest[7 + len..];
        let events = if kind.is_multiple_of(2) {
            demux.video(timestamp, body).map(Vec::from_iter)
        } else {
            demux.audio(timestamp, body)
        };
        match events {
            Ok(events) => events.iter().for_each(|e| check_nal_units(&demux, e)),
            Err(_) => return, // the session would end here
        }
    }
}

/// An AVCDecoderConfigurationRecord (`[length: u16][record]`) and one keyframe's AVCC data,
/// decoded by OpenH264 as a thumbnail would be.
pub fn h264_access_unit(data: &[u8]) {
    let Some(len) = data
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return;
    };
    let Some(avcc) = data.get(2..2 + len) else {
        return;
    };
    let Ok(params) = VideoParams::from_avcc(Bytes::copy_from_slice(avcc)) else {
        return;
    };
    let Ok(mut decoder) = crate::media::picture::H264::new(&params) else {
        return;
    };
    let frame = crate::media::frame::Frame {
        track: Track::Video,
        dts: 0,
        pts: 0,
        keyframe: true,
        data: Bytes::copy_from_slice(&data[2 + len..]),
        arrived: std::time::Instant::now(),
    };
    let _ = decoder.is_disposable(&frame);
    let _ = decoder.keyframe(&frame);
}

/// A fragmented MP4 as the recorder and the replay write it, possibly cut short or damaged:
/// crash recovery's duration reader, and clip cutting's init and segment readers.
pub fn fmp4_read(data: &[u8]) {
    let _ = crate::media::mux::fmp4::duration_seconds(data);
    let _ = crate::media::mux::fmp4::file_duration_seconds(&mut std::io::Cursor::new(data));
    if let Ok(tracks) = crate::media::clip::init_tracks(data) {
        for t in &tracks {
            let _ = t.avcc().map(crate::media::picture::parameter_sets);
        }
    }
    let mut samples = std::collections::HashMap::new();
    let _ = crate::media::clip::segment_samples(data, 0, &mut samples);
}

#[cfg(test)]
mod tests {
    use super::TARGETS;

    /// A short fuzzing run on every test run: each target gets its committed seeds, then
    /// mutations of them (bit flips, truncations, splices, random bytes) from a fixed seed, so
    /// a failure reproduces. `LIVEPROC_FUZZ_RUNS` sets the mutations per target.
    /// `LIVEPROC_FUZZ_REPLAY=TARGET:FILE` runs one input (e.g. a cargo-fuzz artifact).
    #[test]
    fn replay_one_input() {
        let Some(spec) = std::env::var_os("LIVEPROC_FUZZ_REPLAY") else {
            return;
        };
        let spec = spec.to_string_lossy().to_string();
        let (name, file) = spec.split_once(':').expect("TARGET:FILE");
        let (_, target) = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a known target");
        target(&std::fs::read(file).expect("the input file"));
    }

    /// The RTSP seed gets through DESCRIBE, SETUP and PLAY to both tracks' parameters and
    /// frames, so its mutations reach every layer.
    #[test]
    fn the_rtsp_seed_reaches_frames() {
        let seed = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/seeds/rtsp_session/camera-64x48-1s"
        );
        let events = super::rtsp_session_events(&std::fs::read(seed).unwrap());
        assert!(events > 40, "{events} events");
    }

    #[test]
    fn seeds_and_their_mutations_parse_without_panics() {
        let runs: usize = std::env::var("LIVEPROC_FUZZ_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
        for (name, target) in TARGETS {
            let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join(name))
                .unwrap_or_else(|e| panic!("seeds of {name}: {e}"))
                .map(|e| std::fs::read(e.expect("seed").path()).expect("seed file"))
                .collect();
            assert!(!seeds.is_empty(), "{name} has no seeds");
            seeds.sort();
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
            let inputs = seeds
                .clone()
                .into_iter()
                .chain((0..runs).map(|_| rng.mutate(&seeds)));
            for (i, input) in inputs.enumerate() {
                // Keep the input that failed, for `cargo fuzz run NAME FILE` and the seeds.
                if std::panic::catch_unwind(|| target(&input)).is_err() {
                    let kept = std::env::temp_dir().join(format!("liveproc-fuzz-{name}-{i}"));
                    std::fs::write(&kept, &input).expect("keep the failing input");
                    panic!("{name}: input {i} failed; kept in {}", kept.display());
                }
            }
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
            let mut data = seeds[self.below(seeds.len())].clone();
            for _ in 0..1 + self.below(8) {
                let at = self.below(data.len() + 1);
                let byte = at.min(data.len().saturating_sub(1));
                match self.below(6) {
                    0 if !data.is_empty() => data[byte] ^= 1 << self.below(8),
                    1 if !data.is_empty() => data[byte] = [0, 0xFF, 0x7F, 0x80][self.below(4)],
                    2 => data.truncate(at),
                    3 => {
                        let other = &seeds[self.below(seeds.len())];
                        let from = self.below(other.len());
                        let n = self.below(64).min(other.len() - from.min(other.len()));
                        data.splice(at..at, other[from..from + n].iter().copied());
                    }
                    4 => {
                        let n = self.below(16);
                        let bytes: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
                        data.splice(at..at, bytes);
                    }
                    _ => {
                        let n = self.below(32).min(data.len() - at);
                        data.drain(at..at + n);
                    }
                }
            }
            data
        }
    }
}
