//! Ingest: protocols that turn a publisher into frames on a stream's bus.

pub mod chunk_guard;
pub mod flv;
pub mod rtmp;
pub mod rtsp;
