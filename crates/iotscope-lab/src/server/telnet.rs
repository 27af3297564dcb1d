//! A BusyBox-style telnetd: option negotiation, banner, `login:` and
//! `Password:` prompts, "Login incorrect" with a delay, lockout, and a shell
//! that records every command and runs none.
//!
//! Written for the lab alone (not shared with the survey's telnet client),
//! so a misunderstanding of the protocol cannot pass by agreeing with itself.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Served, BYTES_PER_SESSION};
use crate::audit::{Audit, Event};
use crate::devices::Service;

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;

/// What busybox telnetd offers first: DO ECHO, DO NAWS, WILL ECHO, WILL SGA.
const NEGOTIATION: [u8; 12] = [IAC, DO, 1, IAC, DO, 31, IAC, WILL, 1, IAC, WILL, 3];

/// Most commands a shell session records before the device hangs up.
const MAX_COMMANDS: usize = 16;

/// Reads telnet lines, dropping option negotiation.
struct LineReader {
    stream: TcpStream,
    pending: Vec<u8>,
    pos: usize,
    read_total: usize,
    /// Inside IAC SB ... IAC SE.
    in_subnegotiation: bool,
}

impl LineReader {
    async fn byte(&mut self) -> Option<u8> {
        if self.pos == self.pending.len() {
            self.pending.resize(512, 0);
            let n =
                tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut self.pending))
                    .await
                    .ok()?
                    .ok()?;
            if n == 0 {
                return None;
            }
            self.read_total += n;
            if self.read_total > BYTES_PER_SESSION {
                return None;
            }
            self.pending.truncate(n);
            self.pos = 0;
        }
        self.pos += 1;
        Some(self.pending[self.pos - 1])
    }

    /// The next line of data, without its end (CR LF, CR NUL or LF), at
    /// most 256 bytes kept.
    async fn line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        loop {
            let b = self.byte().await?;
            if b == IAC {
                match self.byte().await? {
                    IAC if !self.in_subnegotiation => line.push(IAC),
                    IAC => {}
                    WILL | WONT | DO | DONT => {
                        self.byte().await?;
                    }
                    SB => self.in_subnegotiation = true,
                    SE => self.in_subnegotiation = false,
                    _ => {}
                }
                continue;
            }
            if self.in_subnegotiation {
                continue;
            }
            match b {
                b'\r' | b'\n' => {
                    if b == b'\r' {
                        // CR is followed by LF or NUL; eat it if it is there.
                        if self.pos < self.pending.len()
                            && matches!(self.pending[self.pos], b'\n' | 0)
                        {
                            self.pos += 1;
                        }
                    }
                    return Some(String::from_utf8_lossy(&line).into_owned());
                }
                0 => {}
                _ if line.len() < 256 => line.push(b),
                _ => {}
            }
        }
    }
}

pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, served: &Served, audit: &Audit) {
    let d = &served.device;
    let Some(t) = d.telnet.clone() else { return };
    let port = stream.local_addr().map(|a| a.port()).unwrap_or(23);
    let login = d
        .credentials
        .iter()
        .chain(&d.hardened_logins)
        .find(|c| c.service == Service::Telnet && c.port == port)
        .cloned();
    let mut r = LineReader {
        stream,
        pending: Vec::new(),
        pos: 0,
        read_total: 0,
        in_subnegotiation: false,
    };
    if t.enter_first && r.line().await.is_none() {
        return;
    }
    if t.greeting_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(t.greeting_delay_ms)).await;
    }
    let mut hello = NEGOTIATION.to_vec();
    hello.extend_from_slice(&encode(&t.banner, &t.encoding));
    if r.stream.write_all(&hello).await.is_err() {
        return;
    }
    for _ in 0..t.attempts_per_connection {
        let user = if t.password_only {
            String::new()
        } else {
            if r.stream
                .write_all(&encode(&t.login_prompt, &t.encoding))
                .await
                .is_err()
            {
                return;
            }
            let Some(user) = r.line().await else { return };
            user.trim().to_string()
        };
        // The server echoes what the user types (it said WILL ECHO).
        if r.stream
            .write_all(format!("{user}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        if user.is_empty() && !t.password_only {
            continue;
        }
        let locked = {
            let st = served.state.lock().expect("state lock");
            st.locked_until
                .is_some_and(|u| tokio::time::Instant::now() < u)
        };
        let password = if t.no_password && !locked && login.as_ref().is_some_and(|l| l.user == user)
        {
            None
        } else {
            if r.stream
                .write_all(&encode(&t.password_prompt, &t.encoding))
                .await
                .is_err()
            {
                return;
            }
            let Some(p) = r.line().await else { return };
            let _ = r.stream.write_all(b"\r\n").await;
            Some(p)
        };
        let ok = !locked
            && (t.accept_any
                || login.as_ref().is_some_and(|l| {
                    l.user == user && password.as_deref().is_none_or(|p| p == l.password)
                }));
        if ok {
            audit.record(d, "telnet", port, peer, Event::Login, &user);
            shell(&mut r, peer, served, port, audit, &t).await;
            return;
        }
        let detail = format!(
            "{user}:{}{}",
            password.as_deref().unwrap_or(""),
            if locked { " (locked)" } else { "" }
        );
        audit.record(d, "telnet", port, peer, Event::LoginFailed, &detail);
        {
            let mut st = served.state.lock().expect("state lock");
            st.telnet_failures += 1;
            if t.lockout_after > 0 && st.telnet_failures >= t.lockout_after && !locked {
                st.locked_until =
                    Some(tokio::time::Instant::now() + Duration::from_secs(t.lockout_secs));
                st.telnet_failures = 0;
            }
        }
        tokio::time::sleep(Duration::from_millis(t.fail_delay_ms)).await;
        let msg = match (locked, t.failure_message.is_empty()) {
            (true, _) => format!("{} (account locked)\r\n", t.failure_message),
            (false, false) => format!("{}\r\n", t.failure_message),
            (false, true) => String::new(),
        };
        if r.stream
            .write_all(&encode(&msg, &t.encoding))
            .await
            .is_err()
        {
            return;
        }
    }
    if t.password_only {
        // A last prompt it will never read, then the goodbye: a client that
        // answers that prompt sends into a closing connection.
        if r.stream
            .write_all(&encode(&t.password_prompt, &t.encoding))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = r.stream.write_all(b"\r\n% Bad passwords\r\n").await;
    }
}

/// The text as the device's firmware puts it on the wire: UTF-8, or GBK
/// for the few characters the lab's legacy consoles print (others become
/// `?`, as a GBK terminal would show them).
fn encode(text: &str, encoding: &str) -> Vec<u8> {
    if encoding != "gbk" {
        return text.as_bytes().to_vec();
    }
    const GBK: &[(char, [u8; 2])] = &[
        ('用', [0xd3, 0xc3]),
        ('户', [0xbb, 0xa7]),
        ('名', [0xc3, 0xfb]),
        ('密', [0xc3, 0xdc]),
        ('码', [0xc2, 0xeb]),
        ('错', [0xb4, 0xed]),
        ('误', [0xce, 0xf3]),
        ('：', [0xa3, 0xba]),
    ];
    let mut out = Vec::new();
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else if let Some((_, b)) = GBK.iter().find(|(k, _)| *k == c) {
            out.extend_from_slice(b);
        } else {
            out.push(b'?');
        }
    }
    out
}

async fn shell(
    r: &mut LineReader,
    peer: SocketAddr,
    served: &Served,
    port: u16,
    audit: &Audit,
    t: &crate::devices::TelnetBehaviour,
) {
    let prompt = t.shell_prompt.as_str();
    if !t.motd.is_empty() {
        let motd = format!("\r\n{}", t.motd);
        if r.stream.write_all(motd.as_bytes()).await.is_err() {
            return;
        }
    }
    if t.shell_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(t.shell_delay_ms)).await;
    }
    let hello = if t.password_only {
        format!("\r\n{prompt}")
    } else {
        format!("\r\n\r\nBusyBox v1.19.3 (2016-05-12 14:50:22 CST) built-in shell (ash)\r\nEnter 'help' for a list of built-in commands.\r\n\r\n{prompt}")
    };
    if r.stream.write_all(hello.as_bytes()).await.is_err() {
        return;
    }
    for _ in 0..MAX_COMMANDS {
        let Some(cmd) = r.line().await else { return };
        let cmd = cmd.trim();
        if cmd.is_empty() {
            let _ = r.stream.write_all(prompt.as_bytes()).await;
            continue;
        }
        audit.record(
            &served.device,
            "telnet",
            port,
            peer,
            crate::audit::Event::Command,
            cmd,
        );
        if cmd == "exit" || cmd == "logout" {
            return;
        }
        let word = cmd.split_whitespace().next().unwrap_or("");
        let reply = format!("{cmd}\r\n-sh: {word}: not found\r\n{prompt}");
        if r.stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
