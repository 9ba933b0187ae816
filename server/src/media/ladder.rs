//! The ladder's bookkeeping: the server's cap on renditions encoded at once, and what each
//! rendition is doing (for the API, the dashboard and `/metrics`).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::session::{EventSink, Session};

/// The server's cap on renditions encoded at once (`--max-transcodes`).
pub struct Capacity {
    max: AtomicUsize,
    used: Arc<AtomicUsize>,
}

impl Default for Capacity {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Capacity {
            max: AtomicUsize::new(2 * cores),
            used: Arc::default(),
        }
    }
}

/// One rendition's place under the cap, given back when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Capacity {
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn reserve(&self) -> Option<Slot> {
        let max = self.max();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.used.clone()))
    }
}

/// What a profile stream's transcode is doing, for the API, the dashboard and `/metrics`.
pub struct Status {
    pub profile: String,
    pub stream_id: String,
    pub target_kbps: u32,
    state: Mutex<(&'static str, Option<String>)>,
    pub width: AtomicU32,
    pub height: AtomicU32,
    pub frames: AtomicU64,
    /// CPU time of this rendition's thread (scaling and encoding), nanoseconds.
    pub cpu_ns: AtomicU64,
    /// CPU time of the group's decoding thread, shared by its renditions.
    pub decode_cpu_ns: Arc<AtomicU64>,
    started: Instant,
    /// Where a change of state is told (`transcode.state`).
    events: Option<EventSink>,
}

impl Status {
    pub fn new(
        profile: &str,
        stream_id: &str,
        target_kbps: u32,
        decode: Arc<AtomicU64>,
        events: Option<EventSink>,
    ) -> Self {
        Status {
            profile: profile.to_string(),
            stream_id: stream_id.to_string(),
            target_kbps,
            state: Mutex::new(("starting", None)),
            width: AtomicU32::default(),
            height: AtomicU32::default(),
            frames: AtomicU64::default(),
            cpu_ns: AtomicU64::default(),
            decode_cpu_ns: decode,
            started: Instant::now(),
            events,
        }
    }

    /// A new state; a change is an event (`transcode.state`) with the rendition as the API
    /// shows it.
    pub fn set(&self, state: &'static str, message: Option<String>) {
        let before = std::mem::replace(
            &mut *self.state.lock().expect("transcode state"),
            (state, message),
        );
        if before.0 != state {
            if let Some(sink) = &self.events {
                let data = serde_json::json!({
                    "streamId": self.stream_id,
                    "profile": self.profile,
                    "sessionId": sink.session(),
                    "transcode": self.view(),
                });
                sink.tell("transcode.state", &self.stream_id, data);
            }
        }
    }

    pub fn state(&self) -> (&'static str, Option<String>) {
        self.state.lock().expect("transcode state").clone()
    }

    /// Since the rendition was set up.
    pub fn age(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn is_running(&self) -> bool {
        self.state().0 == "running"
    }

    pub fn view(&self) -> domain::view::TranscodeView {
        let (state, message) = self.state();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let percent = |ns: u64| (ns as f64 / 1e9 / secs * 1000.0).round() / 10.0;
        let frames = self.frames.load(Ordering::Relaxed);
        let cpu = self.cpu_ns.load(Ordering::Relaxed);
        let size = |a: &AtomicU32| Some(a.load(Ordering::Relaxed)).filter(|v| *v > 0);
        domain::view::TranscodeView {
            state: state.to_string(),
            message,
            width: size(&self.width),
            height: size(&self.height),
            target_kbps: self.target_kbps,
            frames,
            cpu_percent: percent(cpu),
            ms_per_frame: (frames > 0).then(|| (cpu as f64 / frames as f64 / 1e5).round() / 10.0),
            decode_cpu_percent: percent(self.decode_cpu_ns.load(Ordering::Relaxed)),
        }
    }
}

/// A rendition to produce: its profile stream's live session and its place under the cap.
pub struct Rendition {
    pub session: Arc<Session>,
    pub height: u32,
    pub status: Arc<Status>,
    pub slot: Slot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_slots_until_they_are_dropped() {
        let c = Capacity::default();
        c.set_max(2);
        let a = c.reserve().unwrap();
        let _b = c.reserve().unwrap();
        assert!(c.reserve().is_none());
        drop(a);
        assert_eq!(c.used(), 1);
        assert!(c.reserve().is_some());
    }
}
