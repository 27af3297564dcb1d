//! Running the emulated devices: binding their listeners, serving each
//! connection with its protocol, and shutting down cleanly.
//!
//! Invariants: every listener is bound before [`Lab::bind`] returns (so the
//! manifest can be written as the signal that the lab is up); every
//! connection is bounded in time ([`SESSION_LIMIT`]) and in bytes read, and
//! every listener in concurrent sessions ([`SESSIONS_PER_LISTENER`]); the
//! lab only accepts, it never connects anywhere.

mod http;
mod modbus;
mod mqtt;
#[cfg(feature = "ssh-login")]
mod ssh;
mod telnet;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::audit::Audit;
use crate::devices::{Device, Service};

/// Longest a session may last.
pub const SESSION_LIMIT: Duration = Duration::from_secs(120);
/// Most concurrent sessions on one listener; more wait in the backlog.
pub const SESSIONS_PER_LISTENER: usize = 32;
/// Most bytes read from one client.
pub const BYTES_PER_SESSION: usize = 64 * 1024;

/// Why the lab could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// An address outside 127.0.0.0/8 without `--allow-non-loopback`.
    #[error("{ip} is not a loopback address; the lab binds only 127.0.0.0/8 unless --allow-non-loopback is given (for a network namespace the test created)")]
    NotLoopback {
        /// The address.
        ip: IpAddr,
    },
}

/// Mutable state of one device, shared by its connections.
#[derive(Debug, Default)]
pub struct DeviceState {
    /// Failed telnet logins since the last lockout ended.
    pub telnet_failures: u32,
    /// Until when logins are locked (monotonic seconds since lab start).
    pub locked_until: Option<tokio::time::Instant>,
    /// Water logger mode: true while running.
    pub running: bool,
    /// Power monitor alarm threshold (kW).
    pub alarm_threshold_kw: u32,
    /// Power monitor proxy setting.
    pub proxy: String,
    /// Power monitor log lines.
    pub log_lines: u32,
}

/// A device with its state, as its connections see it.
pub struct Served {
    /// The manifest entry.
    pub device: Device,
    /// Its mutable state.
    pub state: Mutex<DeviceState>,
}

/// Bound listeners, ready to serve.
pub struct Lab {
    listeners: Vec<(Arc<Served>, Service, std::net::TcpListener)>,
}

impl Lab {
    /// Binds every listener of every device. Refuses non-loopback addresses
    /// unless `allow_non_loopback`.
    pub fn bind(devices: &[Device], allow_non_loopback: bool) -> Result<Lab, LabError> {
        let mut listeners = Vec::new();
        for d in devices {
            if !allow_non_loopback && !d.ip.is_loopback() {
                return Err(LabError::NotLoopback {
                    ip: IpAddr::V4(d.ip),
                });
            }
            let served = Arc::new(Served {
                device: d.clone(),
                state: Mutex::new(DeviceState {
                    running: true,
                    alarm_threshold_kw: 500,
                    log_lines: 1200,
                    ..Default::default()
                }),
            });
            for s in &d.services {
                let addr = SocketAddr::new(IpAddr::V4(d.ip), s.port);
                let l = std::net::TcpListener::bind(addr)
                    .map_err(|source| LabError::Bind { addr, source })?;
                l.set_nonblocking(true)
                    .map_err(|source| LabError::Bind { addr, source })?;
                listeners.push((served.clone(), s.service, l));
            }
        }
        Ok(Lab { listeners })
    }

    /// Number of listeners.
    pub fn listeners(&self) -> usize {
        self.listeners.len()
    }

    /// Serves until `shutdown` flips to true, then stops accepting and
    /// gives open sessions a moment to end.
    pub async fn serve(self, audit: Audit, mut shutdown: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for (served, service, l) in self.listeners {
            let listener = match TcpListener::from_std(l) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("iotscope lab: cannot serve {}: {e}", served.device.ip);
                    continue;
                }
            };
            let audit = audit.clone();
            let stop = shutdown.clone();
            tasks.spawn(accept_loop(listener, served, service, audit, stop));
        }
        let _ = shutdown.wait_for(|s| *s).await;
        // Accept loops end on the same signal; sessions are bounded anyway.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    served: Arc<Served>,
    service: Service,
    audit: Audit,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(SESSIONS_PER_LISTENER));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                let served = served.clone();
                let audit = audit.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(
                        SESSION_LIMIT,
                        session(stream, peer, served, service, &audit),
                    )
                    .await;
                });
            }
            Err(_) => {
                // Out of descriptors or similar: back off rather than spin.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn session(
    mut stream: TcpStream,
    peer: SocketAddr,
    served: Arc<Served>,
    service: Service,
    audit: &Audit,
) {
    let _ = stream.set_nodelay(true);
    match service {
        Service::Telnet => telnet::serve(stream, peer, &served, audit).await,
        Service::Http => {
            let port = stream.local_addr().map(|a| a.port()).unwrap_or(80);
            http::serve(stream, port, peer, &served, audit).await
        }
        Service::Https => {
            let port = stream.local_addr().map(|a| a.port()).unwrap_or(443);
            // A client that does not speak TLS (a plain HTTP request) fails
            // the handshake and gets nothing, as on a real device.
            let accepted = tokio::time::timeout(
                Duration::from_secs(10),
                tokio_rustls::TlsAcceptor::from(tls_config()).accept(stream),
            )
            .await;
            if let Ok(Ok(tls)) = accepted {
                http::serve(tls, port, peer, &served, audit).await;
            }
        }
        Service::Mqtt => mqtt::serve(stream, peer, &served, audit).await,
        Service::Modbus => modbus::serve(stream, peer, &served, audit).await,
        #[cfg(feature = "ssh-login")]
        Service::Ssh => ssh::serve(stream, peer, served, audit).await,
        #[cfg(not(feature = "ssh-login"))]
        Service::Ssh => {
            let banner = served
                .device
                .ssh_banner
                .clone()
                .unwrap_or_else(|| "SSH-2.0-dropbear".into());
            if stream
                .write_all(format!("{banner}\r\n").as_bytes())
                .await
                .is_ok()
            {
                // Read the client's version line (at most 255 bytes, RFC 4253
                // 4.2), then end: key exchange is not emulated.
                let mut buf = [0u8; 255];
                let _ = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
            }
        }
        Service::AcceptClose => {}
        Service::Garbage => {
            let seed = u32::from(served.device.ip) as u64 ^ peer.port() as u64;
            let mut rng = crate::rng::Rng::new(seed);
            let junk: Vec<u8> = (0..64).map(|_| rng.next_u32() as u8).collect();
            let _ = stream.write_all(&junk).await;
        }
        Service::Tarpit => {
            let mut buf = [0u8; 1024];
            let mut total = 0;
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await
            {
                total += n;
                if n == 0 || total > BYTES_PER_SESSION {
                    break;
                }
            }
        }
    }
}

/// The TLS server configuration of the lab's HTTPS devices: a self-signed
/// P-256 certificate generated once for the lab (subject
/// `CN=IPC-HFW1230S`), TLS 1.2 and 1.3, ring provider. The key protects
/// nothing: the lab listens on loopback only.
fn tls_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    static CONFIG: std::sync::OnceLock<Arc<rustls::ServerConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // Constants of this crate, checked by its test.
            let cert =
                CertificateDer::from_pem_slice(include_bytes!("../../data/lab_tls_cert.pem"))
                    .expect("the lab certificate parses");
            let key = PrivateKeyDer::from_pem_slice(include_bytes!("../../data/lab_tls_key.pem"))
                .expect("the lab key parses");
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("the lab certificate matches its key");
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tls_tests {
    #[test]
    fn the_lab_tls_config_builds() {
        let c = super::tls_config();
        assert!(!c.alpn_protocols.iter().any(|p| p == b"h2"));
    }
}
