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

/// Creates (or truncates) an output file the user named, refusing to
/// follow a symbolic link at that name (`O_NOFOLLOW`: a link planted in a
/// shared folder must not redirect the write), with `mode` for a new file.
pub fn create_output(path: &Path, mode: u32, append: bool) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    o.open(path).with_context(|| {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            format!(
                "cannot write {}: it is a symbolic link (remove it or name the real file)",
                path.display()
            )
        } else {
            format!("cannot write {}", path.display())
        }
    })
}
