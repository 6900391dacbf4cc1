//! The Graph side of the emulator: the directory model and the `$batch` endpoint.

pub mod batch;
pub mod limits;
pub mod model;
