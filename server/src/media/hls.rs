//! Live HLS: a bus consumer that cuts CMAF fragments at keyframes (about one second each) and
//! keeps a short window of them in memory, served as an fMP4 media playlist.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::bus::Subscription;
use super::frame::Event;
use super::mux::cmaf::{Segment, Segmenter};
use super::mux::playlist::render_playlist;
use super::replay::ReplaySink;
use super::session::Session;

/// Segments kept for live playout.
const WINDOW: usize = 10;

#[derive(Default)]
struct State {
    /// Init segments by version; a parameter change makes a new one.
    inits: Vec<Bytes>,
    segments: VecDeque<Segment>,
    ended: bool,
}

/// The live HLS output of one stream.
#[derive(Default)]
pub struct HlsOutput {
    state: Mutex<State>,
}

impl HlsOutput {
    pub fn playlist(&self) -> Option<String> {
        let s = self.state.lock().expect("hls state");
        s.segments.front()?;
        Some(render_playlist(
            s.segments.iter().map(Segment::entry),
            None,
            s.ended,
        ))
    }

    pub fn init(&self, version: u32) -> Option<Bytes> {
        self.state
            .lock()
            .expect("hls state")
            .inits
            .get(version as usize)
            .cloned()
    }

    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        let s = self.state.lock().expect("hls state");
        s.segments
            .iter()
            .find(|x| x.sequence == sequence)
            .map(|x| x.data.clone())
    }

    pub fn is_ended(&self) -> bool {
        self.state.lock().expect("hls state").ended
    }

    fn push(&self, init: Option<Bytes>, segment: Segment) {
        let mut s = self.state.lock().expect("hls state");
        if let Some(i) = init {
            s.inits.push(i);
        }
        s.segments.push_back(segment);
        while s.segments.len() > WINDOW {
            s.segments.pop_front();
        }
    }

    fn end(&self) {
        self.state.lock().expect("hls state").ended = true;
    }

    fn init_count(&self) -> u32 {
        self.state.lock().expect("hls state").inits.len() as u32
    }
}

/// Cuts the bus into segments until the stream ends.
/// The same segments also go to `replay` when the session keeps one: one writer, two uses. The
/// live playlist gets each segment first; the replay's disk write follows.
pub async fn run(
    mut sub: Subscription,
    session: Arc<Session>,
    out: Arc<HlsOutput>,
    mut replay: Option<ReplaySink>,
) {
    let latency = &session.shared.latency;
    let mut seg = Segmenter::default();
    loop {
        let Some(event) = sub.recv().await else { break };
        let Some((init, segment)) = seg.push(&event, out.init_count()) else {
            continue;
        };
        // The frame that closed the segment arrived just now at ingest (or earlier, if this
        // consumer lags): the segment's availability is measured from it.
        let arrived = match &*event {
            Event::Frame(f) => Some(f.arrived),
            _ => None,
        };
        out.push(init.clone(), segment.clone());
        if let Some(at) = arrived {
            latency.live_segment.record(at.elapsed());
        }
        if let Some(r) = replay.as_mut() {
            if r.segment(init.as_ref(), &segment).await {
                if let Some(at) = arrived {
                    latency.replay_segment.record(at.elapsed());
                }
            }
        }
    }
    if let Some((init, segment)) = seg.flush(out.init_count()) {
        out.push(init.clone(), segment.clone());
        if let Some(r) = replay.as_mut() {
            r.segment(init.as_ref(), &segment).await;
        }
    }
    if let Some(r) = replay {
        r.end().await;
    }
    out.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Frame, Track, VideoParams};

    fn video_params() -> VideoParams {
        VideoParams::for_tests(640, 360)
    }

    #[test]
    fn cuts_at_keyframes_after_a_second() {
        let mut s = Segmenter::default();
        let out = HlsOutput::default();
        s.push(&Event::Video(video_params()), 0);
        // 25 fps, keyframe every 12 frames (0.48 s): a cut needs three GOPs' worth.
        for i in 0..100i64 {
            let f = Frame {
                track: Track::Video,
                dts: i * 3600,
                pts: i * 3600 + 7200,
                keyframe: i % 12 == 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                arrived: std::time::Instant::now(),
            };
            if let Some((init, seg)) = s.push(&Event::Frame(f), out.init_count()) {
                out.push(init, seg);
            }
        }
        let list = out.playlist().unwrap();
        assert!(list.contains("#EXT-X-MAP:URI=\"init-0.mp4\""), "{list}");
        assert!(list.contains("#EXTINF:1.440,\nseg-1.m4s"), "{list}");
        assert!(list.contains("#EXT-X-PROGRAM-DATE-TIME:20"), "{list}");
        assert!(!list.contains("ENDLIST"));
        assert!(out.init(0).is_some() && out.segment(1).is_some());
        out.end();
        assert!(out.playlist().unwrap().ends_with("#EXT-X-ENDLIST\n"));
    }
}
