//! TLS: the server's certificate, recorded and never trusted.
//!
//! The module sends a TLS 1.2 ClientHello (offering TLS 1.0 to 1.2 and a
//! wide cipher list, as old devices need) and reads the server's first
//! flight: ServerHello (version, cipher) and Certificate, which TLS 1.2
//! sends in clear. Then it closes: no key exchange, no crypto, nothing a
//! device could mistake for a session. The certificate is parsed for
//! subject, issuer, validity, names and fingerprint (x509-parser).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{read_some, Grab, GrabError, ProbeCtx, ProbeModule};

/// A first flight with a long chain is bigger than other banners.
const MAX_FLIGHT: usize = 64 * 1024;

/// TLS on 443, 8443 and the like.
pub struct Tls;

/// The ClientHello: TLS 1.2 in the hello, TLS 1.0 in the record (what most
/// stacks send for compatibility), no SNI (targets are addresses).
pub fn client_hello(random: [u8; 32]) -> Vec<u8> {
    const SUITES: [u16; 16] = [
        0xc02f, 0xc02b, 0xc030, 0xc02c, 0xc013, 0xc009, 0xc014, 0xc00a, 0x009c, 0x009d, 0x002f,
        0x0035, 0x000a, 0x0005, 0x0004, 0x00ff,
    ];
    let mut ext = Vec::new();
    let mut add_ext = |kind: u16, body: &[u8]| {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
        ext.extend_from_slice(body);
    };
    // supported_groups: x25519, secp256r1, secp384r1
    add_ext(0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]);
    // ec_point_formats: uncompressed
    add_ext(0x000b, &[1, 0]);
    // signature_algorithms: RSA and ECDSA with SHA-256/384/512, SHA-1 last
    add_ext(
        0x000d,
        &[0, 16, 4, 1, 5, 1, 6, 1, 4, 3, 5, 3, 6, 3, 2, 1, 2, 3],
    );
    let mut body = vec![3, 3];
    body.extend_from_slice(&random);
    body.push(0); // no session id
    body.extend_from_slice(&((SUITES.len() * 2) as u16).to_be_bytes());
    for s in SUITES {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        v => format!("0x{v:04x}"),
    }
}

/// What the first flight said so far.
#[derive(Debug, Default, PartialEq)]
pub struct Flight {
    /// Negotiated version (ServerHello).
    pub version: Option<u16>,
    /// Chosen cipher suite.
    pub cipher: Option<u16>,
    /// Leaf certificate, DER.
    pub leaf: Option<Vec<u8>>,
    /// Number of certificates in the chain.
    pub chain_len: usize,
    /// An alert instead: (level, description).
    pub alert: Option<(u8, u8)>,
    /// ServerHelloDone or a certificate seen: nothing more to wait for.
    pub done: bool,
}

/// Parses the records in `buf` (complete ones only).
pub fn parse_flight(buf: &[u8]) -> Result<Flight, GrabError> {
    let mut f = Flight::default();
    let mut hs = Vec::new();
    let mut at = 0;
    while buf.len() >= at + 5 {
        let (kind, len) = (
            buf[at],
            u16::from_be_bytes([buf[at + 3], buf[at + 4]]) as usize,
        );
        if buf[at + 1] != 3 {
            return Err(GrabError::Protocol("TLS"));
        }
        let Some(body) = buf.get(at + 5..at + 5 + len) else {
            break;
        };
        match kind {
            22 => hs.extend_from_slice(body),
            21 if body.len() >= 2 => {
                f.alert = Some((body[0], body[1]));
                f.done = true;
            }
            20 | 21 | 23 => {}
            _ => return Err(GrabError::Protocol("TLS")),
        }
        at += 5 + len;
    }
    let mut h = 0;
    while hs.len() >= h + 4 {
        let (kind, len) = (
            hs[h],
            u32::from_be_bytes([0, hs[h + 1], hs[h + 2], hs[h + 3]]) as usize,
        );
        let Some(m) = hs.get(h + 4..h + 4 + len) else {
            break;
        };
        match kind {
            2 if m.len() >= 35 => {
                f.version = Some(u16::from_be_bytes([m[0], m[1]]));
                let sid = m[34] as usize;
                f.cipher = m
                    .get(35 + sid..37 + sid)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
            11 if m.len() >= 3 => {
                let mut c = 3;
                while m.len() >= c + 3 {
                    let n = u32::from_be_bytes([0, m[c], m[c + 1], m[c + 2]]) as usize;
                    let Some(der) = m.get(c + 3..c + 3 + n) else {
                        break;
                    };
                    if f.leaf.is_none() {
                        f.leaf = Some(der.to_vec());
                    }
                    f.chain_len += 1;
                    c += 3 + n;
                }
                f.done = true;
            }
            14 => f.done = true,
            _ => {}
        }
        h += 4 + len;
    }
    Ok(f)
}

/// The fields a survey keeps from a certificate.
pub fn describe_certificate(der: &[u8]) -> Value {
    let fingerprint: String = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return json!({"sha256": fingerprint, "parse_error": "not a valid X.509 certificate"});
    };
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            humantime::format_rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64),
            )
            .to_string()
        } else {
            t.to_string()
        }
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    let ip = match ip.len() {
                        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                        16 => {
                            std::net::IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string()
                        }
                        _ => continue,
                    };
                    names.push(ip);
                }
                _ => {}
            }
        }
    }
    json!({
        "subject": cert.subject().to_string(),
        "issuer": cert.issuer().to_string(),
        "serial": cert.raw_serial_as_string(),
        "not_before": time(cert.validity().not_before),
        "not_after": time(cert.validity().not_after),
        "self_signed": cert.subject() == cert.issuer(),
        "names": names,
        "signature_algorithm": x509_parser::objects::oid2sn(
            &cert.signature_algorithm.algorithm,
            x509_parser::objects::oid_registry(),
        )
        .map(String::from)
        .unwrap_or_else(|_| cert.signature_algorithm.algorithm.to_id_string()),
        "sha256": fingerprint,
    })
}

impl ProbeModule for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            // The random only has to differ between hellos, not be secret:
            // no key is ever derived from it.
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let mut random = [0u8; 32];
            for (i, b) in random.iter_mut().enumerate() {
                *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
            }
            stream.write_all(&client_hello(random)).await?;
            let mut buf = Vec::new();
            let flight = loop {
                let n = {
                    let mut chunk = Vec::new();
                    let n = read_some(stream, &mut chunk, ctx).await;
                    buf.extend_from_slice(&chunk);
                    n
                };
                match n {
                    Ok(0) | Err(GrabError::Timeout) if !buf.is_empty() => {
                        break parse_flight(&buf)?
                    }
                    Ok(0) => return Err(GrabError::Protocol("TLS")),
                    Err(e) => return Err(e),
                    Ok(_) => {
                        let f = parse_flight(&buf)?;
                        if f.done || buf.len() >= MAX_FLIGHT {
                            break f;
                        }
                    }
                }
            };
            if flight.version.is_none() && flight.alert.is_none() {
                return Err(GrabError::Protocol("TLS"));
            }
            Ok(json!({
                "version": flight.version.map(version_name),
                "cipher_suite": flight.cipher.map(|c| format!("0x{c:04x}")),
                "alert": flight.alert.map(|(level, description)| json!({"level": level, "description": description})),
                "chain_length": flight.chain_len,
                "certificate": flight.leaf.as_deref().map(describe_certificate),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_is_one_well_formed_record() {
        let r = client_hello([7; 32]);
        assert_eq!(&r[..3], &[22, 3, 1]);
        assert_eq!(u16::from_be_bytes([r[3], r[4]]) as usize, r.len() - 5);
        assert_eq!(r[5], 1, "ClientHello");
        let len = u32::from_be_bytes([0, r[6], r[7], r[8]]) as usize;
        assert_eq!(len, r.len() - 9);
        assert_eq!(&r[9..11], &[3, 3]);
    }

    #[test]
    fn a_flight_split_anywhere_never_panics_and_parses_when_whole() {
        // ServerHello (TLS 1.2, suite c02f) + Certificate (one 3-byte "cert") + ServerHelloDone.
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&[0; 32]);
        sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
        let mut hs = vec![2, 0, 0, sh.len() as u8];
        hs.extend_from_slice(&sh);
        hs.extend_from_slice(&[11, 0, 0, 9, 0, 0, 6, 0, 0, 3, 0xaa, 0xbb, 0xcc]);
        hs.extend_from_slice(&[14, 0, 0, 0]);
        let mut rec = vec![22, 3, 3, 0, hs.len() as u8];
        rec.extend_from_slice(&hs);
        for n in 0..rec.len() {
            let _ = parse_flight(&rec[..n]);
        }
        let f = parse_flight(&rec).unwrap();
        assert_eq!(f.version, Some(0x0303));
        assert_eq!(f.cipher, Some(0xc02f));
        assert_eq!(f.leaf.as_deref(), Some(&[0xaa, 0xbb, 0xcc][..]));
        assert!(f.done);
        assert!(parse_flight(b"HTTP/1.1 400 Bad Request\r\n").is_err());
    }
}
