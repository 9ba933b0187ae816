//! One bus per live stream: ingest publishes [`Event`]s, any number of consumers subscribe.
//!
//! A broadcast ring decouples them: ingest never waits for a consumer. A consumer that falls a
//! ring's length behind loses the oldest events, counts them as dropped, and resynchronises.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::frame::{AudioParams, Event, VideoParams};

/// About 8 s of 30 fps video with audio.
const CAPACITY: usize = 1024;

pub struct Bus {
    /// None once closed: the session ended, consumers drain and finish.
    tx: Mutex<Option<broadcast::Sender<Arc<Event>>>>,
    /// The latest parameters, for consumers that join mid-stream.
    params: Mutex<(Option<VideoParams>, Option<AudioParams>)>,
    dropped: Arc<AtomicU64>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            tx: Mutex::new(Some(broadcast::channel(CAPACITY).0)),
            params: Mutex::new((None, None)),
            dropped: Arc::default(),
        }
    }
}

impl Bus {
    pub fn publish(&self, event: Event) {
        match &event {
            Event::Video(p) => self.params.lock().expect("bus params").0 = Some(p.clone()),
            Event::Audio(p) => self.params.lock().expect("bus params").1 = Some(p.clone()),
            Event::Frame(_) => {}
        }
        if let Some(tx) = &*self.tx.lock().expect("bus sender") {
            // No subscriber is not an error: the stream is simply not consumed right now.
            let _ = tx.send(Arc::new(event));
        }
    }

    /// The latest parameters of each track.
    pub fn params(&self) -> (Option<VideoParams>, Option<AudioParams>) {
        self.params.lock().expect("bus params").clone()
    }

    /// Ends the stream for every subscriber (after what they have not read yet).
    pub fn close(&self) {
        self.tx.lock().expect("bus sender").take();
    }

    /// Subscriptions end when the bus is closed or dropped, after draining what is left.
    pub fn subscribe(&self) -> Subscription {
        let (video, audio) = self.params.lock().expect("bus params").clone();
        let rx = match &*self.tx.lock().expect("bus sender") {
            Some(tx) => tx.subscribe(),
            // Already closed: a receiver of a dropped sender ends at once.
            None => broadcast::channel(1).1,
        };
        Subscription {
            rx,
            dropped: self.dropped.clone(),
            pending: video
                .map(Event::Video)
                .into_iter()
                .chain(audio.map(Event::Audio))
                .map(Arc::new)
                .collect(),
            lost: 0,
        }
    }

    /// Events consumers lost because they were too slow, over all consumers.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// How far the slowest consumer is behind, in events.
    pub fn lag(&self) -> usize {
        self.tx
            .lock()
            .expect("bus sender")
            .as_ref()
            .map_or(0, |tx| tx.len())
    }
}

pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    dropped: Arc<AtomicU64>,
    pending: std::collections::VecDeque<Arc<Event>>,
    /// Events this subscription lost; a consumer that needs every frame (a decoder) watches it.
    lost: u64,
}

impl Subscription {
    /// Events lost so far because this consumer fell a ring's length behind.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The next event, or None when the stream has ended (all publishers gone).
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        if let Some(e) = self.pending.pop_front() {
            return Some(e);
        }
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.dropped.fetch_add(n, Ordering::Relaxed);
                    self.lost += n;
                    tracing::warn!(dropped = n, "slow consumer dropped events");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Frame, Track};

    fn frame(i: i64) -> Event {
        Event::Frame(Frame {
            track: Track::Audio,
            dts: i,
            pts: i,
            keyframe: true,
            data: bytes::Bytes::new(),
            arrived: std::time::Instant::now(),
        })
    }

    #[tokio::test]
    async fn slow_consumer_drops_without_blocking_ingest() {
        let bus = Arc::new(Bus::default());
        let mut slow = bus.subscribe();
        for i in 0..(CAPACITY as i64 + 10) {
            bus.publish(frame(i)); // never blocks
        }
        let first = slow.recv().await.unwrap();
        match &*first {
            Event::Frame(f) => assert_eq!(f.dts, 10, "oldest events were dropped"),
            _ => panic!("expected a frame"),
        }
        assert_eq!(bus.dropped(), 10);
        bus.close();
        let mut left = 0;
        while slow.recv().await.is_some() {
            left += 1;
        }
        assert_eq!(left, CAPACITY - 1, "drains, then ends with the bus");
    }
}
