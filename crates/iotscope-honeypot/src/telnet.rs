//! One telnet session of the honeypot, sans-IO: bytes from the client in,
//! bytes to send and events out. Speaks like BusyBox telnetd in front of
//! `login` and `ash`: it offers DO ECHO, DO NAWS, WILL ECHO, WILL SGA
//! (character mode, the server echoing), shows the persona's prompts,
//! accepts exactly the dictionary's pairs, says `Login incorrect` to the
//! rest, and hands the shell's lines to [`Shell`].
//!
//! RFC 854 (NVT, IAC escaping, CR LF and CR NUL line ends), RFC 857 (ECHO:
//! a client answering DONT ECHO is not echoed to), RFC 1073 (NAWS: the
//! window size, Cowrie's `cowrie.client.size`).

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::extract::Download;
use crate::persona::Deployment;
use crate::shell::Shell;

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const ECHO: u8 = 1;
const SGA: u8 = 3;
const NAWS: u8 = 31;

/// Longest line kept (bytes beyond it are dropped until the line ends);
/// Mirai's echo chunks are a few hundred bytes.
pub const MAX_LINE: usize = 8192;

/// The pairs the honeypot accepts: exactly these, on every connection.
#[derive(Clone, Debug, Default)]
pub struct Accepted(HashSet<(String, String)>);

impl Accepted {
    /// From the dictionary's pairs.
    pub fn new(pairs: &[iotscope_checks::dict::Pair]) -> Self {
        Accepted(
            pairs
                .iter()
                .map(|p| (p.user.clone(), p.password.clone()))
                .collect(),
        )
    }
    /// Whether `user`/`password` logs in.
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        self.0.contains(&(user.to_string(), password.to_string()))
    }
}

/// What a session saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A login that worked.
    LoginSuccess {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A login that did not.
    LoginFailed {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A line typed at the shell.
    Input {
        /// The line.
        line: String,
    },
    /// A simple command the device does not have.
    Failed {
        /// The command.
        command: String,
    },
    /// A download or connection asked for.
    Download(Download),
    /// The client's window size (NAWS).
    ClientSize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
}

/// The answer to some input.
#[derive(Debug, Default)]
pub struct Step {
    /// Bytes to send.
    pub reply: Vec<u8>,
    /// What happened.
    pub events: Vec<SessionEvent>,
    /// The session ends after `reply` is sent.
    pub close: bool,
    /// A login failed: wait the failure delay before sending `reply` (as
    /// `login` does).
    pub login_failed: bool,
}

#[derive(Debug)]
enum State {
    User,
    Password(String),
    Shell,
    Closed,
}

/// One telnet session.
#[derive(Debug)]
pub struct TelnetSession {
    dep: Arc<Deployment>,
    accepted: Arc<Accepted>,
    state: State,
    shell: Shell,
    // NVT parsing.
    pending: Vec<u8>,
    sb: Option<Vec<u8>>,
    echo: bool,
    // Line assembly.
    line: Vec<u8>,
    last_cr: bool,
    attempts: u32,
    max_attempts: u32,
    input_hash: Sha256,
    lines: u64,
}

/// Terminal bytes for the wire: LF as CR LF (a tty's ONLCR), IAC doubled.
pub fn nvt_out(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            IAC => out.extend_from_slice(&[IAC, IAC]),
            _ => out.push(b),
        }
    }
}

impl TelnetSession {
    /// A session on `dep`, `uptime` seconds after the device booted; at
    /// most `max_attempts` logins before it hangs up (BusyBox login: 3).
    pub fn new(
        dep: Arc<Deployment>,
        accepted: Arc<Accepted>,
        uptime: u64,
        max_attempts: u32,
    ) -> Self {
        let shell = Shell::new(dep.clone(), uptime);
        TelnetSession {
            dep,
            accepted,
            state: State::User,
            shell,
            pending: Vec::new(),
            sb: None,
            echo: true,
            line: Vec::new(),
            last_cr: false,
            attempts: 0,
            max_attempts: max_attempts.max(1),
            input_hash: Sha256::new(),
            lines: 0,
        }
    }

    /// What the server sends on connect: options, banner, login prompt.
    pub fn greeting(&self) -> Vec<u8> {
        let mut out = vec![
            IAC, DO, ECHO, IAC, DO, NAWS, IAC, WILL, ECHO, IAC, WILL, SGA,
        ];
        nvt_out(self.dep.persona.banner.as_bytes(), &mut out);
        nvt_out(self.dep.login_prompt().as_bytes(), &mut out);
        out
    }

    /// The shell's files (for payloads written with echo).
    pub fn shell(&self) -> &Shell {
        &self.shell
    }

    /// SHA-256 (hex) of the lines typed at the shell, each ended by LF: the
    /// same bot script gives the same hash whatever its credentials.
    pub fn input_sha256(&self) -> String {
        crate::hex(&self.input_hash.clone().finalize())
    }

    /// Shell lines so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Feeds bytes from the client.
    pub fn feed(&mut self, input: &[u8]) -> Step {
        let mut step = Step::default();
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(input);
        let mut i = 0;
        while i < buf.len() && !matches!(self.state, State::Closed) {
            let b = buf[i];
            if let Some(sb) = &mut self.sb {
                if b == IAC {
                    match buf.get(i + 1) {
                        None => break,
                        Some(&SE) => {
                            let sb = self.sb.take().unwrap_or_default();
                            if sb.len() >= 5 && sb[0] == NAWS {
                                step.events.push(SessionEvent::ClientSize {
                                    width: u16::from_be_bytes([sb[1], sb[2]]),
                                    height: u16::from_be_bytes([sb[3], sb[4]]),
                                });
                            }
                        }
                        Some(&IAC) => {
                            if sb.len() < 64 {
                                sb.push(IAC)
                            }
                        }
                        Some(_) => {}
                    }
                    i += 2;
                } else {
                    if sb.len() < 64 {
                        sb.push(b);
                    }
                    i += 1;
                }
                continue;
            }
            if b == IAC {
                let Some(&cmd) = buf.get(i + 1) else { break };
                match cmd {
                    WILL | WONT | DO | DONT => {
                        let Some(&opt) = buf.get(i + 2) else { break };
                        match (cmd, opt) {
                            (DONT, ECHO) => self.echo = false,
                            (DO, ECHO) => self.echo = true,
                            // What we did not offer is refused.
                            (DO, o) if o != SGA => step.reply.extend_from_slice(&[IAC, WONT, o]),
                            (WILL, o) if o != NAWS => step.reply.extend_from_slice(&[IAC, DONT, o]),
                            _ => {}
                        }
                        i += 3;
                    }
                    SB => {
                        self.sb = Some(Vec::new());
                        i += 2;
                    }
                    IAC => {
                        self.data(IAC, &mut step);
                        i += 2;
                    }
                    _ => i += 2,
                }
                continue;
            }
            self.data(b, &mut step);
            i += 1;
        }
        if i < buf.len() && !matches!(self.state, State::Closed) {
            self.pending = buf[i..].to_vec();
        }
        if matches!(self.state, State::Closed) {
            step.close = true;
        }
        step
    }

    fn data(&mut self, b: u8, step: &mut Step) {
        if matches!(self.state, State::Closed) {
            return;
        }
        let echo = self.echo && !matches!(self.state, State::Password(_));
        match b {
            b'\r' => {
                self.last_cr = true;
                if echo {
                    step.reply.extend_from_slice(b"\r\n");
                }
                self.end_line(step);
            }
            b'\n' if self.last_cr => self.last_cr = false,
            0 if self.last_cr => self.last_cr = false,
            b'\n' => {
                if echo {
                    step.reply.extend_from_slice(b"\r\n");
                }
                self.end_line(step);
            }
            0x7f | 0x08 => {
                self.last_cr = false;
                if self.line.pop().is_some() && echo {
                    step.reply.extend_from_slice(b"\x08 \x08");
                }
            }
            0x03 => {
                // Ctrl-C: the line is dropped, a fresh prompt.
                self.last_cr = false;
                self.line.clear();
                step.reply.extend_from_slice(b"^C\r\n");
                let prompt = match self.state {
                    State::Shell => self.shell.prompt(),
                    _ => self.dep.login_prompt(),
                };
                self.state = match std::mem::replace(&mut self.state, State::Closed) {
                    State::Password(_) => State::User,
                    s => s,
                };
                nvt_out(prompt.as_bytes(), &mut step.reply);
            }
            0x04 if self.line.is_empty() => {
                self.state = State::Closed;
            }
            0 => {}
            _ => {
                self.last_cr = false;
                if self.line.len() < MAX_LINE {
                    self.line.push(b);
                    if echo {
                        nvt_out(&[b], &mut step.reply);
                    }
                }
            }
        }
    }

    fn end_line(&mut self, step: &mut Step) {
        let raw = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let persona = &self.dep.persona;
        match std::mem::replace(&mut self.state, State::Closed) {
            State::User => {
                if text.is_empty() {
                    nvt_out(self.dep.login_prompt().as_bytes(), &mut step.reply);
                    self.state = State::User;
                } else {
                    nvt_out(persona.password_prompt.as_bytes(), &mut step.reply);
                    self.state = State::Password(text);
                }
            }
            State::Password(user) => {
                let password = text;
                if !self.echo {
                    // The client echoes nothing either; end the line for it.
                } else {
                    step.reply.extend_from_slice(b"\r\n");
                }
                if self.accepted.accepts(&user, &password) {
                    step.events
                        .push(SessionEvent::LoginSuccess { user, password });
                    nvt_out(persona.motd.as_bytes(), &mut step.reply);
                    nvt_out(self.shell.prompt().as_bytes(), &mut step.reply);
                    self.state = State::Shell;
                } else {
                    step.events
                        .push(SessionEvent::LoginFailed { user, password });
                    step.login_failed = true;
                    self.attempts += 1;
                    nvt_out(b"Login incorrect\n", &mut step.reply);
                    if self.attempts >= self.max_attempts {
                        self.state = State::Closed;
                    } else {
                        nvt_out(self.dep.login_prompt().as_bytes(), &mut step.reply);
                        self.state = State::User;
                    }
                }
            }
            State::Shell => {
                self.state = State::Shell;
                self.input_hash.update(&raw);
                self.input_hash.update(b"\n");
                if !text.trim().is_empty() {
                    self.lines += 1;
                    step.events.push(SessionEvent::Input { line: text.clone() });
                }
                let outcome = self.shell.run_line(&text);
                for c in outcome.commands.into_iter().filter(|c| !c.known) {
                    step.events.push(SessionEvent::Failed { command: c.input });
                }
                step.events
                    .extend(outcome.downloads.into_iter().map(SessionEvent::Download));
                nvt_out(&outcome.output, &mut step.reply);
                if outcome.exit {
                    self.state = State::Closed;
                } else {
                    nvt_out(self.shell.prompt().as_bytes(), &mut step.reply);
                }
            }
            State::Closed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::builtin_personas;

    fn session() -> TelnetSession {
        let p = builtin_personas()
            .into_iter()
            .find(|p| p.name == "hisilicon-dvr")
            .unwrap();
        let accepted = Accepted::new(&iotscope_checks::dict::builtin());
        TelnetSession::new(Arc::new(Deployment::new(p, 3)), Arc::new(accepted), 5000, 3)
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn login_shell_and_events() {
        let mut s = session();
        let g = s.greeting();
        assert_eq!(
            &g[..12],
            &[IAC, DO, ECHO, IAC, DO, NAWS, IAC, WILL, ECHO, IAC, WILL, SGA]
        );
        // The prompt names the deployment's host, as `uname -n` does.
        let prompt = format!("{} login: ", s.dep.hostname);
        assert!(text(&g).ends_with(&prompt));
        // The client refuses our echo, sends its window size, in pieces.
        let mut st = s.feed(&[IAC, DONT]);
        st.events
            .extend(s.feed(&[ECHO, IAC, SB, NAWS, 0, 80, 0, 24, IAC]).events);
        st.events.extend(s.feed(&[SE]).events);
        assert_eq!(
            st.events,
            vec![SessionEvent::ClientSize {
                width: 80,
                height: 24
            }]
        );
        let st = s.feed(b"root\r\n");
        assert_eq!(text(&st.reply), "Password: ");
        let st = s.feed(b"wrong\r\n");
        assert!(st.login_failed);
        assert_eq!(text(&st.reply), format!("Login incorrect\r\n{prompt}"));
        s.feed(b"root\r\0");
        let st = s.feed(b"xc3511\n");
        assert_eq!(
            st.events,
            vec![SessionEvent::LoginSuccess {
                user: "root".into(),
                password: "xc3511".into()
            }]
        );
        assert_eq!(text(&st.reply), "# ");
        let st = s.feed(b"/bin/busybox MIRAI\r\n");
        assert_eq!(text(&st.reply), "MIRAI: applet not found\r\n# ");
        assert_eq!(
            st.events,
            vec![
                SessionEvent::Input {
                    line: "/bin/busybox MIRAI".into()
                },
                SessionEvent::Failed {
                    command: "/bin/busybox MIRAI".into()
                }
            ]
        );
        // Binary output is IAC-escaped.
        let st = s.feed(b"cat /bin/echo\r\n");
        assert!(st.reply.starts_with(b"\x7fELF"));
        let st = s.feed(b"exit\r\n");
        assert!(st.close);
    }

    #[test]
    fn echo_backspace_and_attempt_limit() {
        let mut s = session();
        let st = s.feed(b"roo");
        assert_eq!(st.reply, b"roo");
        let st = s.feed(b"x\x7f");
        assert_eq!(st.reply, b"x\x08 \x08");
        s.feed(b"t\r\n");
        let st = s.feed(b"secret\r\n");
        // The password is not echoed.
        assert!(!text(&st.reply).contains("secret"));
        s.feed(b"a\r\nb\r\n");
        let st = s.feed(b"a\r\nb\r\n");
        assert!(st.close, "three failures end the session");
        assert!(s.feed(b"more\r\n").reply.is_empty());
    }

    #[test]
    fn same_script_same_hash() {
        let run = |user: &[u8], pass: &[u8]| {
            let mut s = session();
            s.feed(&[user, b"\r\n", pass, b"\r\n"].concat());
            s.feed(b"enable\r\nsh\r\n/bin/busybox ECCHI\r\n");
            s.input_sha256()
        };
        assert_eq!(run(b"root", b"xc3511"), run(b"admin", b"admin"));
        assert_ne!(run(b"root", b"xc3511"), session().input_sha256());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_safe(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..200), 0..10)) {
            let mut s = session();
            for c in &chunks {
                s.feed(c);
            }
            s.feed(b"root\r\nxc3511\r\n");
            for c in &chunks {
                s.feed(c);
            }
        }
    }
}
