//! Container writers and readers.

pub mod boxes;
pub mod cmaf;
pub mod fmp4;
pub mod playlist;
