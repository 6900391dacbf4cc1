//! The ARM side of the emulator: the tenant model and the batch endpoint.

pub mod batch;
pub mod model;
