//! Counters for `/metrics`. The gauges (streams, sessions) are read from the store when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::store::Counts;
use domain::view::LiveStats;

/// The Prometheus text exposition format (0.0.4), one family (HELP and TYPE) then its samples.
#[derive(Default)]
pub struct Prometheus {
    out: String,
}

impl Prometheus {
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; label values are written as given (ids and names of ours, no quotes).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let _ = write!(self.out, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
        self.family(name, help, kind);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Upper bounds (ms) of the latency histograms' buckets.
const LATENCY_BOUNDS_MS: [u64; 16] = [
    1, 2, 5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 5000,
];

/// A latency histogram (cumulative buckets in the Prometheus text format), lock-free to record.
#[derive(Default)]
pub struct Histogram {
    /// One count per bound plus the overflow bucket; not cumulative here.
    buckets: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn record(&self, d: std::time::Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| ms <= b as f64)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// `name_bucket{le=…}`, `name_sum` and `name_count` lines, in seconds.
    pub fn render(&self, out: &mut Prometheus, name: &str, help: &str) {
        out.family(name, help, "histogram");
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = LATENCY_BOUNDS_MS
                .get(i)
                .map_or("+Inf".to_string(), |ms| format!("{}", *ms as f64 / 1000.0));
            out.sample(&bucket, &[("le", &le)], cumulative);
        }
        out.sample(
            &format!("{name}_sum"),
            &[],
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        );
        out.sample(
            &format!("{name}_count"),
            &[],
            self.count.load(Ordering::Relaxed),
        );
    }
}

/// How long the server takes from a frame's arrival to what it makes of it.
#[derive(Default)]
pub struct Latencies {
    /// Keyframe received → its thumbnail written and listed.
    pub thumbnail: Histogram,
    /// Keyframe that ends a segment received → the segment in the live playlist.
    pub live_segment: Histogram,
    /// The same keyframe → the segment on disk and in the replay playlist.
    pub replay_segment: Histogram,
}

impl Latencies {
    pub fn render(&self, out: &mut Prometheus) {
        self.thumbnail.render(
            out,
            "liveproc_thumbnail_latency_seconds",
            "Keyframe received to its thumbnail written and listed.",
        );
        self.live_segment.render(
            out,
            "liveproc_live_segment_latency_seconds",
            "Segment-ending keyframe received to the segment in the live playlist.",
        );
        self.replay_segment.render(
            out,
            "liveproc_replay_segment_latency_seconds",
            "Segment-ending keyframe received to the segment in the replay playlist on disk.",
        );
    }
}

#[derive(Default)]
pub struct Metrics {
    /// API requests by status class: index 0 = 1xx … 4 = 5xx.
    api_requests: [AtomicU64; 5],
    auth_failures: AtomicU64,
    clips: AtomicU64,
}

impl Metrics {
    pub fn api_request(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.api_requests[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn clip_cut(&self) {
        self.clips.fetch_add(1, Ordering::Relaxed);
    }

    /// The server's own families; `live` holds each live stream's id and figures.
    pub fn render(&self, out: &mut Prometheus, counts: &Counts, live: &[(String, LiveStats)]) {
        out.single(
            "liveproc_organisations",
            "Organisations.",
            "gauge",
            counts.organisations,
        );
        out.single(
            "liveproc_streams",
            "Streams (one per profile of a group).",
            "gauge",
            counts.streams,
        );
        out.single(
            "liveproc_live_sessions",
            "Sessions ingesting now.",
            "gauge",
            counts.live_sessions,
        );
        out.single(
            "liveproc_sessions_total",
            "Sessions ever started.",
            "counter",
            counts.sessions,
        );
        out.family(
            "liveproc_api_requests_total",
            "REST API requests by status class.",
            "counter",
        );
        for (i, c) in self.api_requests.iter().enumerate() {
            let class = format!("{}xx", i + 1);
            out.sample(
                "liveproc_api_requests_total",
                &[("status", &class)],
                c.load(Ordering::Relaxed),
            );
        }
        out.single(
            "liveproc_auth_failures_total",
            "Requests with an unknown API key.",
            "counter",
            self.auth_failures.load(Ordering::Relaxed),
        );
        out.single(
            "liveproc_clips_total",
            "Clips cut through the API.",
            "counter",
            self.clips.load(Ordering::Relaxed),
        );
        type Figure = fn(&LiveStats) -> f64;
        let per_stream: [(&str, &str, &str, Figure); 5] = [
            (
                "liveproc_stream_bitrate_kbps",
                "gauge",
                "Ingest bitrate of a live stream.",
                |s| s.bitrate_kbps,
            ),
            (
                "liveproc_stream_fps",
                "gauge",
                "Ingest video frame rate of a live stream.",
                |s| s.fps,
            ),
            (
                "liveproc_stream_keyframe_interval_ms",
                "gauge",
                "Time between the last two keyframes.",
                |s| s.keyframe_interval_ms.unwrap_or(0) as f64,
            ),
            (
                "liveproc_stream_dropped_frames_total",
                "counter",
                "Bus events lost by slow consumers.",
                |s| s.dropped_frames as f64,
            ),
            (
                "liveproc_stream_bus_lag",
                "gauge",
                "Events waiting on a stream's bus.",
                |s| s.bus_lag as f64,
            ),
        ];
        for (name, kind, help, figure) in per_stream {
            out.family(name, help, kind);
            for (id, stats) in live {
                out.sample(name, &[("stream", id)], figure(stats));
            }
        }
        out.family(
            "liveproc_stream_process_error",
            "A live stream's process that cannot write now (e.g. the disk is full); it retries by itself.",
            "gauge",
        );
        for (id, stats) in live {
            for process in stats.process_errors.keys() {
                out.sample(
                    "liveproc_stream_process_error",
                    &[("stream", id), ("process", process)],
                    1,
                );
            }
        }
    }
}
