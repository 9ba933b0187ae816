//! Container writers.

pub mod fmp4;
