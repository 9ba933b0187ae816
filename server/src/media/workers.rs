//! The bounded pools for decoding work, run on blocking threads: one for thumbnails and one for
//! motion clips, each with as many places as the machine has cores. Thumbnails wait for a place;
//! a motion clip waits at most half its interval and is then skipped (and counted), so a
//! saturated machine keeps ingest, HLS and recording going and gives up the most expensive
//! preview first. Two pools, because a thumbnail (tens of ms) queued behind motion clips
//! (hundreds of ms each) would be seconds late; sharing the cores costs it far less.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub struct Workers {
    /// Places for thumbnails.
    permits: Arc<Semaphore>,
    /// Places for motion clips.
    clip_permits: Arc<Semaphore>,
    pub size: usize,
    /// Thumbnail decoders, at most one per place in the pool.
    pub keyframe_decoders: super::picture::KeyframeDecoders,
    pub thumbnails: AtomicU64,
    pub thumbnail_cpu_us: AtomicU64,
    pub thumbnails_skipped_flat: AtomicU64,
    pub motionclips: AtomicU64,
    pub motionclip_cpu_us: AtomicU64,
    pub motionclips_skipped_busy: AtomicU64,
    pub failures: AtomicU64,
}

/// Which pool a job runs in.
pub enum Place {
    /// Waits for a place.
    Thumbnail,
    /// Waits at most `wait`, else is not run.
    MotionClip { wait: std::time::Duration },
}

impl Default for Workers {
    fn default() -> Self {
        let size = std::thread::available_parallelism().map_or(2, |n| n.get());
        Workers {
            permits: Arc::new(Semaphore::new(size)),
            clip_permits: Arc::new(Semaphore::new(size)),
            size,
            keyframe_decoders: Default::default(),
            thumbnails: AtomicU64::new(0),
            thumbnail_cpu_us: AtomicU64::new(0),
            thumbnails_skipped_flat: AtomicU64::new(0),
            motionclips: AtomicU64::new(0),
            motionclip_cpu_us: AtomicU64::new(0),
            motionclips_skipped_busy: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

impl Workers {
    /// Runs `job` on the thumbnail pool once a place is free.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await;
        out.ok()
    }

    /// Runs `job` on the motion-clip pool if a place frees up within `wait`; None (and nothing
    /// run) when the pool stays full that long. Jobs that come due together queue briefly; a
    /// saturated pool sheds them.
    pub async fn run_within<T: Send + 'static>(
        &self,
        wait: std::time::Duration,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let permit = tokio::time::timeout(wait, self.clip_permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .ok()
    }

    /// Runs `job` in `place` and adds the CPU time it took (not the time it waited) to `cpu_us`.
    pub async fn timed<T: Send + 'static>(
        &self,
        place: Place,
        cpu_us: &AtomicU64,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let measured = move || {
            let cpu = thread_cpu();
            let out = job();
            (out, thread_cpu().saturating_sub(cpu))
        };
        let (out, cpu) = match place {
            Place::Thumbnail => self.run(measured).await?,
            Place::MotionClip { wait } => self.run_within(wait, measured).await?,
        };
        Workers::count(cpu_us, cpu.as_micros() as u64);
        Some(out)
    }

    /// Prometheus lines for the pool's counters.
    pub fn render(&self, out: &mut crate::metrics::Prometheus) {
        let counters = [
            (
                "liveproc_thumbnails_total",
                "Thumbnails written.",
                &self.thumbnails,
            ),
            (
                "liveproc_thumbnail_cpu_microseconds_total",
                "CPU time spent on thumbnails.",
                &self.thumbnail_cpu_us,
            ),
            (
                "liveproc_thumbnails_skipped_flat_total",
                "Keyframes skipped as black or flat.",
                &self.thumbnails_skipped_flat,
            ),
            (
                "liveproc_motionclips_total",
                "Motion clips written.",
                &self.motionclips,
            ),
            (
                "liveproc_motionclip_cpu_microseconds_total",
                "CPU time spent on motion clips.",
                &self.motionclip_cpu_us,
            ),
            (
                "liveproc_motionclips_skipped_busy_total",
                "Motion clips skipped because the worker pool was full.",
                &self.motionclips_skipped_busy,
            ),
            (
                "liveproc_decode_failures_total",
                "Thumbnail or motion clip jobs that failed.",
                &self.failures,
            ),
        ];
        for (name, help, c) in counters {
            out.single(name, help, "counter", c.load(Ordering::Relaxed));
        }
        out.single(
            "liveproc_workers",
            "Places in each decode worker pool (thumbnails, motion clips).",
            "gauge",
            self.size,
        );
    }

    pub fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// CPU time of the calling thread so far (what a job cost, not how long it waited).
pub fn thread_cpu() -> std::time::Duration {
    cpu_time::ThreadTime::try_now()
        .map(|t| t.as_duration())
        .unwrap_or_default()
}
