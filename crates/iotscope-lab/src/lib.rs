//! The iotscope lab: test material that stands outside what it tests.
//!
//! Emulated IoT devices ([`devices`], served by [`server`], with an
//! [`audit`] log) and the darknet capture generator ([`darknet`]). The lab
//! shares no parsing code with the telescope or the survey, so a bug cannot
//! pass by agreeing with itself.

pub mod audit;
pub mod darknet;
pub mod devices;
pub mod rng;
pub mod server;

pub use darknet::{generate, CaptureFormat, DarknetSpec, Truth, DARKNET_V4, DARKNET_V6};
