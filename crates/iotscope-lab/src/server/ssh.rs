//! SSH with password logins (russh): the device's version line, its
//! accepted logins, and a shell that records every command and runs none.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::PrivateKey;
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use tokio::net::TcpStream;

use super::Served;
use crate::audit::{Audit, Event};
use crate::devices::Service;

/// Most commands a session records before the device hangs up.
const MAX_COMMANDS: usize = 16;

struct DeviceSsh {
    served: Arc<Served>,
    audit: Audit,
    peer: SocketAddr,
    port: u16,
    line: Vec<u8>,
    commands: usize,
}

impl DeviceSsh {
    fn record(&self, event: Event, detail: &str) {
        self.audit.record(
            &self.served.device,
            "ssh",
            self.port,
            self.peer,
            event,
            detail,
        );
    }

    fn prompt(&self) -> &'static str {
        "# "
    }
}

impl server::Handler for DeviceSsh {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let d = &self.served.device;
        let ok = d.credentials.iter().chain(&d.hardened_logins).any(|c| {
            c.service == Service::Ssh
                && c.port == self.port
                && c.user == user
                && c.password == password
        });
        if ok {
            self.record(Event::Login, user);
            Ok(Auth::Accept)
        } else {
            self.record(Event::LoginFailed, &format!("{user}:{password}"));
            // Like dropbear: a wrong password leaves password auth on offer.
            Ok(Auth::Reject {
                proceed_with_methods: Some(password_only()),
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
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let hello = format!(
            "\r\n\r\nBusyBox v1.19.4 built-in shell (ash)\r\n\r\n{}",
            self.prompt()
        );
        session.data(channel, hello.into_bytes())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let cmd = String::from_utf8_lossy(data).into_owned();
        self.record(Event::Command, &cmd);
        session.channel_success(channel)?;
        let word = cmd.split_whitespace().next().unwrap_or("").to_string();
        session.data(channel, format!("sh: {word}: not found\r\n").into_bytes())?;
        session.exit_status_request(channel, 127)?;
        session.eof(channel)?;
        session.close(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    let cmd = String::from_utf8_lossy(&self.line).trim().to_string();
                    self.line.clear();
                    session.data(channel, b"\r\n".to_vec())?;
                    if cmd.is_empty() {
                        session.data(channel, self.prompt().as_bytes().to_vec())?;
                        continue;
                    }
                    self.record(Event::Command, &cmd);
                    self.commands += 1;
                    if cmd == "exit" || self.commands >= MAX_COMMANDS {
                        session.eof(channel)?;
                        return session.close(channel);
                    }
                    let word = cmd.split_whitespace().next().unwrap_or("");
                    session.data(
                        channel,
                        format!("-sh: {word}: not found\r\n{}", self.prompt()).into_bytes(),
                    )?;
                }
                _ if self.line.len() < 256 => {
                    self.line.push(b);
                    session.data(channel, vec![b])?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn password_only() -> MethodSet {
    MethodSet::from(&[MethodKind::Password][..])
}

/// The host key of every emulated SSH device: fixed, so a client's
/// known-hosts entry stays valid across lab runs.
fn host_key() -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[0x6c; 32]))
}

pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, served: Arc<Served>, audit: &Audit) {
    let port = stream.local_addr().map(|a| a.port()).unwrap_or(22);
    let banner = served
        .device
        .ssh_banner
        .clone()
        .unwrap_or_else(|| "SSH-2.0-dropbear".into());
    let config = Arc::new(server::Config {
        server_id: SshId::Standard(Cow::Owned(banner)),
        keys: vec![host_key()],
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        inactivity_timeout: Some(Duration::from_secs(60)),
        max_auth_attempts: 6,
        methods: password_only(),
        ..Default::default()
    });
    let handler = DeviceSsh {
        served,
        audit: audit.clone(),
        peer,
        port,
        line: Vec::new(),
        commands: 0,
    };
    if let Ok(session) = server::run_stream(config, stream, handler).await {
        let _ = session.await;
    }
}
