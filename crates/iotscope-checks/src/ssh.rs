//! SSH password authentication (russh, ring provider). A connection is
//! reused while the server lets us try again; after a success the client
//! disconnects at once: no channel, no shell, no command.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::PublicKeyOrCertificate;

use crate::dict::Pair;
use crate::{Attempt, CheckSettings, LoginWorker, PairQueue, WorkerFuture};

/// Accepts any host key: the check records what answered and trusts
/// nothing (no data is ever sent after a login).
struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn open(addr: SocketAddr, s: &CheckSettings) -> Option<client::Handle<AnyHostKey>> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(s.read_timeout),
        ..Default::default()
    });
    // Key exchange costs CPU on both sides; a loaded scanner needs room.
    let budget = s.connect_timeout + 2 * s.read_timeout;
    tokio::time::timeout(budget, client::connect(config, addr, AnyHostKey))
        .await
        .ok()?
        .ok()
}

/// The SSH credential check.
pub struct SshLogin;

impl LoginWorker for SshLogin {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        queue: &'a PairQueue,
        s: &'a CheckSettings,
    ) -> WorkerFuture<'a> {
        Box::pin(async move {
            let mut session: Option<client::Handle<AnyHostKey>> = None;
            while let Some(pair) = queue.next() {
                let outcome = attempt(addr, &mut session, &pair, s).await;
                if queue.report(&pair, outcome) {
                    break;
                }
                tokio::time::sleep(queue.backoff()).await;
            }
            if let Some(h) = session.take() {
                let _ = h
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
        })
    }
}

async fn attempt(
    addr: SocketAddr,
    session: &mut Option<client::Handle<AnyHostKey>>,
    pair: &Pair,
    s: &CheckSettings,
) -> Attempt {
    if session.is_none() {
        *session = open(addr, s).await;
        if session.is_none() {
            return Attempt::Unreachable;
        }
    }
    let h = session.as_mut().expect("session");
    let budget = s.read_timeout + Duration::from_secs(1);
    match tokio::time::timeout(budget, h.authenticate_password(&pair.user, &pair.password)).await {
        Ok(Ok(r)) if r.success() => {
            // Close at once: nothing after a login.
            if let Some(h) = session.take() {
                let _ = h
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
            Attempt::Success {
                no_password: false,
                evidence: "SSH password authentication accepted".into(),
            }
        }
        // A rejection that still offers passwords judged the pair. One that
        // offers nothing more is the server hanging up at its cap of tries
        // per connection (russh, OpenSSH MaxAuthTries) without looking at
        // the pair: try it again on a fresh connection.
        Ok(Ok(russh::client::AuthResult::Failure {
            remaining_methods, ..
        })) if !remaining_methods.contains(&russh::MethodKind::Password) => {
            *session = None;
            Attempt::Retry
        }
        Ok(Ok(_)) => Attempt::Failed,
        // The server hung up (too many tries on one connection): the pair
        // was not judged; a fresh connection tries it again.
        _ => {
            *session = None;
            Attempt::Retry
        }
    }
}
