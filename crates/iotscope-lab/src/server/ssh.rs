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

    fn keyboard_interactive(&self) -> bool {
        self.served
            .device
            .ssh
            .as_ref()
            .is_some_and(|s| s.auth == "keyboard-interactive")
    }

    /// The methods on offer: password, or keyboard-interactive and
    /// publickey (never accepted).
    fn methods(&self) -> MethodSet {
        if self.keyboard_interactive() {
            MethodSet::from(&[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..])
        } else {
            password_only()
        }
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
                proceed_with_methods: Some(self.methods()),
                partial_success: false,
            })
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if !self.keyboard_interactive() {
            return Ok(Auth::Reject {
                proceed_with_methods: Some(self.methods()),
                partial_success: false,
            });
        }
        let Some(mut answers) = response else {
            // PAM's one prompt, echo off.
            return Ok(Auth::Partial {
                name: Cow::Borrowed(""),
                instructions: Cow::Borrowed(""),
                prompts: Cow::Owned(vec![(Cow::Borrowed("Password: "), false)]),
            });
        };
        let password = answers
            .next()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        self.auth_password(user, &password).await
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

/// The host key of the emulated SSH devices: fixed, so a client's
/// known-hosts entry stays valid across lab runs. Ed25519, or for devices
/// that have only RSA a 2048-bit key generated once for the lab (it
/// protects nothing: the lab listens on loopback only).
fn host_key(kind: &str) -> PrivateKey {
    const LAB_RSA: &str = include_str!("../../data/lab_rsa_host_key");
    if kind == "rsa" {
        // A constant of this crate, checked by its test.
        return PrivateKey::from_openssh(LAB_RSA).expect("the lab's RSA host key parses");
    }
    PrivateKey::from(Ed25519Keypair::from_seed(&[0x6c; 32]))
}

pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, served: Arc<Served>, audit: &Audit) {
    let port = stream.local_addr().map(|a| a.port()).unwrap_or(22);
    let banner = served
        .device
        .ssh_banner
        .clone()
        .unwrap_or_else(|| "SSH-2.0-dropbear".into());
    let key_kind = served
        .device
        .ssh
        .as_ref()
        .map_or("ed25519", |s| s.host_key.as_str())
        .to_string();
    let keyboard_interactive = served
        .device
        .ssh
        .as_ref()
        .is_some_and(|s| s.auth == "keyboard-interactive");
    let config = Arc::new(server::Config {
        server_id: SshId::Standard(Cow::Owned(banner)),
        keys: vec![host_key(&key_kind)],
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        inactivity_timeout: Some(Duration::from_secs(60)),
        max_auth_attempts: 6,
        methods: if keyboard_interactive {
            MethodSet::from(&[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..])
        } else {
            password_only()
        },
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_rsa_host_key_is_rsa() {
        let k = super::host_key("rsa");
        assert_eq!(k.algorithm().as_str(), "ssh-rsa");
        assert_eq!(
            super::host_key("ed25519").algorithm().as_str(),
            "ssh-ed25519"
        );
    }
}
