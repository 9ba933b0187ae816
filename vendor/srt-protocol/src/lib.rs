// liveproc: a vendored copy (VENDORED.md); its own warnings are upstream's, not ours to fix.
#![allow(warnings)]
pub mod access;
pub mod connection;
pub mod listener;
pub mod options;
pub mod packet;
pub mod protocol;
pub mod settings;
pub mod statistics;
