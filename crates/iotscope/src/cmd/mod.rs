//! One module per top-level command.

pub mod demo;
pub mod lab;
pub mod survey;
pub mod telescope;
