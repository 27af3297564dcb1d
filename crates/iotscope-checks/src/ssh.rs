//! SSH credential checks (russh, ring provider, RSA through the pure-Rust
//! `rsa` crate). A connection first asks which methods the server offers
//! (an RFC 4252 `none` request), then tries pairs with `password`, or with
//! `keyboard-interactive` (RFC 4256: the password typed at the server's
//! `Password:` prompt) where that is all it offers, as FreeBSD's default
//! sshd, PAM-based embedded servers and BMCs do (nmap issue #1091). A
//! server offering neither has no password login to check: the check says
//! so (`check_incomplete`) instead of reconnecting. A connection is reused
//! while the server lets us try again; after a success the client
//! disconnects at once: no channel, no shell, no command.
//!
//! Algorithms: russh's defaults plus what embedded servers still use and
//! russh offers (Dropbear's diffie-hellman-group14-sha1 and group1-sha1,
//! group-exchange-sha1, ECDH over NIST curves, AES-CBC, HMAC-SHA1); host
//! keys Ed25519, ECDSA and RSA (rsa-sha2-512, rsa-sha2-256, ssh-rsa). DSS
//! host keys and 3DES are not offered (russh needs extra crates for them).
//! Weak algorithms are acceptable here: the check sends nothing secret
//! beyond a factory password, and trusts nothing it receives. Lines a
//! server sends before its version line (RFC 4253 section 4.2) are skipped
//! by russh.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::PublicKeyOrCertificate;
use russh::{cipher, kex, mac, MethodKind, MethodSet, Preferred};

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

/// russh's defaults, then the older algorithms embedded servers still
/// offer (see the module documentation).
pub fn preferred() -> Preferred {
    let d = Preferred::DEFAULT;
    let is_ext = |k: &kex::Name| {
        [
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]
        .contains(k)
    };
    let mut kexes: Vec<kex::Name> = d.kex.iter().filter(|k| !is_ext(k)).cloned().collect();
    kexes.extend([
        kex::ECDH_SHA2_NISTP256,
        kex::ECDH_SHA2_NISTP384,
        kex::ECDH_SHA2_NISTP521,
        kex::DH_G14_SHA1,
        kex::DH_GEX_SHA1,
        kex::DH_G1_SHA1,
    ]);
    kexes.extend(d.kex.iter().filter(|k| is_ext(k)).cloned());
    let mut ciphers = d.cipher.to_vec();
    ciphers.extend([
        cipher::AES_128_GCM,
        cipher::AES_128_CBC,
        cipher::AES_192_CBC,
        cipher::AES_256_CBC,
    ]);
    let mut macs = d.mac.to_vec();
    macs.extend([mac::HMAC_SHA1_ETM, mac::HMAC_SHA1]);
    Preferred {
        kex: Cow::Owned(kexes),
        cipher: Cow::Owned(ciphers),
        mac: Cow::Owned(macs),
        ..d
    }
}

/// How a connection's server takes a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Password,
    KeyboardInteractive,
}

struct Conn {
    handle: client::Handle<AnyHostKey>,
    method: Method,
}

fn methods_text(m: &MethodSet) -> String {
    let names: Vec<&str> = m.iter().map(<&str>::from).collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// Opens a connection and learns the methods on offer with a `none`
/// request for `user`. `Err` is the attempt's outcome when there is no
/// connection to try a pair on.
async fn open(
    addr: SocketAddr,
    user: &str,
    queue: &PairQueue,
    s: &CheckSettings,
) -> Result<Conn, Attempt> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(s.read_timeout),
        preferred: preferred(),
        ..Default::default()
    });
    // Key exchange costs CPU on both sides; a loaded scanner needs room.
    let budget = s.connect_timeout + 2 * s.read_timeout;
    let mut handle =
        match tokio::time::timeout(budget, client::connect(config, addr, AnyHostKey)).await {
            Ok(Ok(h)) => h,
            // No algorithm in common is an answer, not silence.
            Ok(Err(e @ (russh::Error::NoCommonAlgo { .. } | russh::Error::Version))) => {
                return Err(Attempt::Unsupported(format!("SSH handshake refused: {e}")))
            }
            _ => return Err(Attempt::Unreachable),
        };
    // The first `none` request for a user name goes alone: a server that
    // lets that user in without a password must see one login, not one per
    // worker.
    let first = match queue.user_turn(user).await {
        crate::UserTurn::Go { first } => first,
        crate::UserTurn::Stop => return Err(Attempt::Skipped),
    };
    let none = tokio::time::timeout(s.read_timeout, handle.authenticate_none(user)).await;
    if first {
        queue.user_settled(user, matches!(none, Ok(Ok(AuthResult::Failure { .. }))));
    }
    let offered = match none {
        Ok(Ok(AuthResult::Success)) => {
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            return Err(Attempt::Success {
                no_password: true,
                evidence: "SSH \"none\" authentication accepted: no password asked".into(),
            });
        }
        Ok(Ok(AuthResult::Failure {
            remaining_methods, ..
        })) => remaining_methods,
        _ => return Err(Attempt::Retry),
    };
    let method = if offered.contains(&MethodKind::Password) {
        Method::Password
    } else if offered.contains(&MethodKind::KeyboardInteractive) {
        Method::KeyboardInteractive
    } else {
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        return Err(Attempt::Unsupported(format!(
            "SSH offers {} and no password or keyboard-interactive login",
            methods_text(&offered)
        )));
    };
    Ok(Conn { handle, method })
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
            let mut conn: Option<Conn> = None;
            while let Some(pair) = queue.next() {
                let outcome = attempt(addr, &mut conn, &pair, queue, s).await;
                if queue.report(&pair, outcome) {
                    break;
                }
                tokio::time::sleep(queue.backoff()).await;
            }
            if let Some(c) = conn.take() {
                let _ = c
                    .handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
        })
    }
}

/// The answers to a keyboard-interactive round: the password at a
/// password prompt (or an echo-off prompt with no text), the user at a
/// user prompt; `None` when the server asks something else (a one-time
/// code), which no dictionary answers.
pub fn answers(prompts: &[(String, bool)], pair: &Pair) -> Option<Vec<String>> {
    prompts
        .iter()
        .map(|(text, echo)| {
            let t = text.as_bytes();
            if crate::telnet::names_password(t) || !echo && text.trim().is_empty() {
                Some(pair.password.clone())
            } else if crate::telnet::names_user(t) {
                Some(pair.user.clone())
            } else {
                None
            }
        })
        .collect()
}

async fn keyboard_interactive(h: &mut client::Handle<AnyHostKey>, pair: &Pair) -> Attempt {
    let mut reply = h
        .authenticate_keyboard_interactive_start(pair.user.clone(), None)
        .await;
    // A few rounds: PAM may send an empty informational round first.
    for _ in 0..4 {
        match reply {
            Ok(KeyboardInteractiveAuthResponse::Success) => {
                return Attempt::Success {
                    no_password: false,
                    evidence: "SSH keyboard-interactive login accepted the password".into(),
                }
            }
            Ok(KeyboardInteractiveAuthResponse::Failure {
                remaining_methods, ..
            }) => {
                return if remaining_methods.contains(&MethodKind::KeyboardInteractive) {
                    Attempt::Failed
                } else {
                    Attempt::Retry
                }
            }
            Ok(KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. }) => {
                let asked: Vec<(String, bool)> =
                    prompts.into_iter().map(|p| (p.prompt, p.echo)).collect();
                let Some(answers) = answers(&asked, pair) else {
                    let what: Vec<&str> = asked.iter().map(|(t, _)| t.trim()).collect();
                    return Attempt::Unsupported(format!(
                        "SSH keyboard-interactive asks {what:?}, not a password"
                    ));
                };
                reply = h.authenticate_keyboard_interactive_respond(answers).await;
            }
            Err(_) => return Attempt::Retry,
        }
    }
    Attempt::Unsupported("SSH keyboard-interactive asked more than four rounds".into())
}

async fn attempt(
    addr: SocketAddr,
    conn: &mut Option<Conn>,
    pair: &Pair,
    queue: &PairQueue,
    s: &CheckSettings,
) -> Attempt {
    if conn.is_none() {
        match open(addr, &pair.user, queue, s).await {
            Ok(c) => *conn = Some(c),
            Err(outcome) => return outcome,
        }
    }
    let c = conn.as_mut().expect("connection");
    let budget = 2 * s.read_timeout + Duration::from_secs(1);
    let outcome = match c.method {
        Method::Password => {
            match tokio::time::timeout(
                budget,
                c.handle.authenticate_password(&pair.user, &pair.password),
            )
            .await
            {
                Ok(Ok(r)) if r.success() => Attempt::Success {
                    no_password: false,
                    evidence: "SSH password authentication accepted".into(),
                },
                // A rejection that still offers passwords judged the pair.
                // One that offers nothing more, on a server that offered
                // passwords when the connection opened, is its cap of tries
                // per connection (OpenSSH MaxAuthTries) without looking at
                // the pair: try it again on a fresh connection.
                Ok(Ok(AuthResult::Failure {
                    remaining_methods, ..
                })) if !remaining_methods.contains(&MethodKind::Password) => Attempt::Retry,
                Ok(Ok(_)) => Attempt::Failed,
                // The server hung up: the pair was not judged.
                _ => Attempt::Retry,
            }
        }
        Method::KeyboardInteractive => {
            match tokio::time::timeout(budget, keyboard_interactive(&mut c.handle, pair)).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Retry,
            }
        }
    };
    // Close at once after a login (nothing after it), and drop a
    // connection that can take no further pair.
    if !matches!(outcome, Attempt::Failed) {
        if let Some(c) = conn.take() {
            let _ = c
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyboard_interactive_prompts_get_the_password_or_nothing() {
        let pair = Pair {
            user: "ubnt".into(),
            password: "ubnt".into(),
        };
        let ask = |p: &[(&str, bool)]| {
            answers(
                &p.iter()
                    .map(|(t, e)| (t.to_string(), *e))
                    .collect::<Vec<_>>(),
                &pair,
            )
        };
        assert_eq!(ask(&[("Password: ", false)]), Some(vec!["ubnt".into()]));
        assert_eq!(
            ask(&[("Password for ubnt@ap: ", false)]),
            Some(vec!["ubnt".into()])
        );
        assert_eq!(ask(&[("", false)]), Some(vec!["ubnt".into()]));
        assert_eq!(
            ask(&[("Login: ", true), ("Passwort: ", false)]),
            Some(vec!["ubnt".into(), "ubnt".into()])
        );
        assert_eq!(ask(&[]), Some(vec![]));
        assert_eq!(ask(&[("Verification code: ", false)]), None);
    }

    #[test]
    fn older_algorithms_are_offered_after_the_defaults() {
        let p = preferred();
        let kex: Vec<&str> = p.kex.iter().map(|k| k.as_ref()).collect();
        assert_eq!(kex[0], Preferred::DEFAULT.kex[0].as_ref());
        assert!(kex.contains(&"diffie-hellman-group14-sha1"));
        assert!(kex.contains(&"diffie-hellman-group1-sha1"));
        // Extension markers stay at the end.
        assert!(kex.last().unwrap().contains('@') || kex.last().unwrap().starts_with("ext-info"));
        let key: Vec<String> = p.key.iter().map(|k| k.to_string()).collect();
        for rsa in ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] {
            assert!(key.iter().any(|k| k == rsa), "{key:?}");
        }
        assert!(p.mac.iter().any(|m| m.as_ref() == "hmac-sha1"));
        assert!(p.cipher.iter().any(|c| c.as_ref() == "aes128-cbc"));
    }
}
