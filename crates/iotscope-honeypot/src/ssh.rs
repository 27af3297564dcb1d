//! The SSH listener: russh (RFC 4253/4252/4254) with password logins from
//! the same dictionary as telnet, the persona's Dropbear identification,
//! an Ed25519 host key derived from the deployment's seed (two honeypots
//! never share a key; one keeps its key across restarts), and the same
//! emulated shell for `shell` and `exec` channel requests. Everything goes
//! through the session [`Log`] telnet uses.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::PrivateKey;
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::persona::SplitMix;
use crate::server::{Log, Shared};
use crate::shell::Shell;
use crate::telnet::{SessionEvent, MAX_LINE};

/// The deployment's host key: Ed25519 from 32 seeded bytes.
pub fn host_key(seed: u64) -> PrivateKey {
    let mut rng = SplitMix::new(seed ^ 0x5548_534b_4559);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    PrivateKey::from(Ed25519Keypair::from_seed(&bytes))
}

struct State {
    log: Option<Log>,
    shell: Shell,
    line: Vec<u8>,
    pty: bool,
    input: usize,
    input_hash: Sha256,
    /// Why the session ended, when the handler decided it.
    reason: Option<&'static str>,
}

struct Handler {
    state: Arc<Mutex<State>>,
    max_input: usize,
}

impl Handler {
    /// Runs one shell line: its events, and the bytes to show.
    async fn line(&self, st: &mut State, raw: &[u8]) -> (Vec<u8>, bool) {
        st.input_hash.update(raw);
        st.input_hash.update(b"\n");
        let text = String::from_utf8_lossy(raw).into_owned();
        let outcome = st.shell.run_line(&text);
        if let Some(log) = st.log.as_mut() {
            if !text.trim().is_empty() {
                log.note(SessionEvent::Input { line: text.clone() }).await;
            }
            for c in outcome.commands.iter().filter(|c| !c.known) {
                log.note(SessionEvent::Failed {
                    command: c.input.clone(),
                })
                .await;
            }
            for d in &outcome.downloads {
                log.note(SessionEvent::Download(d.clone())).await;
            }
        }
        let mut out = Vec::with_capacity(outcome.output.len() + 16);
        for &b in &outcome.output {
            // A pty's ONLCR.
            if b == b'\n' && st.pty {
                out.push(b'\r');
            }
            out.push(b);
        }
        (out, outcome.exit)
    }
}

impl server::Handler for Handler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let mut st = self.state.lock().await;
        let Some(log) = st.log.as_mut() else {
            return Ok(Auth::reject());
        };
        let ok = log.rec.login.is_none() && log.shared.config.accepted.accepts(user, password);
        let (user, password) = (user.to_string(), password.to_string());
        if ok {
            log.note(SessionEvent::LoginSuccess { user, password })
                .await;
            Ok(Auth::Accept)
        } else {
            log.note(SessionEvent::LoginFailed { user, password }).await;
            Ok(Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::Password][..])),
                partial_success: false,
            })
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let mut st = self.state.lock().await;
        st.pty = true;
        if let Some(log) = st.log.as_mut() {
            let (width, height) = (
                cols.min(u16::MAX as u32) as u16,
                rows.min(u16::MAX as u32) as u16,
            );
            log.note(SessionEvent::ClientSize { width, height }).await;
        }
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let st = self.state.lock().await;
        session.channel_success(channel)?;
        let p = &st.shell;
        let motd = st
            .log
            .as_ref()
            .map(|l| l.shared.config.deployment.persona.motd.clone())
            .unwrap_or_default();
        let mut hello = Vec::new();
        for b in motd.bytes() {
            if b == b'\n' {
                hello.push(b'\r');
            }
            hello.push(b);
        }
        hello.extend_from_slice(p.prompt().as_bytes());
        session.data(channel, hello)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let mut st = self.state.lock().await;
        session.channel_success(channel)?;
        let cmd: Vec<u8> = data.iter().take(MAX_LINE).copied().collect();
        st.input += data.len();
        let (out, _) = self.line(&mut st, &cmd).await;
        session.data(channel, out)?;
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        st.reason = Some("exit");
        session.close(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let mut st = self.state.lock().await;
        st.input += data.len();
        if st.input > self.max_input {
            st.reason = Some("input limit");
            return Err(russh::Error::Disconnect);
        }
        let mut echo = Vec::new();
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    if st.pty {
                        echo.extend_from_slice(b"\r\n");
                    }
                    let raw = std::mem::take(&mut st.line);
                    let (out, exit) = self.line(&mut st, &raw).await;
                    echo.extend_from_slice(&out);
                    if exit {
                        session.data(channel, echo)?;
                        session.exit_status_request(channel, 0)?;
                        session.eof(channel)?;
                        st.reason = Some("exit");
                        return session.close(channel);
                    }
                    echo.extend_from_slice(st.shell.prompt().as_bytes());
                }
                0x7f | 0x08 => {
                    let erased = st.line.pop().is_some();
                    if erased && st.pty {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                0x04 if st.line.is_empty() => {
                    session.data(channel, echo)?;
                    st.reason = Some("exit");
                    session.eof(channel)?;
                    return session.close(channel);
                }
                _ if st.line.len() < MAX_LINE => {
                    st.line.push(b);
                    if st.pty {
                        echo.push(b);
                    }
                }
                _ => {}
            }
        }
        if !echo.is_empty() {
            session.data(channel, echo)?;
        }
        Ok(())
    }
}

/// One SSH connection, from identification to record.
pub(crate) async fn ssh_session(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let cfg = &shared.config;
    let lim = cfg.limits.clone();
    let log = Log::open(shared.clone(), peer, local, "ssh").await;
    let started = log.started;
    let shell = Shell::new(cfg.deployment.clone(), log.uptime());
    let state = Arc::new(Mutex::new(State {
        log: Some(log),
        shell,
        line: Vec::new(),
        pty: false,
        input: 0,
        input_hash: Sha256::new(),
        reason: None,
    }));
    let config = Arc::new(server::Config {
        server_id: SshId::Standard(Cow::Owned(cfg.deployment.persona.ssh_banner.clone())),
        keys: vec![host_key(cfg.seed)],
        // Dropbear's pause after a wrong password, as `login`'s for telnet.
        auth_rejection_time: lim.login_fail_delay,
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(lim.idle_timeout),
        max_auth_attempts: lim.max_attempts as usize,
        methods: MethodSet::from(&[MethodKind::Password][..]),
        // What a Dropbear of 2014 offers (curve25519 and the classic groups),
        // not this library's post-quantum first choice under an old banner.
        preferred: russh::Preferred {
            kex: Cow::Borrowed(&[
                russh::kex::CURVE25519_PRE_RFC_8731,
                russh::kex::ECDH_SHA2_NISTP256,
                russh::kex::DH_G14_SHA1,
                russh::kex::DH_G1_SHA1,
                russh::kex::EXTENSION_SUPPORT_AS_SERVER,
            ]),
            ..Default::default()
        },
        ..Default::default()
    });
    let handler = Handler {
        state: state.clone(),
        max_input: lim.max_input,
    };
    let mut closing = shared.closing.clone();
    let logged_in = {
        let state = state.clone();
        async move {
            tokio::time::sleep_until((started + lim.login_timeout).into()).await;
            let st = state.lock().await;
            if st.log.as_ref().is_some_and(|l| l.rec.login.is_some()) {
                drop(st);
                std::future::pending::<()>().await;
            }
        }
    };
    // The client's identification line comes before the session task
    // exists: bound the wait for it by the login timeout.
    let running = tokio::select! {
        r = tokio::time::timeout(lim.login_timeout, server::run_stream(config, stream, handler)) => match r {
            Ok(Ok(r)) => Some(r),
            Ok(Err(_)) => None,
            Err(_) => None,
        },
        _ = closing.changed() => None,
    };
    let mut timed_out = None;
    if let Some(mut running) = running {
        let handle = running.handle();
        let session_end = tokio::time::sleep_until((started + lim.session_max).into());
        tokio::select! {
            _ = &mut running => {}
            _ = session_end => timed_out = Some("session length"),
            _ = logged_in => timed_out = Some("login timeout"),
            _ = closing.changed() => timed_out = Some("shutdown"),
        }
        if timed_out.is_some() {
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "bye".into(), "en".into())
                .await;
            let _ = tokio::time::timeout(Duration::from_secs(2), running).await;
        }
    } else if *shared.closing.borrow() {
        timed_out = Some("shutdown");
    } else if Instant::now() >= started + lim.login_timeout {
        timed_out = Some("login timeout");
    } else {
        timed_out = Some("client");
    }
    let mut st = state.lock().await;
    let reason = timed_out.or(st.reason).unwrap_or_else(|| {
        let login = st.log.as_ref().is_some_and(|l| l.rec.login.is_some());
        if !login && Instant::now() >= started + lim.idle_timeout {
            "idle"
        } else {
            "client"
        }
    });
    let sha: String = crate::hex(&st.input_hash.clone().finalize());
    if let Some(log) = st.log.take() {
        log.finish(&st.shell, sha, reason).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_keys_follow_the_seed() {
        let a = super::host_key(1).public_key().to_openssh().unwrap();
        assert_eq!(a, super::host_key(1).public_key().to_openssh().unwrap());
        assert_ne!(a, super::host_key(2).public_key().to_openssh().unwrap());
        assert!(a.starts_with("ssh-ed25519 "));
    }
}
