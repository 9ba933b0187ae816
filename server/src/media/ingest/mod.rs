//! Ingest: protocols that turn a publisher into frames on a stream's bus.

pub mod flv;
pub mod mpegts;
pub mod rtmp;
pub mod rtmp_chunks;
pub mod rtmp_guard;
pub mod rtmp_session;
pub mod rtsp;
pub mod srt;
pub mod to_opus;
