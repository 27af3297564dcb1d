//! The iotscope lab: test material that stands outside what it tests.
//!
//! For now this is the darknet capture generator ([`darknet`]); emulated
//! devices come with the lab issue. The lab shares no parsing code with the
//! telescope or the survey, so a bug cannot pass by agreeing with itself.

pub mod darknet;
pub mod rng;

pub use darknet::{generate, CaptureFormat, DarknetSpec, Truth, DARKNET_V4, DARKNET_V6};
