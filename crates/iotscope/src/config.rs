//! The global `--config FILE` (TOML). Every key is optional; command-line
//! flags override it. Later issues add their own tables.
//!
//! ```toml
//! [store]
//! db = "/var/lib/iotscope/iotscope.db"
//!
//! [telescope]
//! darknet = ["198.18.0.0/16"]
//! bucket = "1h"
//! top = 10
//!
//! [enrich]
//! asn = ["/var/lib/iotscope/asn-ipv4.csv", "/var/lib/iotscope/asn-ipv6.csv"]
//! asn_format = "csv"          # csv (ip-location-db) | iptoasn | pfx2as | mmdb (GeoLite2-ASN)
//! geo = ["/var/lib/iotscope/GeoLite2-City.mmdb"]  # country, region, city, coordinates
//!
//! [smtp]
//! server = "127.0.0.1:25"     # the relay alerts are mailed through
//! from = "cert@example.net"
//! tls = "starttls"            # whenever offered (default) | require | none
//! # ca_file = "/etc/iotscope/relay-ca.pem"  # default: the system CA bundle
//!
//! [web]
//! listen = "127.0.0.1:8080"   # iotscope serve
//! check_per_minute = 60       # /check requests per client address (IPv6: per /64)
//! trusted_proxies = ["127.0.0.1/32"]  # only these may name the client (X-Forwarded-For)
//!
//! [[isp]]
//! name = "Example ISP A"
//! asn = [64500]
//! prefixes = ["127.78.0.0/25"]
//! abuse = "abuse@isp-a.example"
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Parsed configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Store settings.
    #[serde(default)]
    pub store: StoreConfig,
    /// Telescope defaults.
    #[serde(default)]
    pub telescope: TelescopeDefaults,
    /// The ISP table (`[[isp]]`): name, asn, prefixes, abuse.
    #[serde(default)]
    pub isp: Vec<iotscope_alerts::Isp>,
    /// Enrichment tables.
    #[serde(default)]
    pub enrich: EnrichConfig,
    /// The relay that `alerts send` mails through.
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// The dashboard (`iotscope serve`).
    #[serde(default)]
    pub web: WebConfig,
    /// `[scope]`.
    #[serde(default)]
    pub scope: ScopeConfig,
    /// `[alerts]`.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `[honeypot]`.
    #[serde(default)]
    pub honeypot: crate::cmd::honeypot::HoneypotDefaults,
    /// `[sensor]`.
    #[serde(default)]
    pub sensor: SensorDefaults,
    /// `[detect]`.
    #[serde(default)]
    pub detect: crate::cmd::detect::DetectDefaults,
    /// `[gateway]` (checked by the gateway commands).
    #[serde(default)]
    pub gateway: Option<iotscope_gateway::GatewayConfig>,
}

/// `[sensor]`: what `iotscope sensor` reads again on SIGHUP (with
/// `telescope.darknet`); flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorDefaults {
    /// Grace period after a bucket's end ("5s").
    pub grace: Option<String>,
    /// Status line interval ("1m", "0" for none).
    pub status: Option<String>,
    /// Local spool for commits the store refuses (`--spool`).
    pub spool: Option<PathBuf>,
    /// Bytes the spool may hold ("1G"; `--spool-max`).
    pub spool_max: Option<String>,
}

/// `[alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `[alerts.corroboration]`: when darknet evidence of an infected host
    /// counts as corroborated (`min_buckets`, `min_packets`).
    #[serde(default)]
    pub corroboration: iotscope_alerts::CorroborationRule,
}

/// `[web]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to listen on (default 127.0.0.1:8080).
    pub listen: Option<std::net::SocketAddr>,
    /// Self-check requests one client address may make per minute (0: no limit; default 60).
    pub check_per_minute: Option<u32>,
    /// Mark cookies Secure (default: yes unless listening on loopback; serve behind TLS).
    pub secure_cookies: Option<bool>,
    /// How long a login lasts, in hours (default 12).
    pub session_hours: Option<u64>,
    /// Reverse proxies (addresses or CIDRs) trusted to name the client in
    /// `Forwarded` / `X-Forwarded-For` and the scheme in
    /// `X-Forwarded-Proto`; empty (default): the peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// `[smtp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// host:port of the relay (required to send).
    pub server: Option<String>,
    /// Sender address.
    pub from: Option<String>,
    /// Name given in EHLO.
    pub helo: Option<String>,
    /// STARTTLS: "require" (the default for a relay off this host),
    /// "starttls" (whenever offered; the default on loopback) or "none".
    pub tls: Option<String>,
    /// PEM bundle of CAs the relay's certificate must chain to (default:
    /// /etc/ssl/certs/ca-certificates.crt).
    pub ca_file: Option<PathBuf>,
    /// Name the relay's certificate must carry (default: the host in `server`).
    pub tls_name: Option<String>,
}

impl SmtpConfig {
    /// The relay to send through, from `[smtp]`.
    pub fn relay(&self) -> anyhow::Result<iotscope_alerts::smtp::Relay> {
        use std::net::ToSocketAddrs;
        let text = self
            .server
            .as_deref()
            .context("no relay: set [smtp] server = \"host:port\" in the config")?;
        let server = text
            .to_socket_addrs()
            .with_context(|| {
                format!("[smtp] server {text:?}: expected a host and port such as 127.0.0.1:25")
            })?
            .next()
            .with_context(|| format!("[smtp] server {text:?}: the name has no address"))?;
        // The host part: "[::1]:25" -> "::1", "mail.example:25" -> "mail.example".
        let host = text
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(text)
            .trim_start_matches('[')
            .trim_end_matches(']');
        // A report holds subscribers' addresses and their weaknesses: off
        // this host it goes encrypted or not at all, unless the operator
        // says otherwise (a relay that stops offering STARTTLS is then a
        // refusal, not a message in clear).
        let default_tls = if server.ip().is_loopback() {
            "starttls"
        } else {
            "require"
        };
        let tls = match self.tls.as_deref().unwrap_or(default_tls) {
            "starttls" => iotscope_alerts::smtp::TlsMode::WhenOffered,
            "require" => iotscope_alerts::smtp::TlsMode::Required,
            "none" => iotscope_alerts::smtp::TlsMode::Never,
            other => anyhow::bail!("[smtp] tls {other:?}: expected starttls, require or none"),
        };
        Ok(iotscope_alerts::smtp::Relay {
            server,
            tls_name: self.tls_name.clone().unwrap_or_else(|| host.to_string()),
            tls,
            ca_file: self.ca_file.clone(),
            helo: self.helo.clone().unwrap_or_else(|| "iotscope".into()),
            timeout: std::time::Duration::from_secs(20),
        })
    }
}

/// `[enrich]`: where the address-to-AS tables are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// AS tables (all in `asn_format`), merged in order.
    #[serde(default)]
    pub asn: Vec<PathBuf>,
    /// csv (ip-location-db), iptoasn (TSV), pfx2as (RouteViews) or mmdb
    /// (MaxMind-format AS database).
    pub asn_format: Option<String>,
    /// Location databases (MaxMind-format mmdb: GeoLite2-City, or
    /// ip-location-db's IPv4 and IPv6 files), asked in order.
    #[serde(default)]
    pub geo: Vec<PathBuf>,
}

impl EnrichConfig {
    /// Loads the AS tables, if any are configured.
    pub fn load_asn(&self) -> anyhow::Result<Option<iotscope_enrich::AsnTable>> {
        if self.asn.is_empty() {
            return Ok(None);
        }
        let format = match self.asn_format.as_deref().unwrap_or("csv") {
            "csv" => iotscope_enrich::Format::Csv,
            "iptoasn" => iotscope_enrich::Format::Iptoasn,
            "pfx2as" => iotscope_enrich::Format::Pfx2as,
            "mmdb" => {
                let mut tables = Vec::new();
                for p in &self.asn {
                    tables.push(iotscope_enrich::AsnTable::from_mmdb(p)?);
                }
                return Ok(Some(iotscope_enrich::AsnTable::merge(tables)));
            }
            other => {
                anyhow::bail!(
                    "[enrich] asn_format {other:?}: expected csv, iptoasn, pfx2as or mmdb"
                )
            }
        };
        let mut tables = Vec::new();
        for p in &self.asn {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read AS table {}", p.display()))?;
            tables.push(iotscope_enrich::AsnTable::parse(
                format,
                &text,
                &p.display().to_string(),
            )?);
        }
        Ok(Some(iotscope_enrich::AsnTable::merge(tables)))
    }

    /// Opens the location databases, if any are configured.
    pub fn load_geo(&self) -> anyhow::Result<Option<iotscope_enrich::GeoDb>> {
        if self.geo.is_empty() {
            return Ok(None);
        }
        Ok(Some(iotscope_enrich::GeoDb::open(&self.geo)?))
    }
}

/// `[scope]`: what every command that sends packets (survey, its checks,
/// `alerts recheck`, `check`) must never reach.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// Exclusion (opt-out) files in ZMap's blocklist format, applied in
    /// addition to every `--exclude`.
    #[serde(default)]
    pub exclude: Vec<PathBuf>,
}

impl ScopeConfig {
    /// The exclusion files of the config followed by `flags`.
    pub fn files(&self, flags: &[PathBuf]) -> Vec<PathBuf> {
        self.exclude.iter().chain(flags).cloned().collect()
    }
}

/// Reads and unites exclusion files (ZMap's blocklist format, IPv4 and
/// IPv6 lines), naming the file and line of any error.
pub fn read_exclusions(files: &[PathBuf]) -> anyhow::Result<iotscope_survey::Exclusions> {
    let mut all = iotscope_survey::Exclusions::none();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read exclusion file {}", f.display()))?;
        all = all.union(&iotscope_survey::Exclusions::parse(
            &text,
            &f.display().to_string(),
        )?);
    }
    Ok(all)
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The store: an SQLite path or a `postgres://` URL (`db`, or `url`).
    #[serde(alias = "url")]
    pub db: Option<PathBuf>,
    /// `[store.retention]`: how long `store prune` keeps each tier.
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// `[store.retention]`: durations ("30d", "2years"); absent: for ever.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The store's own buckets.
    pub bucket: Option<String>,
    /// Hourly rollups.
    pub hour: Option<String>,
    /// Daily rollups.
    pub day: Option<String>,
}

/// `[telescope]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelescopeDefaults {
    /// Darknet prefixes.
    #[serde(default)]
    pub darknet: Vec<String>,
    /// Bucket length, humantime syntax ("1h", "15m").
    pub bucket: Option<String>,
    /// Rows in tables and per bucket.
    pub top: Option<usize>,
    /// Frames stamped before this time (RFC 3339 or YYYY-MM-DD) go in no
    /// bucket and count as `implausible_time` (default 1990-01-01).
    pub plausible_from: Option<String>,
    /// Frames stamped at or after this time go in no bucket (default: one
    /// day after the clock of the machine that reads them).
    pub plausible_until: Option<String>,
}

impl Config {
    /// Loads `path`, or the defaults when no file is given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// The store path: the flag, else the config, else `iotscope.db`.
    pub fn db_path(&self, flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| self.store.db.clone())
            .unwrap_or_else(|| PathBuf::from("iotscope.db"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotscope_alerts::smtp::TlsMode;

    /// Issue 14: a report goes to a relay off this host encrypted or not at
    /// all unless the operator says otherwise (no address is dialled here).
    #[test]
    fn tls_is_required_off_loopback_by_default() {
        let smtp = |server: &str, tls: Option<&str>| SmtpConfig {
            server: Some(server.into()),
            tls: tls.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            smtp("198.18.0.1:25", None).relay().unwrap().tls,
            TlsMode::Required
        );
        assert_eq!(
            smtp("[2001:db8::1]:25", None).relay().unwrap().tls,
            TlsMode::Required
        );
        assert_eq!(
            smtp("127.0.0.1:25", None).relay().unwrap().tls,
            TlsMode::WhenOffered
        );
        assert_eq!(
            smtp("198.18.0.1:25", Some("starttls")).relay().unwrap().tls,
            TlsMode::WhenOffered
        );
    }

    /// `[store] url` is `[store] db` by the issue's name; `[sensor]` takes
    /// the spool.
    #[test]
    fn the_store_is_db_or_url_and_the_sensor_takes_a_spool() {
        for key in ["db", "url"] {
            let c: Config = toml::from_str(&format!(
                "[store]\n{key} = \"postgres://u@h/d\"\n[sensor]\nspool = \"/var/s.spool\"\nspool_max = \"2G\"\n"
            ))
            .unwrap();
            assert_eq!(c.db_path(None), PathBuf::from("postgres://u@h/d"));
            assert_eq!(c.sensor.spool, Some(PathBuf::from("/var/s.spool")));
            assert_eq!(c.sensor.spool_max.as_deref(), Some("2G"));
        }
    }
}
