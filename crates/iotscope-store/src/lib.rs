//! The store: the only state shared between iotscope commands.
//!
//! Owns: the [`Store`] trait and its SQLite backend ([`SqliteStore`]), the
//! schema and its migrations. Holds no business rules: it keeps per-bucket
//! aggregates written by the telescope and rebuilds a
//! [`iotscope_telescope::Summary`] from them with the telescope's own rules.
//!
//! Invariants: every ingest is one transaction (a killed command leaves the
//! store as it was before); a capture's content hash is recorded with its
//! aggregates, so the same content is never counted twice. The SQL sticks to
//! what SQLite and PostgreSQL share, so a PostgreSQL backend can reuse it.

mod blocks;
mod copy;
#[cfg(feature = "postgres")]
mod postgres;
mod report;
mod run;
mod spool;
mod sqlite;
mod tier;

pub use copy::{copy, TableCopy};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use report::ReportQuery;
pub use run::SpooledRun;
pub use spool::{save_spooled_item, Spool, SpoolError, SpoolItem, Spooled};
pub use sqlite::{now_rfc3339, SqliteStore};
pub use tier::{Coverage, Pruned, Retention, Tier, TierChoice};

use iotscope_telescope::aggregate::SourceCounters;
use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::{PortIndex, Summary, Telescope};
use iotscope_wire::Addr;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("database {path}: {source}")]
    Database {
        /// The database path.
        path: String,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// A PostgreSQL server could not be reached, or refused or failed a
    /// statement.
    #[error("database {url}: {message}")]
    Postgres {
        /// The URL, without its password.
        url: String,
        /// The server's or the client's message.
        message: String,
    },
    /// `store copy` refused its destination: the source itself, or a
    /// store that holds rows already. Nothing was written.
    #[error("cannot copy into {to}: {why}")]
    CopyTarget {
        /// The destination, without a password.
        to: String,
        /// Why.
        why: String,
    },
    /// After `store copy`, a table's rows differ between the two stores.
    #[error("copy check failed: table {table} has {from} in the source and {to} in the copy")]
    CopyMismatch {
        /// The table.
        table: &'static str,
        /// Its rows and checksum in the source.
        from: String,
        /// And in the destination.
        to: String,
    },
    /// A `postgres://` store was asked of a build without the PostgreSQL
    /// backend.
    #[error("{url}: this iotscope was built without PostgreSQL support (cargo build --features postgres)")]
    NoPostgres {
        /// The URL, without its password.
        url: String,
    },
    /// The database was written by a newer iotscope.
    #[error("database {path} has schema version {found}; this build knows up to {known}: upgrade iotscope")]
    SchemaTooNew {
        /// The database path.
        path: String,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// A stored sketch is unreadable.
    #[error("database {path}: stored sketch for bucket {bucket}: {source}")]
    Sketch {
        /// The database path.
        path: String,
        /// Bucket start, ns.
        bucket: i64,
        /// Why.
        source: iotscope_telescope::sketch::SketchError,
    },
    /// A stored block of telescope figures is unreadable: truncated, or
    /// written by an incompatible version.
    #[error("database {path}: {table} block {block} at {key}: damaged or of an unknown layout")]
    Block {
        /// The database path.
        path: String,
        /// The table.
        table: &'static str,
        /// The block number.
        block: i64,
        /// Its bucket start (ns) or run.
        key: i64,
    },
    /// [`Store::save_run`] refused a run because one of its captures has
    /// content the store already holds (another process ingested it while
    /// this run was read) or that the run lists twice. Nothing of the run
    /// was stored, so nothing is counted twice.
    #[error(
        "database {path}: {file}: same content ({content_hash}) already ingested from {previous}; nothing of this run was stored"
    )]
    Duplicate {
        /// The database path.
        path: String,
        /// The run's file whose content is already there.
        file: String,
        /// Its content hash.
        content_hash: String,
        /// Where that content was ingested from first.
        previous: String,
    },
    /// [`Store::save_run`] refused a run counted in buckets of another
    /// length than the store keeps (checked inside the write transaction,
    /// so two processes creating a store at once cannot mix lengths).
    #[error("database {path} keeps buckets of {stored_ns} ns; this run counted {run_ns} ns buckets: nothing of it was stored")]
    BucketLength {
        /// The database path.
        path: String,
        /// The store's bucket length, ns.
        stored_ns: i64,
        /// The run's, ns.
        run_ns: i64,
    },
    /// The local spool could not take or give a run.
    #[error(transparent)]
    Spool(Box<SpoolError>),
    /// No tier of the store answers a report or series exactly: the
    /// period does not fall on the tier's boundaries, the tier is not kept
    /// (its data removed by retention, or made before rollups existed), or
    /// the store's buckets do not roll up into it.
    #[error("database {path}: {why}")]
    Tier {
        /// The database path or URL.
        path: String,
        /// What cannot be answered, and what can.
        why: String,
    },
    /// The file is an SQLite database but no iotscope store: refused
    /// before anything in it was changed.
    #[error("{path} is not an iotscope store but {what}: give a store, or a new file")]
    NotAStore {
        /// The file.
        path: String,
        /// What it is.
        what: &'static str,
    },
}

/// A capture file recorded in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestedFile {
    /// Content hash (XXH3-128 of the raw bytes).
    pub content_hash: String,
    /// Path it was read from.
    pub path: String,
    /// Frames read.
    pub frames: u64,
    /// "complete" or "partial" (read up to an error).
    pub status: String,
    /// When it was ingested, RFC 3339.
    pub ingested_at: String,
    /// Frames stamped outside the telescope's plausible window
    /// ([`iotscope_telescope::aggregate::PlausibleTime`]): counted, in no bucket.
    pub implausible_time: u64,
    /// For a live sensor's commit: the capture's counters over it, stored
    /// per bucket and interface (none for files).
    pub capture_loss: Option<CaptureLoss>,
}

/// A live sensor's totals on one interface ([`Store::capture_totals`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureTotals {
    /// The interface.
    pub interface: String,
    /// Frames counted and committed.
    pub frames: u64,
    /// Frames the kernel passed the filter, dropped or not.
    pub received: u64,
    /// Frames dropped for lack of capture buffer.
    pub dropped: u64,
    /// Frames the interface or its driver dropped.
    pub if_dropped: u64,
    /// Start (ns) of the latest bucket a commit was charged to.
    pub last_bucket_start_ns: i64,
    /// When the latest commit was made, RFC 3339.
    pub last_commit_at: String,
}

/// What a live capture passed, dropped and lost over one commit, charged
/// to the bucket that commit closed (`capture_loss` table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureLoss {
    /// The interface captured on.
    pub interface: String,
    /// Start (ns since the epoch) of the bucket charged.
    pub bucket_start_ns: i64,
    /// Frames the kernel passed the filter, dropped or not (`ps_recv`).
    pub received: u64,
    /// Frames dropped for lack of capture buffer (`ps_drop`).
    pub dropped: u64,
    /// Frames the interface or its driver dropped (`ps_ifdrop`).
    pub if_dropped: u64,
}

/// One (address, port) as a survey saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceObservation {
    /// Address.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// "tcp".
    pub proto: String,
    /// When, RFC 3339.
    pub ts: String,
    /// open | refused | timeout | protocol-error.
    pub status: String,
    /// Module that ran.
    pub service: Option<String>,
    /// The module's JSON.
    pub banner: Option<String>,
}

/// How long and how much one source kept the Mirai fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintPersistence {
    /// Source address.
    pub ip: String,
    /// Buckets with Mirai-fingerprinted SYNs from it.
    pub buckets: u64,
    /// Those SYNs.
    pub packets: u64,
    /// Start of the first such bucket, ns since the epoch.
    pub first_bucket_ns: i64,
    /// Start of the last such bucket, ns since the epoch.
    pub last_bucket_ns: i64,
}

/// One finding of the survey checks, as stored (the checks crate owns the
/// typed form; the store keeps its JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingRecord {
    /// Address.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Service module.
    pub service: String,
    /// Finding kind (snake_case).
    pub kind: String,
    /// Severity (snake_case).
    pub severity: String,
    /// Identification JSON.
    pub device: Option<String>,
    /// Evidence JSON.
    pub evidence: String,
    /// When it was seen, RFC 3339.
    pub ts: String,
    /// When it was first seen (on reading).
    pub first_seen: String,
}

/// A blocklist entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlocklistRecord {
    /// Address or domain.
    pub value: String,
    /// "ip" or "domain".
    pub kind: String,
    /// Port seen, if any.
    pub port: Option<u16>,
    /// Malware family.
    pub malware: String,
    /// Feed.
    pub source: String,
    /// First seen by the feed.
    pub first_seen: String,
}

/// An alert as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRecord {
    /// Address.
    pub ip: String,
    /// Problem.
    pub problem: String,
    /// Port, for survey problems.
    pub port: Option<u16>,
    /// Service module.
    pub service: Option<String>,
    /// Severity.
    pub severity: String,
    /// ISP name.
    pub isp: Option<String>,
    /// Identification JSON.
    pub device: Option<String>,
    /// Evidence JSON.
    pub evidence: String,
    /// Advice.
    pub advice: String,
    /// First seen.
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
    /// Status (on reading; ignored on writing).
    pub status: String,
}

/// Where a store is: an SQLite file, or a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locator {
    /// An SQLite file (created on first use).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Locator {
    /// What `--db` (or `[store] db`) names: a `postgres://` or
    /// `postgresql://` URL, an `sqlite:PATH`, or else a file path.
    pub fn parse(spec: &std::ffi::OsStr) -> Locator {
        let scheme = |s: &str, p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
        match spec.to_str().map(str::trim) {
            Some(s) if scheme(s, "postgres://") || scheme(s, "postgresql://") => {
                // The client takes the scheme in lower case only.
                let (head, rest) = s.split_at(s.find("://").expect("scheme"));
                Locator::Postgres(format!("{}{rest}", head.to_ascii_lowercase()))
            }
            Some(s) if s.starts_with("sqlite:") => Locator::Sqlite(s["sqlite:".len()..].into()),
            _ => Locator::Sqlite(spec.into()),
        }
    }

    /// Whether a store is there already: the file, or a database that
    /// holds an iotscope schema (nothing is created to find out).
    ///
    /// Errors: [`StoreError::Postgres`] when the server cannot be reached;
    /// [`StoreError::NoPostgres`] in a build without PostgreSQL.
    pub fn exists(&self) -> Result<bool, StoreError> {
        match self {
            Locator::Sqlite(p) => Ok(p.exists()),
            #[cfg(feature = "postgres")]
            Locator::Postgres(u) => postgres::store_exists(u),
            #[cfg(not(feature = "postgres"))]
            Locator::Postgres(u) => Err(StoreError::NoPostgres { url: redact_url(u) }),
        }
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A mistyped URL (`postgres:/u:pw@h`) is taken for a path:
            // shown with anything between a ':' and the last '@' hidden.
            Locator::Sqlite(p) => {
                let text = p.display().to_string();
                match (text.find(':'), text.rfind('@')) {
                    (Some(c), Some(a)) if c < a => write!(f, "{}***{}", &text[..=c], &text[a..]),
                    _ => f.write_str(&text),
                }
            }
            Locator::Postgres(u) => f.write_str(&redact_url(u)),
        }
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        // The user info ends at the last '@': the client reads a password
        // with '/', '?' or '#' in it up to there. Hiding too much is safe.
        if let Some(at) = out[rest..].rfind('@') {
            if let Some(colon) = out[rest..rest + at].find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    // A password given as a query parameter, its key spelled in any case
    // or percent-encoded (the client decodes keys).
    if let Some(q) = out.find('?') {
        let query: Vec<String> = out[q + 1..]
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if percent_decode(k).eq_ignore_ascii_case("password") => {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{}{}", &out[..=q], query.join("&"));
    }
    out
}

/// `%XX` escapes decoded (others left as they are), for comparing keys.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens (creating and migrating as needed) the store at `at`.
///
/// Errors: those of [`SqliteStore::open`] and `PgStore::open`;
/// [`StoreError::NoPostgres`] for a PostgreSQL URL in a build without the
/// `postgres` feature.
pub fn open(at: &Locator) -> Result<Box<dyn Store + Send>, StoreError> {
    match at {
        Locator::Sqlite(p) => Ok(Box::new(SqliteStore::open(p)?)),
        #[cfg(feature = "postgres")]
        Locator::Postgres(u) => Ok(Box::new(PgStore::open(u)?)),
        #[cfg(not(feature = "postgres"))]
        Locator::Postgres(u) => Err(StoreError::NoPostgres { url: redact_url(u) }),
    }
}

/// Persistent storage of telescope aggregates and survey observations.
pub trait Store {
    /// The bucket length (ns) the store was first written with, if any.
    fn bucket_ns(&self) -> Result<Option<i64>, StoreError>;

    /// The record of a capture with this content hash, if already ingested.
    fn find_file(&self, content_hash: &str) -> Result<Option<IngestedFile>, StoreError>;

    /// Adds one run's aggregates (built with `TelescopeConfig::detail`) and
    /// the files they came from, in one transaction.
    ///
    /// The check that no file's content hash is already stored runs inside
    /// that transaction, under the store's write lock, so concurrent runs
    /// of the same capture count it once: the first to take the lock adds
    /// it, the others find it there.
    ///
    /// Errors: [`StoreError::Duplicate`] when a file's content is already in
    /// the store or listed twice in `files`; the run is then not stored at
    /// all (its counts cannot be split per file), and the caller decides
    /// whether to analyse the other files again without it.
    /// [`StoreError::Database`] when the store cannot be read or written,
    /// [`StoreError::Block`] when a stored block it merges with is damaged;
    /// nothing is stored either.
    fn save_run(&mut self, telescope: &Telescope, files: &[IngestedFile])
        -> Result<(), StoreError>;

    /// [`Self::save_run`] for a run kept in a spool: the same rows and
    /// blocks as its telescope gave, the same checks, the same errors.
    fn save_spooled(&mut self, run: &SpooledRun, files: &[IngestedFile]) -> Result<(), StoreError>;

    /// Rebuilds the telescope report over the stored buckets, from the
    /// tier `query.tier` chooses (the summary's `tier` names it).
    ///
    /// Errors: [`StoreError::Tier`] when no tier answers the period
    /// exactly as asked; the store's.
    fn report(&self, query: &ReportQuery) -> Result<Summary, StoreError>;

    /// What the store holds of each tier: its bucket length, where each
    /// tier's periods begin (retention, rollups' start) and its earliest
    /// period.
    fn coverage(&self) -> Result<Coverage, StoreError>;

    /// Removes, in one transaction, each tier's periods that `retention`
    /// lets go at `now_ns` ([`Retention::cuts`]: a finer tier only where a
    /// coarser one holds them), and records where each tier now begins;
    /// returns what each tier lost. Rows of other tables stay.
    ///
    /// Errors: [`StoreError::Tier`] for a retention [`Retention::cuts`]
    /// refuses; the store's (nothing removed).
    fn prune(&mut self, retention: &Retention, now_ns: i64) -> Result<Vec<Pruned>, StoreError>;

    /// Records survey observations in one transaction; a later observation
    /// of the same (address, port, proto) replaces the earlier one and keeps
    /// its first-seen time.
    fn save_services(&mut self, rows: &[ServiceObservation]) -> Result<(), StoreError>;

    /// Every stored observation, by address and port.
    fn services(&self) -> Result<Vec<ServiceObservation>, StoreError>;

    /// Records findings in one transaction; a later finding of the same
    /// (address, port, kind) replaces the earlier one, keeping first seen.
    fn save_findings(&mut self, rows: &[FindingRecord]) -> Result<(), StoreError>;

    /// Every stored finding, by address and port.
    fn findings(&self) -> Result<Vec<FindingRecord>, StoreError>;

    /// Up to `limit` findings after `after` = (ip, port, kind) in key order:
    /// pages through millions without holding them all.
    fn findings_page(
        &self,
        after: Option<&(String, u16, String)>,
        limit: usize,
    ) -> Result<Vec<FindingRecord>, StoreError>;

    /// Adds blocklist entries in one transaction (an entry already there
    /// keeps its first source; returns how many were new).
    fn save_blocklist(&mut self, rows: &[BlocklistRecord]) -> Result<usize, StoreError>;

    /// Every blocklist entry, by value.
    fn blocklist(&self) -> Result<Vec<BlocklistRecord>, StoreError>;

    /// Merges alerts in one transaction: a new (address, problem) starts as
    /// `new`; a known one keeps its status and first seen and takes the
    /// newer evidence, except that a `fixed` one seen again after it was
    /// fixed becomes `persisting`. Every status change goes to the history.
    /// Returns (created, updated).
    fn merge_alerts(&mut self, rows: &[AlertRecord]) -> Result<(usize, usize), StoreError>;

    /// Every alert, by address, problem and port. An alert is one
    /// (address, port, problem): each service of a device has its own
    /// (telescope alerts have no port).
    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError>;

    /// Moves the alert (ip, port, problem) to `status` with a note in its
    /// history; false when there is no such alert.
    fn set_alert_status(
        &mut self,
        ip: &str,
        port: Option<u16>,
        problem: &str,
        status: &str,
        note: &str,
    ) -> Result<bool, StoreError>;

    /// The history of the alert (ip, port, problem): (time, status, note),
    /// oldest first.
    fn alert_history(
        &self,
        ip: &str,
        port: Option<u16>,
        problem: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError>;

    /// Packets and unique sources per bucket of each (proto, port), over a
    /// period: one indexed range of small port blocks per port (no
    /// sketches), for the dashboard's time series.
    fn port_series(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        ports: &[(String, u16)],
    ) -> Result<PortSeries, StoreError> {
        self.tier_series(Tier::Bucket, since_ns, until_ns, ports)
    }

    /// [`Self::port_series`] from `tier`'s periods (the buckets, or their
    /// hourly or daily rollups: exact unique sources per hour or day). The
    /// caller checks with [`Self::coverage`] that the tier holds the period.
    fn tier_series(
        &self,
        tier: Tier,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        ports: &[(String, u16)],
    ) -> Result<PortSeries, StoreError>;

    /// The end of the newest telescope bucket (ns), if any.
    fn newest_bucket_end(&self) -> Result<Option<i64>, StoreError>;

    /// The start of the oldest telescope bucket (ns), if any.
    fn oldest_bucket_start(&self) -> Result<Option<i64>, StoreError>;

    /// How long and how much each source kept the Mirai fingerprint, for
    /// the evidence level of infected-host alerts. One pass over the
    /// per-bucket source rows.
    fn fingerprint_persistence(&self) -> Result<Vec<FingerprintPersistence>, StoreError>;

    /// Changes whenever telescope data is added (a capture ingested), so
    /// answers computed from it can be cached until then.
    fn version(&self) -> Result<String, StoreError>;

    /// Per interface a live sensor committed from, by name: frames counted,
    /// the capture's counters and the last commit. Empty for a store no
    /// sensor wrote to.
    ///
    /// Errors: [`StoreError::Database`] when the query fails.
    fn capture_totals(&self) -> Result<Vec<CaptureTotals>, StoreError>;

    /// Live capture counters per bucket and interface, oldest first, for
    /// buckets starting in `[since_ns, until_ns)` (all when `None`).
    ///
    /// Errors: [`StoreError::Database`] when the query fails.
    fn capture_loss(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<CaptureLoss>, StoreError>;

    /// Sources of the telescope in a period, optionally only those seen on
    /// one port, busiest first, for the dashboard's map.
    fn map_sources(&self, query: &MapQuery) -> Result<Vec<MapSource>, StoreError>;

    /// The alerts of one address (the owners' self-check asks only this).
    fn alerts_for_ip(&self, ip: &str) -> Result<Vec<AlertRecord>, StoreError>;

    /// Adds or replaces a dashboard account; replacing ends its sessions.
    fn put_user(&mut self, user: &UserRecord) -> Result<(), StoreError>;

    /// Every dashboard account.
    fn users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Removes an account and its sessions; false when there was none.
    fn delete_user(&mut self, name: &str) -> Result<bool, StoreError>;

    /// Records a session or API token, and forgets those expired at `now_ns`.
    fn put_session(&mut self, session: &SessionRecord, now_ns: i64) -> Result<(), StoreError>;

    /// The live (unexpired at `now_ns`) session with this token hash and its account.
    fn session(
        &self,
        token_hash: &str,
        now_ns: i64,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError>;

    /// Ends a session.
    fn delete_session(&mut self, token_hash: &str) -> Result<(), StoreError>;

    /// Records a honeypot session with its logins, lines, downloads and
    /// payloads, in one transaction. A session already stored (same sensor
    /// and id: a record sent again) is left as it is; returns whether it
    /// was new.
    ///
    /// Errors: [`StoreError::Database`]; nothing is stored then.
    fn save_honeypot_session(&mut self, s: &HoneypotSession) -> Result<bool, StoreError>;

    /// Honeypot sessions that started in `[since_ns, until_ns)` (all when
    /// `None`), oldest first, at most `limit`, each with its logins, lines,
    /// downloads and payloads.
    ///
    /// Errors: [`StoreError::Database`].
    fn honeypot_sessions(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HoneypotSession>, StoreError>;

    /// Every destination port of each bucket starting in `[since_ns,
    /// until_ns)` (all when `None`) with its packets and unique sources,
    /// oldest bucket first, ports ascending: what the detectors read to
    /// find candidate ports (issue 20). Buckets without traffic to any port
    /// are listed with no ports, so a gap is a zero, not a missing point.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Block`].
    fn port_activity(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<BucketPorts>, StoreError>;

    /// The sketch of each of `ports`' sources in each bucket starting in
    /// `[since_ns, until_ns)`, as (bucket start, port, sketch), in no
    /// particular order; (bucket, port) pairs without traffic are absent.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Block`],
    /// [`StoreError::Sketch`].
    fn port_sketches(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        ports: &[PortIndex],
    ) -> Result<Vec<(i64, PortIndex, SourceSketch)>, StoreError>;

    /// Calls `f(bucket start, source, counters)` for every source of every
    /// bucket starting in `[since_ns, until_ns)`, in no particular order
    /// (the per-source scanner classification of issue 20 reads them).
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Block`].
    fn each_bucket_source(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        f: &mut dyn FnMut(i64, Addr, &SourceCounters),
    ) -> Result<(), StoreError>;

    /// Merges detection alerts in one transaction. Each row is matched to a
    /// stored episode of the same key whose buckets come within
    /// `cooldown_ns` of its own: that episode widens to cover the row, takes
    /// the row's figures if the row is newer (or the same bucket: a replay
    /// changes nothing), keeps the higher severity and the peak score.
    /// Otherwise the row starts a new episode. Returns, per row, the key and
    /// first bucket of its episode and whether it was created.
    ///
    /// Errors: [`StoreError::Database`]; nothing is stored then.
    fn merge_detections(
        &mut self,
        rows: &[DetectionRecord],
        cooldown_ns: i64,
    ) -> Result<Vec<(String, i64, bool)>, StoreError>;

    /// Detection alerts whose episode overlaps `[since_ns, until_ns)` (all
    /// when `None`), newest first, at most `limit`.
    ///
    /// Errors: [`StoreError::Database`].
    fn detections(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DetectionRecord>, StoreError>;

    /// Records a survey shard's report of itself (issue 19): the row of
    /// (run, shard) is replaced, keeping the time it first reported.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Postgres`].
    fn put_survey_shard(&mut self, shard: &SurveyShard) -> Result<(), StoreError>;

    /// The shards of survey `run` (all runs when `None`) as they last
    /// reported, by run and shard.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Postgres`].
    fn survey_shards(&self, run: Option<&str>) -> Result<Vec<SurveyShard>, StoreError>;

    /// Records that the episode (key, first bucket) was delivered at `at`
    /// (RFC 3339); false when there is no such episode.
    ///
    /// Errors: [`StoreError::Database`].
    fn mark_detection_notified(
        &mut self,
        key: &str,
        first_bucket_ns: i64,
        at: &str,
    ) -> Result<bool, StoreError>;
}

/// One shard of a sharded survey run as it last reported itself
/// ([`Store::put_survey_shard`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SurveyShard {
    /// The run: the same on every scanner of one sweep.
    pub run: String,
    /// I of `--shard I/N`.
    pub shard: u32,
    /// N of `--shard I/N`.
    pub shards: u32,
    /// The probe order's seed.
    pub seed: u64,
    /// The scanner that ran it (its host name).
    pub host: String,
    /// (address, port) pairs in the shard.
    pub pairs: u64,
    /// Probes sent so far.
    pub sent: u64,
    /// Pairs found open so far.
    pub open: u64,
    /// Findings of the checks (final counts only).
    pub findings: u64,
    /// running | stopped (interrupted; resumable) | final.
    pub state: String,
    /// When it first reported, RFC 3339 (kept on later reports).
    pub started: String,
    /// When it last reported, RFC 3339.
    pub updated: String,
}

/// A sharded survey run as its shards reported it (`survey status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SurveyRunStatus {
    /// The run.
    pub run: String,
    /// N, as the shards gave it (the largest when they disagree).
    pub shards: u32,
    /// The shards that reported, by shard.
    pub reported: Vec<SurveyShard>,
    /// Shards 0..N that never reported.
    pub missing: Vec<u32>,
    /// Whether every shard agrees on N and the seed.
    pub consistent: bool,
    /// Every shard of 0..N reported its final counts, and they agree.
    pub complete: bool,
    /// Sums over the reported shards: pairs, sent, open, findings.
    pub pairs: u64,
    pub sent: u64,
    pub open: u64,
    pub findings: u64,
}

impl SurveyRunStatus {
    /// The runs of `rows` (as [`Store::survey_shards`] gives them), in
    /// run order: a run is complete when shards 0..N all reported `final`
    /// with one N and one seed.
    pub fn of(rows: Vec<SurveyShard>) -> Vec<SurveyRunStatus> {
        let mut out: Vec<SurveyRunStatus> = Vec::new();
        for r in rows {
            if out.last().is_none_or(|s| s.run != r.run) {
                out.push(SurveyRunStatus {
                    run: r.run.clone(),
                    ..Default::default()
                });
            }
            let s = out.last_mut().expect("pushed");
            s.pairs += r.pairs;
            s.sent += r.sent;
            s.open += r.open;
            s.findings += r.findings;
            s.reported.push(r);
        }
        for s in &mut out {
            let first = &s.reported[0];
            s.consistent = s
                .reported
                .iter()
                .all(|r| r.shards == first.shards && r.seed == first.seed);
            s.shards = s.reported.iter().map(|r| r.shards).max().unwrap_or(0);
            s.missing = (0..s.shards)
                .filter(|i| !s.reported.iter().any(|r| r.shard == *i))
                .collect();
            s.complete = s.consistent
                && s.missing.is_empty()
                && s.reported.iter().all(|r| r.state == "final");
        }
        out
    }
}

/// One bucket's destination ports ([`Store::port_activity`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketPorts {
    /// Bucket start, ns since the epoch.
    pub start_ns: i64,
    /// (port, packets, unique sources), ports ascending.
    pub ports: Vec<(PortIndex, u64, u64)>,
}

/// A detection alert as stored (issue 20): one episode of one campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionRecord {
    /// Suppression key: detector family and primary port, such as
    /// `campaign:tcp/23`, or `backscatter`.
    pub key: String,
    /// Start of the episode's first bucket, ns since the epoch.
    pub first_bucket_ns: i64,
    /// Start of its latest bucket.
    pub last_bucket_ns: i64,
    /// infection_campaign | scan_campaign | backscatter.
    pub kind: String,
    /// low | medium | high | critical.
    pub severity: String,
    /// "tcp", "udp" or "" (backscatter).
    pub proto: String,
    /// The ports, comma-separated, primary first.
    pub ports: String,
    /// Score of the latest bucket's figures.
    pub score: f64,
    /// Highest score over the episode (on reading; the row's own score is
    /// taken on writing).
    pub peak_score: f64,
    /// The whole alert as JSON (the detect crate's shape).
    pub body: String,
    /// When the episode was first stored, RFC 3339 (on reading).
    pub created_at: String,
    /// When it last changed (on reading).
    pub updated_at: String,
    /// When it was delivered (webhook or mail), if it was.
    pub notified_at: Option<String>,
}

/// A detection row merged into the stored episodes it comes within the
/// cool-down of ([`Store::merge_detections`]); the first episode is kept
/// and widened, the others are bridged into it and removed.
pub(crate) struct MergedEpisode {
    pub first: i64,
    pub last: i64,
    pub kind: String,
    pub severity: String,
    pub proto: String,
    pub ports: String,
    pub score: f64,
    pub peak: f64,
    pub body: String,
    pub notified: Option<String>,
    /// Whether anything differs from the kept episode as stored.
    pub changed: bool,
}

/// Merges row `r` into `eps` (non-empty, oldest first): the widest span,
/// the highest severity and peak, the newest figures (the row's when it is
/// newer than every episode: a replay of the newest bucket changes
/// nothing). Delivered stays delivered unless the severity rose: the
/// escalation is news and goes out again.
pub(crate) fn merge_episode(eps: &[DetectionRecord], r: &DetectionRecord) -> MergedEpisode {
    let keep = &eps[0];
    let first = eps
        .iter()
        .map(|e| e.first_bucket_ns)
        .min()
        .unwrap_or(keep.first_bucket_ns)
        .min(r.first_bucket_ns);
    let newest = eps.iter().max_by_key(|e| e.last_bucket_ns).unwrap_or(keep);
    let last = newest.last_bucket_ns.max(r.last_bucket_ns);
    let top = eps
        .iter()
        .map(|e| e.severity.as_str())
        .max_by_key(|s| severity_rank(s))
        .unwrap_or("");
    let severity = if severity_rank(&r.severity) > severity_rank(top) {
        r.severity.clone()
    } else {
        top.to_string()
    };
    let peak = eps.iter().map(|e| e.peak_score).fold(r.score, f64::max);
    let row_newest = r.last_bucket_ns > newest.last_bucket_ns;
    let figures = if row_newest { r } else { newest };
    let notified = if severity_rank(&severity) > severity_rank(top) {
        None
    } else {
        eps.iter().find_map(|e| e.notified_at.clone())
    };
    let changed = eps.len() > 1
        || first != keep.first_bucket_ns
        || last != keep.last_bucket_ns
        || severity != keep.severity
        || peak != keep.peak_score
        || row_newest;
    MergedEpisode {
        first,
        last,
        kind: figures.kind.clone(),
        severity,
        proto: figures.proto.clone(),
        ports: figures.ports.clone(),
        score: figures.score,
        peak,
        body: figures.body.clone(),
        notified,
        changed,
    }
}

/// Rank of a severity word, for keeping the higher of two.
pub fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// A honeypot session as stored (issue 18).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HoneypotSession {
    /// The honeypot's name.
    pub sensor: String,
    /// Its session id (12 hex digits).
    pub id: String,
    /// "telnet".
    pub protocol: String,
    /// Client address and port.
    pub src_ip: String,
    /// Client port.
    pub src_port: u16,
    /// Listener address.
    pub dst_ip: String,
    /// Listener port.
    pub dst_port: u16,
    /// Start (ns since the epoch).
    pub start_ns: i64,
    /// End (ns since the epoch).
    pub end_ns: i64,
    /// The pair that logged in.
    pub login: Option<(String, String)>,
    /// Login attempts: (ns, user, password, success).
    pub logins: Vec<(i64, String, String, bool)>,
    /// Shell lines: (ns, line, every command known).
    pub commands: Vec<(i64, String, bool)>,
    /// Downloads asked for: (kind, url, host, port).
    pub downloads: Vec<(String, String, Option<String>, Option<u16>)>,
    /// Payloads written: (path, sha256, size, duplicate).
    pub payloads: Vec<(String, String, u64, bool)>,
    /// SHA-256 of the shell input.
    pub input_sha256: String,
    /// Why it ended.
    pub reason: String,
    /// The scanner session a loader session is linked to, and its address.
    pub linked: Option<(String, String)>,
    /// Records that did not fit the session's lists.
    pub truncated: u64,
}

/// Per-bucket series of some ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSeries {
    /// Bucket starts (ns), every bucket of the period, in order.
    pub starts: Vec<i64>,
    /// Per port asked: (packets, unique sources), one value per bucket.
    pub lines: Vec<(Vec<u64>, Vec<u64>)>,
}

/// What the map asks for.
#[derive(Clone, Debug, Default)]
pub struct MapQuery {
    /// Buckets starting at or after this time (ns).
    pub since_ns: Option<i64>,
    /// Buckets starting before this time (ns).
    pub until_ns: Option<i64>,
    /// Only sources seen on this (proto, port).
    pub port: Option<(String, u16)>,
    /// At most this many sources (the busiest).
    pub limit: usize,
}

/// One source on the map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapSource {
    /// Address.
    pub ip: String,
    /// Packets in the period.
    pub packets: u64,
    /// First packet (ns).
    pub first_ns: i64,
    /// Last packet (ns).
    pub last_ns: i64,
    /// Bit per traffic class seen.
    pub class_mask: u16,
    /// Mirai, ZMap, masscan and backscatter packet counts.
    pub fingerprints: [u64; 4],
    /// TCP SYNs (what the fingerprint counts are a share of).
    pub syn: u64,
}

/// A dashboard account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// operator | isp.
    pub role: String,
    /// For an isp account: the ISP (a name in the config's `[[isp]]` table).
    pub isp: Option<String>,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// A login session (cookie) or an API token, kept as the token's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Account name.
    pub user: String,
    /// session | token.
    pub kind: String,
    /// The CSRF token a session's state-changing requests must carry.
    pub csrf: String,
    /// When it was made.
    pub created: String,
    /// When it stops working (ns since the epoch).
    pub expires_ns: i64,
}

/// Test support shared by the crates' tests: a fresh PostgreSQL database.
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub mod testing {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The environment variable naming a PostgreSQL server for tests
    /// (`postgres://user@host:port/database`, a role that may create
    /// databases); `.ci/run` starts one and sets it.
    pub const SERVER_ENV: &str = "IOTSCOPE_TEST_POSTGRES";

    /// A URL of a new, empty database on the test server, or None when no
    /// server is given (then the caller skips its PostgreSQL half, unless
    /// `IOTSCOPE_REQUIRE_TOOLS=1`, as in CI, where that is a failure).
    ///
    /// Panics when the server is given but refuses, or is required and
    /// not given.
    pub fn fresh_database(label: &str) -> Option<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let Ok(server) = std::env::var(SERVER_ENV) else {
            assert!(
                std::env::var("IOTSCOPE_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "{SERVER_ENV} is not set: start one with scripts/pg-scratch.sh"
            );
            eprintln!("{SERVER_ENV} not set: the PostgreSQL half of {label} is skipped");
            return None;
        };
        let name = format!(
            "iotscope_{}_{}_{}",
            label
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(30)
                .collect::<String>()
                .to_ascii_lowercase(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = postgres::Client::connect(&server, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{SERVER_ENV}={server}: {e}"));
        // Two statements: CREATE DATABASE cannot run in a transaction.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            c.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
        // The same server, the new database (the path is the last part).
        let base = server.split('?').next().unwrap_or(&server);
        let cut = base
            .rfind('/')
            .filter(|&i| i > "postgres://".len())
            .unwrap_or(base.len());
        Some(format!("{}/{name}", &base[..cut]))
    }
}

/// Frames the crate's tests build runs from.
#[cfg(test)]
pub(crate) mod test_frames {
    /// A raw IPv4 TCP SYN from 10.0.0.`src` to 198.18.0.1:`dport`.
    pub(crate) fn syn(src: u8, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, src];
        p.extend_from_slice(&[198, 18, 0, 1, 0x9c, 0x40]);
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 0, 0x50, 0x02, 4, 0, 0, 0, 0, 0]);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_hidden_in_every_spelling_the_client_reads() {
        for (url, shown) in [
            (
                "postgres://u:S3cret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u:S3c/ret?PW@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=S3cret&x=1",
                "postgres://u@h/db?password=***&x=1",
            ),
            (
                "postgres://u@h/db?PassWord=S3cret",
                "postgres://u@h/db?PassWord=***",
            ),
            (
                "postgres://u@h/db?pass%77ord=S3cret",
                "postgres://u@h/db?pass%77ord=***",
            ),
            (
                "postgres://u@h/db?%70assword=S3cret",
                "postgres://u@h/db?%70assword=***",
            ),
            (
                "postgresql://u:p%40ss@[::1]:5432/db",
                "postgresql://u:***@[::1]:5432/db",
            ),
            ("postgres://h/db", "postgres://h/db"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("S3c"), "{url}");
        }
    }

    #[test]
    fn a_url_in_any_case_names_postgresql_and_anything_else_a_file() {
        let at = |s: &str| Locator::parse(std::ffi::OsStr::new(s));
        assert!(matches!(at("POSTGRES://u:pw@h/db"), Locator::Postgres(_)));
        assert!(matches!(at("PostgreSQL://h/db"), Locator::Postgres(_)));
        assert_eq!(at("sqlite:x.db"), Locator::Sqlite("x.db".into()));
        assert_eq!(at("x.db"), Locator::Sqlite("x.db".into()));
        assert_eq!(
            at("POSTGRES://u:pw@h/db").to_string(),
            "postgres://u:***@h/db"
        );
        assert_eq!(at(" postgres://u:pw@h/db "), at("postgres://u:pw@h/db"));
        assert_eq!(at("postgres:/u:pw@h/db").to_string(), "postgres:***@h/db");
    }
}
