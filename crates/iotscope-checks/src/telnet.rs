//! Telnet login, as a state machine that copes with what embedded devices
//! do: option negotiation (every option refused), banners before the
//! prompt, BusyBox and vendor prompts, "Login incorrect" after a delay,
//! re-prompts, three tries per connection, lockouts, slow devices, and
//! logins without a password. Success is a shell prompt or a post-login
//! banner; then the connection is closed at once: nothing is typed after
//! a login, not even `exit`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dict::Pair;
use crate::{Attempt, CheckSettings};

const IAC: u8 = 255;

/// What the device shows after our last input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// "login:", "Username:" and the like.
    LoginPrompt,
    /// "Password:".
    PasswordPrompt,
    /// A shell prompt or a post-login banner.
    Shell,
    /// "Login incorrect", "Access denied"...
    Incorrect,
    /// "account locked", "too many attempts"...
    Locked,
}

/// Classifies the text received since our last input; `None` while it is
/// not conclusive yet (keep reading).
pub fn classify(text: &str) -> Option<Screen> {
    let lower = text.to_ascii_lowercase();
    if [
        "locked",
        "too many",
        "try again later",
        "temporarily disabled",
    ]
    .iter()
    .any(|k| lower.contains(k))
    {
        return Some(Screen::Locked);
    }
    let last = lower
        .rsplit(['\r', '\n'])
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end();
    if [
        "incorrect",
        "failed",
        "denied",
        "invalid",
        "bad password",
        "wrong",
    ]
    .iter()
    .any(|k| lower.contains(k))
    {
        return Some(Screen::Incorrect);
    }
    if last.ends_with("password:") || last.ends_with("passwd:") {
        return Some(Screen::PasswordPrompt);
    }
    if ["login:", "username:", "user name:", "user:", "login as:"]
        .iter()
        .any(|p| last.ends_with(p))
    {
        return Some(Screen::LoginPrompt);
    }
    // A prompt ends the screen; banner words alone ("BusyBox v1.01 ...
    // built-in shell") do not, as devices print them before the login.
    if last.ends_with(['#', '$', '>', '%']) {
        return Some(Screen::Shell);
    }
    None
}

/// One telnet connection: bytes in, options refused, text kept.
struct Session {
    stream: TcpStream,
    text: String,
    read_timeout: Duration,
}

impl Session {
    async fn open(addr: SocketAddr, s: &CheckSettings) -> std::io::Result<Session> {
        let stream = tokio::time::timeout(s.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
        Ok(Session {
            stream,
            text: String::new(),
            read_timeout: s.read_timeout,
        })
    }

    /// Reads until the screen is conclusive; `None` on close or timeout.
    async fn until_screen(&mut self) -> Option<Screen> {
        self.screen(false).await
    }

    /// The first screen of a connection: a device that shows nothing until
    /// someone presses Enter (serial console servers, some DVRs) gets one
    /// CR LF after a quiet read timeout, as people and nmap's telnet-brute
    /// send.
    async fn first_screen(&mut self) -> Option<Screen> {
        self.screen(true).await
    }

    async fn screen(&mut self, mut poke: bool) -> Option<Screen> {
        let mut buf = [0u8; 1024];
        // An absolute deadline per screen: the read timeout only fires
        // after silence, and a device that trickles a byte a second (a
        // tarpit, a console streaming logs) would reset it for ever
        // (ZGrab2 issue #163). Three read timeouts, the poke included.
        let deadline = tokio::time::Instant::now() + self.read_timeout * 3;
        loop {
            if let Some(s) = classify(&self.text) {
                return Some(s);
            }
            if self.text.len() > 16 * 1024 {
                return None;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let n =
                match tokio::time::timeout(self.read_timeout.min(left), self.stream.read(&mut buf))
                    .await
                {
                    Ok(read) => read.ok()?,
                    Err(_) if poke && self.text.trim().is_empty() => {
                        poke = false;
                        self.stream.write_all(b"\r\n").await.ok()?;
                        continue;
                    }
                    Err(_) => return None,
                };
            if n == 0 {
                return None;
            }
            let mut reply = Vec::new();
            let mut i = 0;
            while i < n {
                if buf[i] == IAC && i + 2 < n && (251..=254).contains(&buf[i + 1]) {
                    let (cmd, opt) = (buf[i + 1], buf[i + 2]);
                    match cmd {
                        253 => reply.extend_from_slice(&[IAC, 252, opt]), // DO -> WONT
                        251 => reply.extend_from_slice(&[IAC, 254, opt]), // WILL -> DONT
                        _ => {}
                    }
                    i += 3;
                } else if buf[i] == IAC && i + 1 < n {
                    i += 2;
                } else {
                    if buf[i] != 0 {
                        self.text.push(buf[i] as char);
                    }
                    i += 1;
                }
            }
            if !reply.is_empty() {
                self.stream.write_all(&reply).await.ok()?;
            }
        }
    }

    async fn send_line(&mut self, line: &str) -> Option<()> {
        self.text.clear();
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .ok()
    }
}

/// Tries `pair` on the session (opening one when needed); the session is
/// kept for the next pair while the device keeps prompting.
async fn try_pair(
    addr: SocketAddr,
    session: &mut Option<Session>,
    pair: &Pair,
    s: &CheckSettings,
) -> Attempt {
    if session.is_none() {
        let Ok(mut fresh) = Session::open(addr, s).await else {
            return Attempt::Unreachable;
        };
        match fresh.first_screen().await {
            Some(Screen::LoginPrompt) => {}
            Some(Screen::Shell) => {
                return Attempt::Success {
                    no_password: true,
                    evidence: format!("a shell without any login: {}", tail(&fresh.text)),
                }
            }
            Some(Screen::Locked) => return Attempt::Locked(tail(&fresh.text)),
            _ => return Attempt::Unreachable,
        }
        *session = Some(fresh);
    }
    let sess = session.as_mut().expect("session");
    if sess.send_line(&pair.user).await.is_none() {
        *session = None;
        return Attempt::Retry;
    }
    let screen = sess.until_screen().await;
    let screen = match screen {
        Some(Screen::PasswordPrompt) => {
            if sess.send_line(&pair.password).await.is_none() {
                *session = None;
                return Attempt::Retry;
            }
            sess.until_screen().await
        }
        Some(Screen::Shell) => {
            let evidence = format!("a shell after the user name alone: {}", tail(&sess.text));
            *session = None; // close: nothing after a login
            return Attempt::Success {
                no_password: true,
                evidence,
            };
        }
        other => other,
    };
    match screen {
        Some(Screen::Shell) => {
            let evidence = tail(&sess.text);
            *session = None; // close: nothing after a login
            Attempt::Success {
                no_password: false,
                evidence,
            }
        }
        Some(Screen::Locked) => {
            let evidence = tail(&sess.text);
            *session = None;
            Attempt::Locked(evidence)
        }
        Some(Screen::Incorrect) => {
            // Wait for the next prompt on this connection, or its end. It
            // may have come with the message: keep the text after it.
            let rest = sess.text.rsplit('\n').next().unwrap_or("").to_string();
            sess.text = if classify(&rest) == Some(Screen::Incorrect) {
                String::new()
            } else {
                rest
            };
            if sess.until_screen().await != Some(Screen::LoginPrompt) {
                *session = None;
            }
            Attempt::Failed
        }
        Some(Screen::LoginPrompt) => Attempt::Failed,
        Some(Screen::PasswordPrompt) | None => {
            *session = None;
            Attempt::Failed
        }
    }
}

fn tail(text: &str) -> String {
    let t = text.trim();
    let start = t.len().saturating_sub(200);
    let start = (start..=t.len())
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(t.len());
    t[start..].to_string()
}

/// The telnet credential check: a login worker's loop over its pairs.
pub struct TelnetLogin;

impl crate::LoginWorker for TelnetLogin {
    fn name(&self) -> &'static str {
        "telnet"
    }

    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        queue: &'a crate::PairQueue,
        s: &'a CheckSettings,
    ) -> crate::WorkerFuture<'a> {
        Box::pin(async move {
            let mut session: Option<Session> = None;
            let mut retries = 0;
            while let Some(pair) = queue.next() {
                let mut outcome = try_pair(addr, &mut session, &pair, s).await;
                // A dropped connection before the answer: one more go.
                while outcome == Attempt::Retry && retries < 3 {
                    retries += 1;
                    outcome = try_pair(addr, &mut session, &pair, s).await;
                }
                if queue.report(&pair, outcome) {
                    break;
                }
                tokio::time::sleep(queue.backoff()).await;
            }
            drop(session);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_of_real_devices() {
        assert_eq!(classify("\r\nHG532e login: "), Some(Screen::LoginPrompt));
        assert_eq!(
            classify("Welcome to HiLinux.\r\n(none) login: "),
            Some(Screen::LoginPrompt)
        );
        assert_eq!(classify("root\r\nPassword: "), Some(Screen::PasswordPrompt));
        assert_eq!(classify("\r\n"), None);
        assert_eq!(
            classify("\r\nLogin incorrect\r\ndvr login: "),
            Some(Screen::Incorrect)
        );
        assert_eq!(
            classify("\r\nLogin incorrect (account locked)\r\n"),
            Some(Screen::Locked)
        );
        assert_eq!(
            classify("\r\n\r\nBusyBox v1.19.3 (2016-05-12) built-in shell (ash)\r\n\r\n~ # "),
            Some(Screen::Shell)
        );
        assert_eq!(classify("\r\nATP>"), Some(Screen::Shell));
        // D-Link prints its shell banner before the login prompt.
        assert_eq!(
            classify("\r\nBusyBox v1.01 (2010.03.31-10:05+0000) Built-in shell (msh)\r\n"),
            None
        );
        assert_eq!(classify("Username: "), Some(Screen::LoginPrompt));
    }
}
