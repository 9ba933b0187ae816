//! Container writers and readers.

pub mod boxes;
pub mod fmp4;
