//! One module per top-level command.

pub mod advisories;
pub mod alerts;
pub mod blocklist;
pub mod check;
pub mod checks;
pub mod demo;
pub mod detect;
pub mod enrich;
pub mod findings;
pub mod honeypot;
pub mod lab;
pub mod sensor;
pub mod serve;
pub mod share;
pub mod survey;
pub mod telescope;
pub mod users;
