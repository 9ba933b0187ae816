//! The media side: ingest turns every live stream into one bus of timed frames per session;
//! each process consumes that bus and writes what it makes through the session handle.
//!
//! ```text
//! ingest/ (RTMP, RTSP) ─ Engine::start ─ Session::publish ─ Bus
//!                                                           ├─ hls ─ replay (mux::cmaf, mux::playlist)
//!                                                           ├─ recording (mux::cmaf)
//!                                                           ├─ thumbnail ┐ workers, picture
//!                                                           ├─ motion_clip ┘
//!                                                           └─ transcode ─ rendition sessions
//! ```
//!
//! Dependencies run downward only: ingest → engine → processes → session → assets, bus,
//! workers → mux, picture → frame. Processes take the session handle, never the engine.

pub mod assets;
pub mod bus;
pub mod clip;
pub mod engine;
pub mod frame;
pub mod hls;
pub mod ingest;
pub mod ladder;
pub mod motion_clip;
pub mod mux;
pub mod picture;
pub mod recording;
pub mod replay;
pub mod session;
pub mod thumbnail;
pub mod transcode;
pub mod workers;

pub use engine::{Engine, Refusal};
pub use session::{Session, Shared};
