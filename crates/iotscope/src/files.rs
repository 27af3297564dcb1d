//! Writing output files so that a reader never sees half of one, a planted
//! file cannot redirect one, and each gets the mode its content calls for
//! (through `iotscope_export::write_file`).

use std::path::Path;

use iotscope_export::{write_file, Audience};

/// Writes a file that holds findings, alerts or subscribers' addresses
/// (mode 0600) atomically: an interrupted export leaves the previous file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(write_file(path, bytes, Audience::Private)?)
}

/// Writes a file meant to be published (advisories, blocklists, anonymised
/// shares; mode 0644) atomically.
pub fn write_public(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(write_file(path, bytes, Audience::Public)?)
}
