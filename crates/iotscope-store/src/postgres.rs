//! The PostgreSQL backend: one store shared by many nodes (sensors, survey
//! shards, honeypots, the dashboard), reached with a `postgres://` URL.
//!
//! It keeps the SQLite backend's tables and the same telescope blocks
//! (built by [`crate::run`], merged by [`crate::blocks`]), so both engines
//! give identical answers; the conformance suite (`tests/conformance.rs`)
//! runs every [`Store`] method against both and compares.
//!
//! Concurrency: telescope ingest ([`Store::save_run`]) serialises writers
//! with a transaction-scoped advisory lock, the counterpart of SQLite's
//! write lock, so the duplicate-content check and the read-merge-write of
//! blocks see every earlier run; the unique content hash is the last
//! guard. Other writes are single-statement upserts or transactions on
//! natural keys. Reports read in one REPEATABLE READ transaction: one
//! state of the store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use iotscope_telescope::aggregate::SourceCounters;
use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::summary::Summary;
use iotscope_telescope::{PortIndex, Telescope};
use iotscope_wire::Addr;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Row};

use crate::blocks::{self, BlockTable, Blocks, PORT_BLOCKS};
use crate::report::{self, BucketRow, PortBucketRow, ReportBuilder, ReportQuery, SourceBucketRow};
use crate::run;
use crate::Tier;
use crate::{
    AlertRecord, BlocklistRecord, BucketPorts, CaptureLoss, CaptureTotals, DetectionRecord,
    FindingRecord, FingerprintPersistence, HoneypotSession, IngestedFile, MapQuery, MapSource,
    PortSeries, ServiceObservation, SessionRecord, Store, StoreError, SurveyShard, UserRecord,
};

/// Schema migrations, applied in order; `iotscope_schema_migrations` records which
/// ran. The first is the SQLite schema as of its migration 015.
const MIGRATIONS: &[&str] = &[
    include_str!("../sql/pg/001_schema.sql"),
    include_str!("../sql/pg/002_survey_shards.sql"),
    include_str!("../sql/pg/003_month_partitions.sql"),
    include_str!("../sql/pg/004_blocks_uncompressed.sql"),
    include_str!("../sql/pg/005_rollups.sql"),
];

/// The tables partitioned by month of their bucket start (migration 003).
pub(crate) const MONTH_PARTITIONED: [&str; 3] = [
    "bucket_port_blocks",
    "bucket_port_sketches",
    "bucket_source_blocks",
];

/// Makes the monthly partitions the bucket starts `starts` (ns) need in
/// every partitioned table (the writer holds [`PgStore::WRITE_LOCK`]).
pub(crate) fn make_partitions(
    c: &mut impl GenericClient,
    starts: &[i64],
) -> Result<(), postgres::Error> {
    if starts.is_empty() {
        return Ok(());
    }
    for table in MONTH_PARTITIONED {
        c.execute(
            "SELECT iotscope_month_partitions($1, $2)",
            &[&table, &starts],
        )?;
    }
    Ok(())
}

/// Advisory lock held while migrating ("iotscope" in ASCII).
const MIGRATION_LOCK: i64 = 0x696f_7473_636f_7065;

/// Advisory lock held while merging detection episodes.
const DETECTION_LOCK: i64 = MIGRATION_LOCK + 2;

/// Every key of a block table (`hi` is excluded, and no key is `i64::MAX`).
const ALL_KEYS: (i64, i64) = (i64::MIN, i64::MAX);

type Param<'a> = &'a (dyn ToSql + Sync);

pub(crate) fn pg_error(url: &str, e: postgres::Error) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut m = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                m.push_str(": ");
                m.push_str(&s.to_string());
                src = s.source();
            }
            m
        }
    };
    StoreError::Postgres {
        url: url.to_string(),
        message,
    }
}

/// A session with the store's settings: a lock is waited for 30 s at
/// most, and a transaction left idle for 60 s is ended by the server.
fn connect(config: &postgres::Config) -> Result<Client, postgres::Error> {
    let mut c = config.connect(NoTls)?;
    c.batch_execute("SET lock_timeout = '30s'; SET idle_in_transaction_session_timeout = '60s'")?;
    Ok(c)
}

/// The schema version recorded in the database, None when it holds no
/// iotscope store.
fn schema_version(c: &mut impl GenericClient) -> Result<Option<i64>, postgres::Error> {
    let exists: bool = c
        .query_one(
            "SELECT to_regclass('iotscope_schema_migrations') IS NOT NULL",
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(Some(
        c.query_one(
            "SELECT COALESCE(MAX(version), 0) FROM iotscope_schema_migrations",
            &[],
        )?
        .get(0),
    ))
}

/// Whether the database at `url` holds an iotscope store (its schema
/// table), without creating anything.
///
/// Errors: [`StoreError::Postgres`] when it cannot be reached.
pub fn store_exists(url: &str) -> Result<bool, StoreError> {
    let shown = crate::redact_url(url);
    let config: postgres::Config = url.parse().map_err(|e| pg_error(&shown, e))?;
    let found = off_runtime(|| -> Result<bool, postgres::Error> {
        let mut c = config.connect(NoTls)?;
        Ok(schema_version(&mut c)?.is_some())
    });
    found.map_err(|e| pg_error(&shown, e))
}

/// The store's connection, locked ([`Inner::conn`]).
pub(crate) struct Conn<'a>(MutexGuard<'a, Option<Client>>);

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("connected until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("connected until dropped")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The client's own runtime shuts down when it is dropped, which
        // tokio refuses on a thread that drives a runtime (the dashboard
        // drops its pool there): drop it on a thread of its own then.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(c) = client {
            off_runtime(move || drop(c));
        }
    }
}

/// A store in a PostgreSQL database.
pub struct PgStore {
    pub(crate) inner: Inner,
}

/// The connection and the store's methods on it ([`PgStore`] runs them
/// off any async runtime).
pub(crate) struct Inner {
    /// Always `Some` but while it is dropped (see `Drop`).
    client: Mutex<Option<Client>>,
    /// How to connect again (the URL as given, password included).
    config: postgres::Config,
    /// The URL without its password.
    pub(crate) url: String,
}

impl PgStore {
    /// The advisory lock key a telescope run's write transaction holds
    /// (`pg_locks`: locktype `advisory`, classid and objid its high and low
    /// 32 bits): what a monitor watches to see a run writing.
    pub const WRITE_LOCK: i64 = MIGRATION_LOCK + 1;

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`,
    /// options as query parameters, `?host=/dir` for a Unix socket) without
    /// TLS, and creates or migrates the schema. Several processes opening a
    /// new database at once are safe: migrations run under an advisory
    /// lock, each recorded in `iotscope_schema_migrations` in the same
    /// transaction. A store already migrated is opened without any DDL, so
    /// a role that may only read can read it.
    ///
    /// Each session waits at most 30 s for a lock (as SQLite's busy
    /// timeout) and the server ends a transaction left idle for 60 s (a
    /// writer stopped or cut off mid-write holds no lock for long); TCP
    /// keepalives probe after 60 s idle unless the URL says otherwise.
    ///
    /// Errors: [`StoreError::Postgres`] when the server cannot be reached
    /// or refuses, or the database's encoding is not UTF8;
    /// [`StoreError::SchemaTooNew`] when a newer iotscope migrated it.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        off_runtime(|| Self::open_here(url))
    }

    /// [`Self::open`] on this thread.
    fn open_here(url: &str) -> Result<PgStore, StoreError> {
        let shown = crate::redact_url(url);
        let db = |e| pg_error(&shown, e);
        let mut config: postgres::Config = url.parse().map_err(db)?;
        if config.get_keepalives_idle() == std::time::Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(std::time::Duration::from_secs(60));
        }
        let mut client = connect(&config).map_err(db)?;
        let encoding: String = client
            .query_one(
                "SELECT pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .map_err(db)?
            .get(0);
        if encoding != "UTF8" {
            return Err(StoreError::Postgres {
                url: shown,
                message: format!(
                    "the database's encoding is {encoding}; iotscope stores text as UTF-8: \
                     make it with CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0"
                ),
            });
        }
        let known = MIGRATIONS.len() as i64;
        let too_new = |found| StoreError::SchemaTooNew {
            path: shown.clone(),
            found,
            known,
        };
        if let Some(found) = schema_version(&mut client).map_err(db)? {
            if found > known {
                return Err(too_new(found));
            }
        }
        if schema_version(&mut client).map_err(db)? != Some(known) {
            let mut tx = client.transaction().map_err(db)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(db)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS iotscope_schema_migrations (
                     version    BIGINT PRIMARY KEY,
                     applied_at TEXT NOT NULL
                 )",
            )
            .map_err(db)?;
            // Read again under the lock: another process may have migrated.
            let version = schema_version(&mut tx).map_err(db)?.unwrap_or(0);
            if version > known {
                return Err(too_new(version));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.batch_execute(sql).map_err(db)?;
                tx.execute(
                    "INSERT INTO iotscope_schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[&(i as i64 + 1), &crate::now_rfc3339()],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)?;
        }
        Ok(PgStore {
            inner: Inner {
                client: Mutex::new(Some(client)),
                config,
                url: shown,
            },
        })
    }

    /// The version of the schema this build writes.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }
}

impl Inner {
    pub(crate) fn err(&self, e: postgres::Error) -> StoreError {
        pg_error(&self.url, e)
    }

    /// The connection, made again first if the server closed it (a
    /// restart, an administrator's `pg_terminate_backend`, a network
    /// cut): the call that met the closed connection failed, and later
    /// calls (a sensor's retried commit, the next dashboard request) work
    /// once the server is back.
    ///
    /// Errors: [`StoreError::Postgres`] when it cannot be made again.
    pub(crate) fn conn(&self) -> Result<Conn<'_>, StoreError> {
        // A panic while holding the lock leaves no half-done statement on
        // the connection that matters: each call is its own statement or
        // transaction, and a dropped transaction rolls back.
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if c.as_mut().is_none_or(|c| !alive(c)) {
            *c = Some(connect(&self.config).map_err(|e| self.err(e))?);
        }
        Ok(Conn(c))
    }

    /// [`Self::conn`] for a method that has the store to itself.
    fn conn_mut(&mut self) -> Result<&mut Client, StoreError> {
        let c = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        if c.as_mut().is_none_or(|c| !alive(c)) {
            *c = Some(connect(&self.config).map_err(|e| pg_error(&self.url, e))?);
        }
        Ok(c.as_mut().expect("just connected"))
    }

    fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        self.conn()?.query(sql, params).map_err(|e| self.err(e))
    }

    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        self.conn()?.execute(sql, params).map_err(|e| self.err(e))
    }
}

/// Whether a connection still answers. The client learns that the
/// server ended a session (a restart, `pg_terminate_backend`) only when its
/// connection task next runs, so after a call failed on a reset the next
/// could meet the same dead session: one round trip (an empty query) tells.
fn alive(c: &mut Client) -> bool {
    !c.is_closed() && c.is_valid(std::time::Duration::from_secs(10)).is_ok()
}

/// The stored blocks of `table` under `key` among `wanted`, by block.
fn stored_blocks(
    c: &mut impl GenericClient,
    table: BlockTable,
    key: i64,
    wanted: &[i64],
) -> Result<HashMap<i64, Vec<u8>>, postgres::Error> {
    let (name, col) = (table.name(), table.key());
    let rows = c.query(
        &format!("SELECT block, data FROM {name} WHERE {col} = $1 AND block = ANY($2)"),
        &[&key, &wanted],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)))
        .collect())
}

/// Writes `rows` (block, data) of `table` under `key` in one statement,
/// replacing stored ones.
fn put_blocks(
    c: &mut impl GenericClient,
    table: BlockTable,
    key: i64,
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (name, col) = (table.name(), table.key());
    let (numbers, data): (Vec<i64>, Vec<Vec<u8>>) = rows.into_iter().unzip();
    c.execute(
        &format!(
            "INSERT INTO {name} (block, {col}, data)
             SELECT b, $1, d FROM unnest($2::bigint[], $3::bytea[]) AS u(b, d)
             ON CONFLICT (block, {col}) DO UPDATE SET data = excluded.data"
        ),
        &[&key, &numbers, &data],
    )?;
    Ok(())
}

/// Bytes of new buckets' blocks sent in one COPY at most.
const COPY_BATCH_BYTES: usize = 32 << 20;

/// The blocks of periods new to the store, for COPY BINARY (issue 19's
/// bulk ingest): no row of theirs is stored, so none is merged or
/// replaced, and one COPY per table carries many periods.
#[derive(Default)]
struct FreshBlocks {
    /// (block, period start, data) of the port, sketch and source tables
    /// of each tier, [`Self::tables`] order.
    rows: [Vec<(i64, i64, Vec<u8>)>; 9],
    bytes: usize,
}

impl FreshBlocks {
    fn tables() -> impl Iterator<Item = BlockTable> {
        Tier::ALL.into_iter().flat_map(|t| {
            [
                BlockTable::Ports(t),
                BlockTable::PortSketches(t),
                BlockTable::Sources(t),
            ]
        })
    }

    fn add(&mut self, tier: Tier, start: i64, ports: Blocks, sketches: Blocks, sources: Blocks) {
        let at = tier.index() * 3;
        for (rows, blocks) in self.rows[at..at + 3]
            .iter_mut()
            .zip([ports, sketches, sources])
        {
            for (block, data) in blocks.into_blocks() {
                self.bytes += data.len();
                rows.push((block, start, data));
            }
        }
    }

    fn flush(&mut self, tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
        use postgres::binary_copy::BinaryCopyInWriter;
        use postgres::types::Type;
        for (rows, table) in self.rows.iter_mut().zip(Self::tables()) {
            if rows.is_empty() {
                continue;
            }
            let sink = tx.copy_in(&format!(
                "COPY {} (block, start_ns, data) FROM STDIN BINARY",
                table.name()
            ))?;
            let mut w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, Type::BYTEA]);
            for (block, start, data) in rows.drain(..) {
                w.write(&[&block, &start, &data])?;
            }
            w.finish()?;
        }
        self.bytes = 0;
        Ok(())
    }
}

/// What `c`'s store holds of each tier (see [`crate::Coverage`]).
fn coverage_of(c: &mut impl GenericClient) -> Result<crate::Coverage, postgres::Error> {
    let mut settings: HashMap<String, i64> = HashMap::new();
    for r in c.query("SELECT name, value FROM settings", &[])? {
        if let Ok(v) = r.get::<_, &str>(1).parse() {
            settings.insert(r.get(0), v);
        }
    }
    let mut kept_from = [i64::MIN; 3];
    let mut earliest: Option<i64> = None;
    for t in Tier::ALL {
        kept_from[t.index()] = settings
            .get(crate::tier::kept_from_key(t))
            .copied()
            .unwrap_or(i64::MIN);
        let e: Option<i64> = c
            .query_one(
                &format!("SELECT min(start_ns) FROM {}", t.buckets_table()),
                &[],
            )?
            .get(0);
        earliest = match (earliest, e) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(crate::Coverage::new(
        settings
            .get("bucket_ns")
            .copied()
            .unwrap_or(3_600_000_000_000),
        kept_from,
        settings.get("rollups_from").copied().unwrap_or(i64::MIN),
        earliest,
    ))
}

/// What went wrong writing a run: the database, or a stored block.
enum WriteError {
    Db(postgres::Error),
    Damaged(BlockTable, i64, i64),
}

impl From<postgres::Error> for WriteError {
    fn from(e: postgres::Error) -> Self {
        WriteError::Db(e)
    }
}

/// Writes `out`'s blocks of `table` (not ports) under `key`, merged with
/// the stored ones (blocks of buckets new to the store go in with COPY:
/// [`FreshBlocks`]); for source blocks, returns how many sources the write
/// added to the bucket.
fn write_blocks(
    c: &mut impl GenericClient,
    table: BlockTable,
    key: i64,
    out: Blocks,
) -> Result<Option<u64>, WriteError> {
    let new: Vec<(i64, Vec<u8>)> = out.into_blocks().collect();
    let wanted: Vec<i64> = new.iter().map(|(b, _)| *b).collect();
    let mut old = stored_blocks(c, table, key, &wanted)?;
    let sources = matches!(table, BlockTable::Sources(_));
    let mut added = 0u64;
    let mut rows = Vec::with_capacity(new.len());
    for (block, data) in new {
        let bad = || WriteError::Damaged(table, block, key);
        let data = match old.remove(&block) {
            None => {
                if sources {
                    added += blocks::count_sources(&data).map_err(|_| bad())?;
                }
                data
            }
            Some(old) => {
                let merged = table.merge(key, &old, &data).map_err(|_| bad())?;
                if sources {
                    let had = blocks::count_sources(&old).map_err(|_| bad())?;
                    let now = blocks::count_sources(&merged).map_err(|_| bad())?;
                    added += now.saturating_sub(had);
                }
                merged
            }
        };
        rows.push((block, data));
    }
    put_blocks(c, table, key, rows)?;
    Ok((matches!(table, BlockTable::Sources(_))).then_some(added))
}

/// Writes one period of `tier` (a run's bucket, or a rollup of its
/// buckets): its row and classes added to any stored; its blocks merged
/// with the stored ones, or for a period new to the store, queued in
/// `fresh` for COPY.
fn write_period(
    tx: &mut postgres::Transaction<'_>,
    fresh: &mut FreshBlocks,
    tier: Tier,
    b: run::BucketBlocks,
) -> Result<(), WriteError> {
    let (bt, ct) = (tier.buckets_table(), tier.classes_table());
    let start = b.start;
    let (packets, bytes, outside, malformed) = b.totals;
    // xmax is set on a row the upsert updated: the period was stored
    // before, and its blocks are merged with this run's.
    let known: bool = tx
        .query_one(
            &format!(
                "INSERT INTO {bt} (start_ns, packets, bytes, outside, malformed) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (start_ns) DO UPDATE SET packets = {bt}.packets + excluded.packets,
                   bytes = {bt}.bytes + excluded.bytes, outside = {bt}.outside + excluded.outside,
                   malformed = {bt}.malformed + excluded.malformed
                 RETURNING (xmax <> 0)"
            ),
            &[&start, &packets, &bytes, &outside, &malformed],
        )?
        .get(0);
    if !b.classes.is_empty() {
        let (names, counts): (Vec<&str>, Vec<i64>) = b.classes.iter().copied().unzip();
        tx.execute(
            &format!(
                "INSERT INTO {ct} (start_ns, class, packets)
                 SELECT $1, c, n FROM unnest($2::text[], $3::bigint[]) AS u(c, n)
                 ON CONFLICT (start_ns, class) DO UPDATE SET packets = {ct}.packets + excluded.packets"
            ),
            &[&start, &names, &counts],
        )?;
    }
    let added = if known {
        write_port_blocks(tx, tier, start, b.ports, b.sketches)?;
        write_blocks(tx, BlockTable::Sources(tier), start, b.sources)?
    } else {
        fresh.add(tier, start, b.ports, b.sketches, b.sources);
        if fresh.bytes >= COPY_BATCH_BYTES {
            fresh.flush(tx)?;
        }
        None
    };
    tx.execute(
        &format!("UPDATE {bt} SET sources = sources + $2 WHERE start_ns = $1"),
        &[&start, &(added.unwrap_or(b.n_sources) as i64)],
    )?;
    Ok(())
}

/// Writes a bucket's port blocks and their parallel sketch blocks, merged
/// with the stored pairs.
fn write_port_blocks(
    c: &mut impl GenericClient,
    tier: Tier,
    start: i64,
    ports: Blocks,
    sketches: Blocks,
) -> Result<(), WriteError> {
    // (block, ports, sketches): the two are parallel, block by block.
    let pairs: Vec<(i64, Vec<u8>, Vec<u8>)> = ports
        .into_blocks()
        .zip(sketches.into_blocks())
        .map(|((block, p), (_, s))| (block, p, s))
        .collect();
    let wanted: Vec<i64> = pairs.iter().map(|(b, _, _)| *b).collect();
    let mut old_p = stored_blocks(c, BlockTable::Ports(tier), start, &wanted)?;
    let mut old_s = stored_blocks(c, BlockTable::PortSketches(tier), start, &wanted)?;
    let mut out_p = Vec::with_capacity(pairs.len());
    let mut out_s = Vec::with_capacity(pairs.len());
    for (block, p, s) in pairs {
        let (p, s) = match (old_p.remove(&block), old_s.remove(&block)) {
            (None, None) => (p, s),
            (Some(op), Some(os)) => blocks::merge_ports((&op, &os), (&p, &s))
                .map_err(|_| WriteError::Damaged(BlockTable::Ports(tier), block, start))?,
            _ => {
                return Err(WriteError::Damaged(
                    BlockTable::PortSketches(tier),
                    block,
                    start,
                ))
            }
        };
        out_p.push((block, p));
        out_s.push((block, s));
    }
    put_blocks(c, BlockTable::Ports(tier), start, out_p)?;
    put_blocks(c, BlockTable::PortSketches(tier), start, out_s)?;
    Ok(())
}

/// Calls `f(key, reader)` for every stored block of `table` whose number
/// is in `blocks` (inclusive) and whose key is in `keys` (end excluded),
/// streaming the rows.
fn each_block(
    c: &mut impl GenericClient,
    url: &str,
    table: BlockTable,
    (first, last): (i64, i64),
    (lo, hi): (i64, i64),
    mut f: impl FnMut(i64, &mut blocks::Reader<'_>) -> Result<(), blocks::Damaged>,
) -> Result<(), StoreError> {
    let (name, col) = (table.name(), table.key());
    let params: [Param<'_>; 4] = [&first, &last, &lo, &hi];
    let mut it = c
        .query_raw(
            &format!(
                "SELECT block, {col}, data FROM {name}
                 WHERE block >= $1 AND block <= $2 AND {col} >= $3 AND {col} < $4"
            ),
            params.iter().copied(),
        )
        .map_err(|e| pg_error(url, e))?;
    while let Some(r) = it.next().map_err(|e| pg_error(url, e))? {
        let block: i64 = r.get(0);
        let key: i64 = r.get(1);
        let bad = || StoreError::Block {
            path: url.to_string(),
            table: table.name(),
            block,
            key,
        };
        let data: &[u8] = r.get(2);
        let mut rd = blocks::Reader::new(data).map_err(|_| bad())?;
        f(key, &mut rd).map_err(|_| bad())?;
    }
    Ok(())
}

/// What [`each_source_by_block`] hands over, in block order.
enum SourceEvent {
    /// A source record: bucket start, address, counters.
    Source(i64, Addr, SourceCounters),
    /// Every record of this source block has been handed over (said for
    /// each block 0..[`blocks::SOURCE_BLOCKS`], with records or not).
    End(i64),
}

/// Calls `f` with every source record of the buckets starting in `lo..hi`,
/// block by block (a source is always in the same block, so its sums are
/// complete at its block's end), from one streamed query: one round trip,
/// not one per block.
fn each_source_by_block(
    c: &mut impl GenericClient,
    url: &str,
    table: BlockTable,
    (lo, hi): (i64, i64),
    mut f: impl FnMut(SourceEvent) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let params: [Param<'_>; 2] = [&lo, &hi];
    let mut it = c
        .query_raw(
            &format!(
                "SELECT block, start_ns, data FROM {}
                 WHERE start_ns >= $1 AND start_ns < $2 ORDER BY block",
                table.name()
            ),
            params.iter().copied(),
        )
        .map_err(|e| pg_error(url, e))?;
    let mut next = 0i64;
    while let Some(r) = it.next().map_err(|e| pg_error(url, e))? {
        let (block, start): (i64, i64) = (r.get(0), r.get(1));
        while next < block {
            f(SourceEvent::End(next))?;
            next += 1;
        }
        let bad = || StoreError::Block {
            path: url.to_string(),
            table: table.name(),
            block,
            key: start,
        };
        let mut rd = blocks::Reader::new(r.get(2)).map_err(|_| bad())?;
        while !rd.done() {
            let (a, counters) = rd.next_source(start).map_err(|_| bad())?;
            f(SourceEvent::Source(start, a, counters))?;
        }
    }
    while next < blocks::SOURCE_BLOCKS {
        f(SourceEvent::End(next))?;
        next += 1;
    }
    Ok(())
}

fn alert_row(r: &Row) -> AlertRecord {
    AlertRecord {
        ip: r.get(0),
        problem: r.get(1),
        // Port 0 is the key's "no port" (telescope alerts).
        port: r
            .get::<_, Option<i64>>(2)
            .filter(|p| *p != 0)
            .map(|p| p as u16),
        service: r.get(3),
        severity: r.get(4),
        isp: r.get(5),
        device: r.get(6),
        evidence: r.get(7),
        advice: r.get(8),
        first_seen: r.get(9),
        last_seen: r.get(10),
        status: r.get(11),
    }
}

const ALERT_COLUMNS: &str = "ip, problem, port, service, severity, isp, device, evidence, advice, \
                             first_seen, last_seen, status";

fn finding_row(r: &Row) -> FindingRecord {
    FindingRecord {
        ip: r.get(0),
        port: r.get::<_, i64>(1) as u16,
        service: r.get(2),
        kind: r.get(3),
        severity: r.get(4),
        device: r.get(5),
        evidence: r.get(6),
        ts: r.get(7),
        first_seen: r.get(8),
    }
}

fn detection_row(r: &Row) -> DetectionRecord {
    DetectionRecord {
        key: r.get(0),
        first_bucket_ns: r.get(1),
        last_bucket_ns: r.get(2),
        kind: r.get(3),
        severity: r.get(4),
        proto: r.get(5),
        ports: r.get(6),
        score: r.get(7),
        peak_score: r.get(8),
        body: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
        notified_at: r.get(12),
    }
}

impl Store for Inner {
    fn coverage(&self) -> Result<crate::Coverage, StoreError> {
        coverage_of(&mut *self.conn()?).map_err(|e| pg_error(&self.url, e))
    }

    fn prune(
        &mut self,
        retention: &crate::Retention,
        now_ns: i64,
    ) -> Result<Vec<crate::Pruned>, StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        // Under the write lock: a run writing meanwhile merges into what
        // is kept, never into what is being removed.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PgStore::WRITE_LOCK])
            .map_err(db)?;
        let cov = coverage_of(&mut tx).map_err(db)?;
        let plan = retention
            .plan(&cov, now_ns)
            .map_err(|why| StoreError::Tier {
                path: url.clone(),
                why,
            })?;
        let mut out = Vec::new();
        for (t, before) in plan {
            let mut periods = 0;
            for (i, table) in t.tables().into_iter().enumerate() {
                let n = tx
                    .execute(
                        &format!("DELETE FROM {table} WHERE start_ns < $1"),
                        &[&before],
                    )
                    .map_err(db)?;
                if i == 0 {
                    periods = n;
                }
            }
            tx.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&crate::tier::kept_from_key(t), &before.to_string()],
            )
            .map_err(db)?;
            out.push(crate::Pruned {
                tier: t,
                before_ns: before,
                periods,
            });
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn bucket_ns(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .rows("SELECT value FROM settings WHERE name = 'bucket_ns'", &[])?
            .first()
            .and_then(|r| r.get::<_, String>(0).parse().ok()))
    }

    fn find_file(&self, content_hash: &str) -> Result<Option<IngestedFile>, StoreError> {
        Ok(self
            .rows(
                "SELECT content_hash, path, frames, status, ingested_at, implausible_time
                 FROM files WHERE content_hash = $1",
                &[&content_hash],
            )?
            .first()
            .map(|r| IngestedFile {
                content_hash: r.get(0),
                path: r.get(1),
                frames: r.get::<_, i64>(2) as u64,
                status: r.get(3),
                ingested_at: r.get(4),
                implausible_time: r.get::<_, i64>(5) as u64,
                capture_loss: None,
            }))
    }

    fn save_run(&mut self, t: &Telescope, files: &[IngestedFile]) -> Result<(), StoreError> {
        self.save(run::Run::Live(t), files)
    }

    fn save_spooled(
        &mut self,
        r: &crate::SpooledRun,
        files: &[IngestedFile],
    ) -> Result<(), StoreError> {
        self.save(run::Run::Spooled(r), files)
    }

    fn report(&self, q: &ReportQuery) -> Result<Summary, StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let (lo, hi) = (
            q.since_ns.unwrap_or(i64::MIN),
            q.until_ns.unwrap_or(i64::MAX),
        );
        let bucket_ns = self.bucket_ns()?.unwrap_or(3_600_000_000_000);
        let capture_loss = self.capture_loss(Some(lo), Some(hi))?;
        let mut c = self.conn()?;
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(db)?;
        // Frames with an implausible time are in no bucket, so no period
        // holds them: the figure is the whole store's.
        let implausible_time: i64 = tx
            .query_one(
                "SELECT CAST(COALESCE(SUM(implausible_time), 0) AS BIGINT) FROM files",
                &[],
            )
            .map_err(db)?
            .get(0);
        let tier = coverage_of(&mut tx)
            .map_err(db)?
            .choose(q.tier, q.since_ns, q.until_ns)
            .map_err(|why| StoreError::Tier {
                path: url.clone(),
                why,
            })?;
        let (bt, ct) = (tier.buckets_table(), tier.classes_table());
        let period_ns = tier.length_ns(bucket_ns);
        let mut report = ReportBuilder::new(q, period_ns, implausible_time as u64);
        for r in tx
            .query(
                &format!(
                    "SELECT start_ns, packets, bytes, outside, malformed, sources FROM {bt}
                     WHERE start_ns >= $1 AND start_ns < $2 ORDER BY start_ns"
                ),
                &[&lo, &hi],
            )
            .map_err(db)?
        {
            report.bucket(BucketRow {
                start_ns: r.get(0),
                packets: r.get::<_, i64>(1) as u64,
                bytes: r.get::<_, i64>(2) as u64,
                outside: r.get::<_, i64>(3) as u64,
                malformed: r.get::<_, i64>(4) as u64,
                sources: r.get::<_, i64>(5) as u64,
                classes: Default::default(),
            });
        }
        for r in tx
            .query(
                &format!(
                    "SELECT start_ns, class, packets FROM {ct} WHERE start_ns >= $1 AND start_ns < $2"
                ),
                &[&lo, &hi],
            )
            .map_err(db)?
        {
            if let Some(class) = iotscope_wire::Class::from_name(r.get::<_, &str>(1)) {
                report.class(r.get(0), class, r.get::<_, i64>(2) as u64);
            }
        }
        let all_ports = (0, PORT_BLOCKS - 1);
        each_block(
            &mut tx,
            &url,
            BlockTable::Ports(tier),
            all_ports,
            (lo, hi),
            |start, r| {
                while !r.done() {
                    let e = r.next_port()?;
                    if report.wants_port(e.port) {
                        report.port(PortBucketRow {
                            start_ns: start,
                            port: e.port,
                            packets: e.packets,
                            sources: e.sources,
                            estimated: e.estimated,
                        });
                    }
                }
                Ok(())
            },
        )?;
        each_block(
            &mut tx,
            &url,
            BlockTable::PortSketches(tier),
            all_ports,
            (lo, hi),
            |_, r| {
                while !r.done() {
                    let (port, bytes) = r.next_port_sketch()?;
                    if report.needs_sketch(port) {
                        let sketch =
                            SourceSketch::from_bytes(bytes).map_err(|_| blocks::Damaged)?;
                        report.port_sketch(port, &sketch);
                    }
                }
                Ok(())
            },
        )?;
        // The infected hosts' ports first (sources that sent Mirai SYNs:
        // few), by block; then the sources block by block, each block's
        // infected ports at its end.
        let mut infected: HashMap<i64, Vec<(i64, Vec<u8>)>> = HashMap::new();
        for r in tx
            .query("SELECT block, day, data FROM infected_port_blocks", &[])
            .map_err(db)?
        {
            infected
                .entry(r.get(0))
                .or_default()
                .push((r.get(1), r.get(2)));
        }
        let mut ports = Vec::new();
        each_source_by_block(&mut tx, &url, BlockTable::Sources(tier), (lo, hi), |e| {
            match e {
                SourceEvent::Source(_, addr, counters) => {
                    report.source(&SourceBucketRow { addr, counters })
                }
                SourceEvent::End(block) => {
                    for (day, data) in infected.remove(&block).unwrap_or_default() {
                        let bad = || StoreError::Block {
                            path: url.clone(),
                            table: BlockTable::InfectedPorts.name(),
                            block,
                            key: day,
                        };
                        let mut r = blocks::Reader::new(&data).map_err(|_| bad())?;
                        while !r.done() {
                            let addr = r.next_source_ports(&mut ports).map_err(|_| bad())?;
                            for &p in ports.iter().take_while(|&&p| p < 1 << 16) {
                                report.infected_port(addr, p as u16);
                            }
                        }
                    }
                    report.end_block();
                }
            }
            Ok(())
        })?;
        tx.commit().map_err(db)?;
        let mut summary = report.finish();
        summary.tier = Some(tier.name().to_string());
        report::add_capture_loss(&mut summary, capture_loss, period_ns);
        Ok(summary)
    }

    fn save_services(&mut self, rows: &[ServiceObservation]) -> Result<(), StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        let st = tx
            .prepare(
                "INSERT INTO services (ip, port, proto, status, service, banner, first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (ip, port, proto) DO UPDATE SET status = excluded.status,
                   service = excluded.service, banner = excluded.banner, last_seen = excluded.last_seen",
            )
            .map_err(db)?;
        for r in rows {
            tx.execute(
                &st,
                &[
                    &r.ip,
                    &i64::from(r.port),
                    &r.proto,
                    &r.status,
                    &r.service,
                    &r.banner,
                    &r.ts,
                ],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn services(&self) -> Result<Vec<ServiceObservation>, StoreError> {
        Ok(self
            .rows(
                "SELECT ip, port, proto, status, service, banner, last_seen FROM services ORDER BY ip, port",
                &[],
            )?
            .iter()
            .map(|r| ServiceObservation {
                ip: r.get(0),
                port: r.get::<_, i64>(1) as u16,
                proto: r.get(2),
                status: r.get(3),
                service: r.get(4),
                banner: r.get(5),
                ts: r.get(6),
            })
            .collect())
    }

    fn save_findings(&mut self, rows: &[FindingRecord]) -> Result<(), StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        let st = tx
            .prepare(
                "INSERT INTO findings (ip, port, service, kind, severity, device, evidence, first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                 ON CONFLICT (ip, port, kind) DO UPDATE SET service = excluded.service,
                   severity = excluded.severity, device = excluded.device,
                   evidence = excluded.evidence, last_seen = excluded.last_seen",
            )
            .map_err(db)?;
        for r in rows {
            tx.execute(
                &st,
                &[
                    &r.ip,
                    &i64::from(r.port),
                    &r.service,
                    &r.kind,
                    &r.severity,
                    &r.device,
                    &r.evidence,
                    &r.ts,
                ],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn findings(&self) -> Result<Vec<FindingRecord>, StoreError> {
        Ok(self
            .rows(
                "SELECT ip, port, service, kind, severity, device, evidence, last_seen, first_seen
                 FROM findings ORDER BY ip, port, kind",
                &[],
            )?
            .iter()
            .map(finding_row)
            .collect())
    }

    fn findings_page(
        &self,
        after: Option<&(String, u16, String)>,
        limit: usize,
    ) -> Result<Vec<FindingRecord>, StoreError> {
        let (ip, port, kind) = after
            .cloned()
            .unwrap_or_else(|| (String::new(), 0, String::new()));
        let first = after.is_none();
        let limit = limit.min(i64::MAX as usize) as i64;
        Ok(self
            .rows(
                "SELECT ip, port, service, kind, severity, device, evidence, last_seen, first_seen
                 FROM findings WHERE $1 OR (ip, port, kind) > ($2, $3, $4)
                 ORDER BY ip, port, kind LIMIT $5",
                &[&first, &ip, &i64::from(port), &kind, &limit],
            )?
            .iter()
            .map(finding_row)
            .collect())
    }

    fn save_blocklist(&mut self, rows: &[BlocklistRecord]) -> Result<usize, StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let now = crate::now_rfc3339();
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        // xmax = 0 on the returned row: it was inserted, not updated.
        let st = tx
            .prepare(
                "INSERT INTO blocklist (value, kind, port, malware, source, first_seen, imported)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (value) DO UPDATE SET imported = excluded.imported
                 RETURNING (xmax = 0)",
            )
            .map_err(db)?;
        let mut added = 0;
        for r in rows {
            let new: bool = tx
                .query_one(
                    &st,
                    &[
                        &r.value,
                        &r.kind,
                        &r.port.map(i64::from),
                        &r.malware,
                        &r.source,
                        &r.first_seen,
                        &now,
                    ],
                )
                .map_err(db)?
                .get(0);
            added += usize::from(new);
        }
        tx.commit().map_err(db)?;
        Ok(added)
    }

    fn blocklist(&self) -> Result<Vec<BlocklistRecord>, StoreError> {
        Ok(self
            .rows(
                "SELECT value, kind, port, malware, source, first_seen FROM blocklist ORDER BY value",
                &[],
            )?
            .iter()
            .map(|r| BlocklistRecord {
                value: r.get(0),
                kind: r.get(1),
                port: r.get::<_, Option<i64>>(2).map(|p| p as u16),
                malware: r.get(3),
                source: r.get(4),
                first_seen: r.get(5),
            })
            .collect())
    }

    fn merge_alerts(&mut self, rows: &[AlertRecord]) -> Result<(usize, usize), StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let now = crate::now_rfc3339();
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        let (mut created, mut updated) = (0, 0);
        let history = tx
            .prepare(
                "INSERT INTO alert_history (ip, port, problem, ts, status, note) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .map_err(db)?;
        for r in rows {
            // Port 0 is the key's "no port" (telescope alerts).
            let port = i64::from(r.port.unwrap_or(0));
            // FOR UPDATE: two writers merging the same alert take turns; a
            // row another writer inserted meanwhile is merged with, so the
            // loop runs at most twice.
            loop {
                let known = tx
                .query_opt(
                    "SELECT status, last_seen FROM alerts WHERE ip = $1 AND port = $2 AND problem = $3 FOR UPDATE",
                    &[&r.ip, &port, &r.problem],
                )
                .map_err(db)?
                .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)));
                match known {
                    None => {
                        let inserted = tx
                        .execute(
                            "INSERT INTO alerts (ip, problem, port, service, severity, isp, device, evidence, advice,
                                                 first_seen, last_seen, status)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'new')
                             ON CONFLICT (ip, port, problem) DO NOTHING",
                            &[
                                &r.ip, &r.problem, &port, &r.service, &r.severity, &r.isp,
                                &r.device, &r.evidence, &r.advice, &r.first_seen, &r.last_seen,
                            ],
                        )
                        .map_err(db)?;
                        if inserted == 0 {
                            continue;
                        }
                        tx.execute(
                            &history,
                            &[
                                &r.ip,
                                &port,
                                &r.problem,
                                &now,
                                &"new",
                                &format!("first seen {}", r.first_seen),
                            ],
                        )
                        .map_err(db)?;
                        created += 1;
                    }
                    Some((status, last_seen)) => {
                        let again = status == "fixed" && r.last_seen > last_seen;
                        let status = if again {
                            "persisting".to_string()
                        } else {
                            status
                        };
                        tx.execute(
                            "UPDATE alerts SET service = $4, severity = $5, isp = $6, device = $7,
                           evidence = $8, advice = $9, first_seen = LEAST(first_seen, $10),
                           last_seen = GREATEST(last_seen, $11), status = $12
                         WHERE ip = $1 AND problem = $2 AND port = $3",
                            &[
                                &r.ip,
                                &r.problem,
                                &port,
                                &r.service,
                                &r.severity,
                                &r.isp,
                                &r.device,
                                &r.evidence,
                                &r.advice,
                                &r.first_seen,
                                &r.last_seen,
                                &status,
                            ],
                        )
                        .map_err(db)?;
                        if again {
                            tx.execute(
                                &history,
                                &[
                                    &r.ip,
                                    &port,
                                    &r.problem,
                                    &now,
                                    &"persisting",
                                    &format!("seen again {}", r.last_seen),
                                ],
                            )
                            .map_err(db)?;
                        }
                        updated += 1;
                    }
                }
                break;
            }
        }
        tx.commit().map_err(db)?;
        Ok((created, updated))
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        Ok(self
            .rows(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts ORDER BY ip, problem, port"),
                &[],
            )?
            .iter()
            .map(alert_row)
            .collect())
    }

    fn set_alert_status(
        &mut self,
        ip: &str,
        port: Option<u16>,
        problem: &str,
        status: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let port = i64::from(port.unwrap_or(0));
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        let n = tx
            .execute(
                "UPDATE alerts SET status = $3 WHERE ip = $1 AND problem = $2 AND port = $4",
                &[&ip, &problem, &status, &port],
            )
            .map_err(db)?;
        if n > 0 {
            tx.execute(
                "INSERT INTO alert_history (ip, port, problem, ts, status, note) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&ip, &port, &problem, &crate::now_rfc3339(), &status, &note],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(n > 0)
    }

    fn alert_history(
        &self,
        ip: &str,
        port: Option<u16>,
        problem: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(self
            .rows(
                "SELECT ts, status, note FROM alert_history WHERE ip = $1 AND port = $2 AND problem = $3 ORDER BY seq",
                &[&ip, &i64::from(port.unwrap_or(0)), &problem],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn alerts_for_ip(&self, ip: &str) -> Result<Vec<AlertRecord>, StoreError> {
        Ok(self
            .rows(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE ip = $1 ORDER BY problem, port"),
                &[&ip],
            )?
            .iter()
            .map(alert_row)
            .collect())
    }

    fn put_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        tx.execute(
            "INSERT INTO users (name, password_hash, role, isp, created) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
             role = excluded.role, isp = excluded.isp",
            &[&u.name, &u.password_hash, &u.role, &u.isp, &u.created],
        )
        .map_err(db)?;
        // A new password ends every session of the old one.
        tx.execute("DELETE FROM sessions WHERE user_name = $1", &[&u.name])
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        Ok(self
            .rows(
                "SELECT name, password_hash, role, isp, created FROM users ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| UserRecord {
                name: r.get(0),
                password_hash: r.get(1),
                role: r.get(2),
                isp: r.get(3),
                created: r.get(4),
            })
            .collect())
    }

    fn delete_user(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM users WHERE name = $1", &[&name])? > 0)
    }

    fn put_session(&mut self, s: &SessionRecord, now_ns: i64) -> Result<(), StoreError> {
        // Expired sessions go when new ones come: the table stays small.
        self.exec("DELETE FROM sessions WHERE expires_ns <= $1", &[&now_ns])?;
        self.exec(
            "INSERT INTO sessions (token_hash, user_name, kind, csrf, created, expires_ns)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &s.token_hash,
                &s.user,
                &s.kind,
                &s.csrf,
                &s.created,
                &s.expires_ns,
            ],
        )?;
        Ok(())
    }

    fn session(
        &self,
        token_hash: &str,
        now_ns: i64,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        Ok(self
            .rows(
                "SELECT s.token_hash, s.user_name, s.kind, s.csrf, s.created, s.expires_ns,
                        u.password_hash, u.role, u.isp, u.created
                 FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.token_hash = $1 AND s.expires_ns > $2",
                &[&token_hash, &now_ns],
            )?
            .first()
            .map(|r| {
                let session = SessionRecord {
                    token_hash: r.get(0),
                    user: r.get(1),
                    kind: r.get(2),
                    csrf: r.get(3),
                    created: r.get(4),
                    expires_ns: r.get(5),
                };
                let user = UserRecord {
                    name: session.user.clone(),
                    password_hash: r.get(6),
                    role: r.get(7),
                    isp: r.get(8),
                    created: r.get(9),
                };
                (session, user)
            }))
    }

    fn delete_session(&mut self, token_hash: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])?;
        Ok(())
    }

    fn save_honeypot_session(&mut self, h: &HoneypotSession) -> Result<bool, StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        let new = tx
            .execute(
                "INSERT INTO honeypot_sessions (sensor, id, protocol, src_ip, src_port, dst_ip, dst_port,
                   start_ns, end_ns, username, password, input_sha256, reason, linked_session, linked_ip, truncated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT (sensor, id) DO NOTHING",
                &[
                    &h.sensor,
                    &h.id,
                    &h.protocol,
                    &h.src_ip,
                    &i64::from(h.src_port),
                    &h.dst_ip,
                    &i64::from(h.dst_port),
                    &h.start_ns,
                    &h.end_ns,
                    &h.login.as_ref().map(|l| &l.0),
                    &h.login.as_ref().map(|l| &l.1),
                    &h.input_sha256,
                    &h.reason,
                    &h.linked.as_ref().map(|l| &l.0),
                    &h.linked.as_ref().map(|l| &l.1),
                    &(h.truncated as i64),
                ],
            )
            .map_err(db)?
            == 1;
        if new {
            let st = tx
                .prepare("INSERT INTO honeypot_logins VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .map_err(db)?;
            for (i, (at, u, p, ok)) in h.logins.iter().enumerate() {
                tx.execute(&st, &[&h.sensor, &h.id, &(i as i64), at, u, p, ok])
                    .map_err(db)?;
            }
            let st = tx
                .prepare("INSERT INTO honeypot_commands VALUES ($1, $2, $3, $4, $5, $6)")
                .map_err(db)?;
            for (i, (at, input, known)) in h.commands.iter().enumerate() {
                tx.execute(&st, &[&h.sensor, &h.id, &(i as i64), at, input, known])
                    .map_err(db)?;
            }
            let st = tx
                .prepare("INSERT INTO honeypot_downloads VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .map_err(db)?;
            for (i, (kind, url, host, port)) in h.downloads.iter().enumerate() {
                tx.execute(
                    &st,
                    &[
                        &h.sensor,
                        &h.id,
                        &(i as i64),
                        kind,
                        url,
                        host,
                        &port.map(i64::from),
                    ],
                )
                .map_err(db)?;
            }
            let st = tx
                .prepare(
                    "INSERT INTO honeypot_payloads VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .map_err(db)?;
            for (p, sha, size, dup) in &h.payloads {
                tx.execute(&st, &[&h.sensor, &h.id, p, sha, &(*size as i64), dup])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(new)
    }

    fn honeypot_sessions(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HoneypotSession>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut out: Vec<HoneypotSession> = self
            .rows(
                "SELECT sensor, id, protocol, src_ip, src_port, dst_ip, dst_port, start_ns, end_ns,
                        username, password, input_sha256, reason, linked_session, linked_ip, truncated
                 FROM honeypot_sessions WHERE start_ns >= $1 AND start_ns < $2
                 ORDER BY start_ns, sensor, id LIMIT $3",
                &[
                    &since_ns.unwrap_or(i64::MIN),
                    &until_ns.unwrap_or(i64::MAX),
                    &limit,
                ],
            )?
            .iter()
            .map(|r| {
                let user: Option<String> = r.get(9);
                let pass: Option<String> = r.get(10);
                let ls: Option<String> = r.get(13);
                let li: Option<String> = r.get(14);
                HoneypotSession {
                    sensor: r.get(0),
                    id: r.get(1),
                    protocol: r.get(2),
                    src_ip: r.get(3),
                    src_port: r.get::<_, i64>(4) as u16,
                    dst_ip: r.get(5),
                    dst_port: r.get::<_, i64>(6) as u16,
                    start_ns: r.get(7),
                    end_ns: r.get(8),
                    login: user.zip(pass),
                    input_sha256: r.get(11),
                    reason: r.get(12),
                    linked: ls.zip(li),
                    truncated: r.get::<_, i64>(15) as u64,
                    ..Default::default()
                }
            })
            .collect();
        for h in &mut out {
            let key: [Param<'_>; 2] = [&h.sensor, &h.id];
            h.logins = self
                .rows(
                    "SELECT at_ns, username, password, success FROM honeypot_logins
                     WHERE sensor = $1 AND session = $2 ORDER BY seq",
                    &key,
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            h.commands = self
                .rows(
                    "SELECT at_ns, input, known FROM honeypot_commands
                     WHERE sensor = $1 AND session = $2 ORDER BY seq",
                    &key,
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            h.downloads = self
                .rows(
                    "SELECT kind, url, host, port FROM honeypot_downloads
                     WHERE sensor = $1 AND session = $2 ORDER BY seq",
                    &key,
                )?
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        r.get(1),
                        r.get(2),
                        r.get::<_, Option<i64>>(3).map(|p| p as u16),
                    )
                })
                .collect();
            h.payloads = self
                .rows(
                    "SELECT path, sha256, size, duplicate FROM honeypot_payloads
                     WHERE sensor = $1 AND session = $2 ORDER BY path",
                    &key,
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64, r.get(3)))
                .collect();
        }
        Ok(out)
    }

    fn port_activity(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<BucketPorts>, StoreError> {
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        let mut out: Vec<BucketPorts> = self
            .rows(
                "SELECT start_ns FROM buckets WHERE start_ns >= $1 AND start_ns < $2 ORDER BY start_ns",
                &[&lo, &hi],
            )?
            .iter()
            .map(|r| BucketPorts {
                start_ns: r.get(0),
                ports: Vec::new(),
            })
            .collect();
        each_block(
            &mut *self.conn()?,
            &self.url,
            BlockTable::Ports(Tier::Bucket),
            (0, PORT_BLOCKS - 1),
            (lo, hi),
            |start, r| {
                let i = out.binary_search_by_key(&start, |b| b.start_ns);
                while !r.done() {
                    let e = r.next_port()?;
                    if let Ok(i) = i {
                        out[i].ports.push((e.port, e.packets, e.sources));
                    }
                }
                Ok(())
            },
        )?;
        for b in &mut out {
            b.ports.sort_unstable_by_key(|p| p.0);
        }
        Ok(out)
    }

    fn port_sketches(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        ports: &[PortIndex],
    ) -> Result<Vec<(i64, PortIndex, SourceSketch)>, StoreError> {
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        let mut want: Vec<PortIndex> = ports.to_vec();
        want.sort_unstable();
        want.dedup();
        let mut blocks_wanted: Vec<i64> = want.iter().map(|&p| blocks::port_block(p)).collect();
        blocks_wanted.dedup();
        let mut out = Vec::new();
        let mut bad_sketch = None;
        for b in blocks_wanted {
            each_block(
                &mut *self.conn()?,
                &self.url,
                BlockTable::PortSketches(Tier::Bucket),
                (b, b),
                (lo, hi),
                |start, r| {
                    while !r.done() {
                        let (port, bytes) = r.next_port_sketch()?;
                        if want.binary_search(&port).is_ok() {
                            match SourceSketch::from_bytes(bytes) {
                                Ok(s) => out.push((start, port, s)),
                                Err(e) => bad_sketch = Some((start, e)),
                            }
                        }
                    }
                    Ok(())
                },
            )?;
            if let Some((bucket, source)) = bad_sketch.take() {
                return Err(StoreError::Sketch {
                    path: self.url.clone(),
                    bucket,
                    source,
                });
            }
        }
        Ok(out)
    }

    fn each_bucket_source(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        f: &mut dyn FnMut(i64, Addr, &SourceCounters),
    ) -> Result<(), StoreError> {
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        each_source_by_block(
            &mut *self.conn()?,
            &self.url,
            BlockTable::Sources(Tier::Bucket),
            (lo, hi),
            |e| {
                if let SourceEvent::Source(start, a, counters) = e {
                    f(start, a, &counters);
                }
                Ok(())
            },
        )
    }

    fn merge_detections(
        &mut self,
        rows: &[DetectionRecord],
        cooldown_ns: i64,
    ) -> Result<Vec<(String, i64, bool)>, StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let now = crate::now_rfc3339();
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        // One merger at a time: episodes of a key are read, bridged and
        // rewritten as a whole.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DETECTION_LOCK])
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let lo = r.first_bucket_ns.saturating_sub(cooldown_ns);
            let hi = r.last_bucket_ns.saturating_add(cooldown_ns);
            // Every episode of the key the row comes within the cool-down
            // of, oldest first: one is widened, several are bridged.
            let eps: Vec<DetectionRecord> = tx
                .query(
                    "SELECT key, first_bucket_ns, last_bucket_ns, kind, severity, proto, ports, score,
                            peak_score, body, created_at, updated_at, notified_at
                     FROM detections
                     WHERE key = $1 AND last_bucket_ns >= $2 AND first_bucket_ns <= $3
                     ORDER BY first_bucket_ns",
                    &[&r.key, &lo, &hi],
                )
                .map_err(db)?
                .iter()
                .map(detection_row)
                .collect();
            let Some(keep) = eps.first() else {
                tx.execute(
                    "INSERT INTO detections (key, first_bucket_ns, last_bucket_ns, kind, severity, proto,
                       ports, score, peak_score, body, created_at, updated_at, notified_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $10, NULL)",
                    &[
                        &r.key,
                        &r.first_bucket_ns,
                        &r.last_bucket_ns,
                        &r.kind,
                        &r.severity,
                        &r.proto,
                        &r.ports,
                        &r.score,
                        &r.body,
                        &now,
                    ],
                )
                .map_err(db)?;
                out.push((r.key.clone(), r.first_bucket_ns, true));
                continue;
            };
            let m = crate::merge_episode(&eps, r);
            if m.changed {
                for e in &eps[1..] {
                    tx.execute(
                        "DELETE FROM detections WHERE key = $1 AND first_bucket_ns = $2",
                        &[&r.key, &e.first_bucket_ns],
                    )
                    .map_err(db)?;
                }
                tx.execute(
                    "UPDATE detections SET first_bucket_ns = $3, last_bucket_ns = $4, kind = $5,
                       severity = $6, proto = $7, ports = $8, score = $9, peak_score = $10,
                       body = $11, updated_at = $12, notified_at = $13
                     WHERE key = $1 AND first_bucket_ns = $2",
                    &[
                        &r.key,
                        &keep.first_bucket_ns,
                        &m.first,
                        &m.last,
                        &m.kind,
                        &m.severity,
                        &m.proto,
                        &m.ports,
                        &m.score,
                        &m.peak,
                        &m.body,
                        &now,
                        &m.notified,
                    ],
                )
                .map_err(db)?;
            }
            out.push((r.key.clone(), m.first, false));
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn detections(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DetectionRecord>, StoreError> {
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        let limit = limit.min(i64::MAX as usize) as i64;
        Ok(self
            .rows(
                "SELECT key, first_bucket_ns, last_bucket_ns, kind, severity, proto, ports, score,
                        peak_score, body, created_at, updated_at, notified_at
                 FROM detections WHERE last_bucket_ns >= $1 AND first_bucket_ns < $2
                 ORDER BY first_bucket_ns DESC, key LIMIT $3",
                &[&lo, &hi, &limit],
            )?
            .iter()
            .map(detection_row)
            .collect())
    }

    fn mark_detection_notified(
        &mut self,
        key: &str,
        first_bucket_ns: i64,
        at: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE detections SET notified_at = $3 WHERE key = $1 AND first_bucket_ns = $2",
            &[&key, &first_bucket_ns, &at],
        )? > 0)
    }

    fn map_sources(&self, q: &MapQuery) -> Result<Vec<MapSource>, StoreError> {
        let (lo, hi) = (
            q.since_ns.unwrap_or(i64::MIN),
            q.until_ns.unwrap_or(i64::MAX),
        );
        let wanted = q
            .port
            .as_ref()
            .and_then(|(proto, port)| iotscope_telescope::parse_port(&format!("{port}/{proto}")));
        if q.port.is_some() && wanted.is_none() {
            return Ok(Vec::new());
        }
        let busiest =
            |a: &MapSource, b: &MapSource| b.packets.cmp(&a.packets).then_with(|| a.ip.cmp(&b.ip));
        let url = self.url.clone();
        let mut c = self.conn()?;
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| pg_error(&url, e))?;
        let mut on_port: std::collections::HashSet<Addr> = Default::default();
        if let Some(want) = wanted {
            let b = blocks::port_block(want);
            let mut addrs = Vec::new();
            each_block(
                &mut tx,
                &url,
                BlockTable::PortSources,
                (b, b),
                ALL_KEYS,
                |_, r| {
                    while !r.done() {
                        if r.next_port_sources(&mut addrs)? == want {
                            on_port.extend(addrs.iter().copied());
                        }
                    }
                    Ok(())
                },
            )?;
            if on_port.is_empty() {
                return Ok(Vec::new());
            }
        }
        let mut rows: Vec<MapSource> = Vec::new();
        let mut by_addr: HashMap<Addr, SourceCounters> = HashMap::new();
        each_source_by_block(
            &mut tx,
            &url,
            BlockTable::Sources(Tier::Bucket),
            (lo, hi),
            |e| {
                match e {
                    SourceEvent::Source(_, a, counters) => {
                        if wanted.is_none() || on_port.contains(&a) {
                            by_addr.entry(a).or_default().add(&counters);
                        }
                    }
                    SourceEvent::End(_) => {
                        rows.extend(by_addr.drain().map(|(a, c)| MapSource {
                            ip: a.to_string(),
                            packets: c.packets,
                            first_ns: c.first_ts,
                            last_ns: c.last_ts,
                            class_mask: c.class_mask,
                            fingerprints: [c.mirai, c.zmap, c.masscan, c.backscatter],
                            syn: c.syn,
                        }));
                        if q.limit > 0 && rows.len() >= q.limit.saturating_mul(2).max(1024) {
                            rows.select_nth_unstable_by(q.limit - 1, busiest);
                            rows.truncate(q.limit);
                        }
                    }
                }
                Ok(())
            },
        )?;
        rows.sort_by(busiest);
        rows.truncate(q.limit);
        Ok(rows)
    }

    fn tier_series(
        &self,
        tier: Tier,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        ports: &[(String, u16)],
    ) -> Result<PortSeries, StoreError> {
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        let starts: Vec<i64> = self
            .rows(
                &format!("SELECT start_ns FROM {} WHERE start_ns >= $1 AND start_ns < $2 ORDER BY start_ns", tier.buckets_table()),
                &[&lo, &hi],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut lines = Vec::new();
        for (proto, port) in ports {
            let mut packets = vec![0u64; starts.len()];
            let mut sources = vec![0u64; starts.len()];
            if let Some(want) = iotscope_telescope::parse_port(&format!("{port}/{proto}")) {
                let b = blocks::port_block(want);
                each_block(
                    &mut *self.conn()?,
                    &self.url,
                    BlockTable::Ports(tier),
                    (b, b),
                    (lo, hi),
                    |start, r| {
                        while !r.done() {
                            let e = r.next_port()?;
                            if e.port == want {
                                if let Ok(i) = starts.binary_search(&start) {
                                    packets[i] = e.packets;
                                    sources[i] = e.sources;
                                }
                            }
                        }
                        Ok(())
                    },
                )?;
            }
            lines.push((packets, sources));
        }
        Ok(PortSeries { starts, lines })
    }

    fn fingerprint_persistence(&self) -> Result<Vec<FingerprintPersistence>, StoreError> {
        let mut rows = Vec::new();
        let mut by_addr: HashMap<Addr, FingerprintPersistence> = HashMap::new();
        each_source_by_block(
            &mut *self.conn()?,
            &self.url,
            BlockTable::Sources(Tier::Bucket),
            ALL_KEYS,
            |e| {
                match e {
                    SourceEvent::Source(start, a, counters) if counters.mirai > 0 => {
                        let e = by_addr.entry(a).or_insert_with(|| FingerprintPersistence {
                            ip: a.to_string(),
                            buckets: 0,
                            packets: 0,
                            first_bucket_ns: start,
                            last_bucket_ns: start,
                        });
                        e.buckets += 1;
                        e.packets += counters.mirai;
                        e.first_bucket_ns = e.first_bucket_ns.min(start);
                        e.last_bucket_ns = e.last_bucket_ns.max(start);
                    }
                    SourceEvent::Source(..) => {}
                    SourceEvent::End(_) => rows.extend(by_addr.drain().map(|(_, v)| v)),
                }
                Ok(())
            },
        )?;
        rows.sort_by(|a, b| a.ip.cmp(&b.ip));
        Ok(rows)
    }

    fn oldest_bucket_start(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.rows("SELECT MIN(start_ns) FROM buckets", &[])?[0].get(0))
    }

    fn newest_bucket_end(&self) -> Result<Option<i64>, StoreError> {
        let last: Option<i64> = self.rows("SELECT MAX(start_ns) FROM buckets", &[])?[0].get(0);
        let bucket = self.bucket_ns()?.unwrap_or(3_600_000_000_000);
        Ok(last.map(|l| l + bucket))
    }

    fn version(&self) -> Result<String, StoreError> {
        Ok(self.rows(
            "SELECT CAST(COUNT(*) AS TEXT) || '/' || COALESCE(MAX(ingested_at), '') FROM files",
            &[],
        )?[0]
            .get(0))
    }

    fn capture_loss(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<CaptureLoss>, StoreError> {
        Ok(self
            .rows(
                "SELECT start_ns, interface, received, dropped, if_dropped FROM capture_loss
                 WHERE start_ns >= $1 AND start_ns < $2 ORDER BY start_ns, interface",
                &[&since_ns.unwrap_or(i64::MIN), &until_ns.unwrap_or(i64::MAX)],
            )?
            .iter()
            .map(|r| CaptureLoss {
                bucket_start_ns: r.get(0),
                interface: r.get(1),
                received: r.get::<_, i64>(2) as u64,
                dropped: r.get::<_, i64>(3) as u64,
                if_dropped: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    fn put_survey_shard(&mut self, r: &SurveyShard) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO survey_shards (run, shard, shards, seed, host, pairs, sent, open, findings,
               state, started, updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (run, shard) DO UPDATE SET shards = excluded.shards, seed = excluded.seed,
               host = excluded.host, pairs = excluded.pairs, sent = excluded.sent,
               open = excluded.open, findings = excluded.findings, state = excluded.state,
               updated = excluded.updated",
            &[
                &r.run,
                &i64::from(r.shard),
                &i64::from(r.shards),
                &(r.seed as i64),
                &r.host,
                &(r.pairs as i64),
                &(r.sent as i64),
                &(r.open as i64),
                &(r.findings as i64),
                &r.state,
                &r.started,
                &r.updated,
            ],
        )?;
        Ok(())
    }

    fn survey_shards(&self, run: Option<&str>) -> Result<Vec<SurveyShard>, StoreError> {
        Ok(self
            .rows(
                "SELECT run, shard, shards, seed, host, pairs, sent, open, findings, state, started, updated
                 FROM survey_shards WHERE $1::text IS NULL OR run = $1 ORDER BY run, shard",
                &[&run],
            )?
            .iter()
            .map(|r| SurveyShard {
                run: r.get(0),
                shard: r.get::<_, i64>(1) as u32,
                shards: r.get::<_, i64>(2) as u32,
                seed: r.get::<_, i64>(3) as u64,
                host: r.get(4),
                pairs: r.get::<_, i64>(5) as u64,
                sent: r.get::<_, i64>(6) as u64,
                open: r.get::<_, i64>(7) as u64,
                findings: r.get::<_, i64>(8) as u64,
                state: r.get(9),
                started: r.get(10),
                updated: r.get(11),
            })
            .collect())
    }

    fn capture_totals(&self) -> Result<Vec<CaptureTotals>, StoreError> {
        let mut out: Vec<CaptureTotals> = self
            .rows(
                "SELECT interface, CAST(SUM(received) AS BIGINT), CAST(SUM(dropped) AS BIGINT),
                        CAST(SUM(if_dropped) AS BIGINT), MAX(start_ns)
                 FROM capture_loss GROUP BY interface ORDER BY interface",
                &[],
            )?
            .iter()
            .map(|r| CaptureTotals {
                interface: r.get(0),
                received: r.get::<_, i64>(1) as u64,
                dropped: r.get::<_, i64>(2) as u64,
                if_dropped: r.get::<_, i64>(3) as u64,
                last_bucket_start_ns: r.get(4),
                ..Default::default()
            })
            .collect();
        for t in &mut out {
            let r = &self.rows(
                "SELECT CAST(COALESCE(SUM(frames), 0) AS BIGINT), COALESCE(MAX(ingested_at), '')
                 FROM files WHERE path = $1",
                &[&format!("interface {}", t.interface)],
            )?[0];
            t.frames = r.get::<_, i64>(0) as u64;
            t.last_commit_at = r.get(1);
        }
        Ok(out)
    }
}

/// Runs `f` where the synchronous client may block: on this thread, or on
/// a short-lived scoped thread when this one drives a tokio runtime (the
/// client runs a runtime of its own, and tokio refuses one inside another:
/// the survey, the honeypot and the gateway call the store from async
/// code).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Store for PgStore {
    fn coverage(&self) -> Result<crate::Coverage, StoreError> {
        off_runtime(|| self.inner.coverage())
    }

    fn prune(
        &mut self,
        retention: &crate::Retention,
        now_ns: i64,
    ) -> Result<Vec<crate::Pruned>, StoreError> {
        off_runtime(|| self.inner.prune(retention, now_ns))
    }

    fn bucket_ns(&self) -> Result<Option<i64>, StoreError> {
        off_runtime(|| self.inner.bucket_ns())
    }

    fn find_file(&self, content_hash: &str) -> Result<Option<IngestedFile>, StoreError> {
        off_runtime(|| self.inner.find_file(content_hash))
    }

    fn save_run(
        &mut self,
        telescope: &Telescope,
        files: &[IngestedFile],
    ) -> Result<(), StoreError> {
        off_runtime(|| self.inner.save_run(telescope, files))
    }

    fn save_spooled(
        &mut self,
        run: &crate::SpooledRun,
        files: &[IngestedFile],
    ) -> Result<(), StoreError> {
        off_runtime(|| self.inner.save_spooled(run, files))
    }

    fn report(&self, query: &ReportQuery) -> Result<Summary, StoreError> {
        off_runtime(|| self.inner.report(query))
    }

    fn save_services(&mut self, rows: &[ServiceObservation]) -> Result<(), StoreError> {
        off_runtime(|| self.inner.save_services(rows))
    }

    fn services(&self) -> Result<Vec<ServiceObservation>, StoreError> {
        off_runtime(|| self.inner.services())
    }

    fn save_findings(&mut self, rows: &[FindingRecord]) -> Result<(), StoreError> {
        off_runtime(|| self.inner.save_findings(rows))
    }

    fn findings(&self) -> Result<Vec<FindingRecord>, StoreError> {
        off_runtime(|| self.inner.findings())
    }

    fn findings_page(
        &self,
        after: Option<&(String, u16, String)>,
        limit: usize,
    ) -> Result<Vec<FindingRecord>, StoreError> {
        off_runtime(|| self.inner.findings_page(after, limit))
    }

    fn save_blocklist(&mut self, rows: &[BlocklistRecord]) -> Result<usize, StoreError> {
        off_runtime(|| self.inner.save_blocklist(rows))
    }

    fn blocklist(&self) -> Result<Vec<BlocklistRecord>, StoreError> {
        off_runtime(|| self.inner.blocklist())
    }

    fn merge_alerts(&mut self, rows: &[AlertRecord]) -> Result<(usize, usize), StoreError> {
        off_runtime(|| self.inner.merge_alerts(rows))
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        off_runtime(|| self.inner.alerts())
    }

    fn set_alert_status(
        &mut self,
        ip: &str,
        port: Option<u16>,
        problem: &str,
        status: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        off_runtime(|| self.inner.set_alert_status(ip, port, problem, status, note))
    }

    fn alert_history(
        &self,
        ip: &str,
        port: Option<u16>,
        problem: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        off_runtime(|| self.inner.alert_history(ip, port, problem))
    }

    fn tier_series(
        &self,
        tier: Tier,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        ports: &[(String, u16)],
    ) -> Result<PortSeries, StoreError> {
        off_runtime(|| self.inner.tier_series(tier, since_ns, until_ns, ports))
    }

    fn newest_bucket_end(&self) -> Result<Option<i64>, StoreError> {
        off_runtime(|| self.inner.newest_bucket_end())
    }

    fn oldest_bucket_start(&self) -> Result<Option<i64>, StoreError> {
        off_runtime(|| self.inner.oldest_bucket_start())
    }

    fn fingerprint_persistence(&self) -> Result<Vec<FingerprintPersistence>, StoreError> {
        off_runtime(|| self.inner.fingerprint_persistence())
    }

    fn version(&self) -> Result<String, StoreError> {
        off_runtime(|| self.inner.version())
    }

    fn capture_totals(&self) -> Result<Vec<CaptureTotals>, StoreError> {
        off_runtime(|| self.inner.capture_totals())
    }

    fn capture_loss(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<CaptureLoss>, StoreError> {
        off_runtime(|| self.inner.capture_loss(since_ns, until_ns))
    }

    fn map_sources(&self, query: &MapQuery) -> Result<Vec<MapSource>, StoreError> {
        off_runtime(|| self.inner.map_sources(query))
    }

    fn alerts_for_ip(&self, ip: &str) -> Result<Vec<AlertRecord>, StoreError> {
        off_runtime(|| self.inner.alerts_for_ip(ip))
    }

    fn put_user(&mut self, user: &UserRecord) -> Result<(), StoreError> {
        off_runtime(|| self.inner.put_user(user))
    }

    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        off_runtime(|| self.inner.users())
    }

    fn delete_user(&mut self, name: &str) -> Result<bool, StoreError> {
        off_runtime(|| self.inner.delete_user(name))
    }

    fn put_session(&mut self, session: &SessionRecord, now_ns: i64) -> Result<(), StoreError> {
        off_runtime(|| self.inner.put_session(session, now_ns))
    }

    fn session(
        &self,
        token_hash: &str,
        now_ns: i64,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        off_runtime(|| self.inner.session(token_hash, now_ns))
    }

    fn delete_session(&mut self, token_hash: &str) -> Result<(), StoreError> {
        off_runtime(|| self.inner.delete_session(token_hash))
    }

    fn save_honeypot_session(&mut self, s: &HoneypotSession) -> Result<bool, StoreError> {
        off_runtime(|| self.inner.save_honeypot_session(s))
    }

    fn honeypot_sessions(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HoneypotSession>, StoreError> {
        off_runtime(|| self.inner.honeypot_sessions(since_ns, until_ns, limit))
    }

    fn port_activity(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<BucketPorts>, StoreError> {
        off_runtime(|| self.inner.port_activity(since_ns, until_ns))
    }

    fn port_sketches(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        ports: &[PortIndex],
    ) -> Result<Vec<(i64, PortIndex, SourceSketch)>, StoreError> {
        off_runtime(|| self.inner.port_sketches(since_ns, until_ns, ports))
    }

    fn each_bucket_source(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        f: &mut dyn FnMut(i64, Addr, &SourceCounters),
    ) -> Result<(), StoreError> {
        // The callback stays on the caller's thread: rows are gathered on
        // the worker and handed over after.
        if tokio::runtime::Handle::try_current().is_err() {
            return self.inner.each_bucket_source(since_ns, until_ns, f);
        }
        let mut rows = Vec::new();
        off_runtime(|| {
            self.inner
                .each_bucket_source(since_ns, until_ns, &mut |start, a, c| {
                    rows.push((start, a, c.clone()))
                })
        })?;
        for (start, a, c) in &rows {
            f(*start, *a, c);
        }
        Ok(())
    }

    fn merge_detections(
        &mut self,
        rows: &[DetectionRecord],
        cooldown_ns: i64,
    ) -> Result<Vec<(String, i64, bool)>, StoreError> {
        off_runtime(|| self.inner.merge_detections(rows, cooldown_ns))
    }

    fn detections(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DetectionRecord>, StoreError> {
        off_runtime(|| self.inner.detections(since_ns, until_ns, limit))
    }

    fn put_survey_shard(&mut self, shard: &SurveyShard) -> Result<(), StoreError> {
        off_runtime(|| self.inner.put_survey_shard(shard))
    }

    fn survey_shards(&self, run: Option<&str>) -> Result<Vec<SurveyShard>, StoreError> {
        off_runtime(|| self.inner.survey_shards(run))
    }

    fn mark_detection_notified(
        &mut self,
        key: &str,
        first_bucket_ns: i64,
        at: &str,
    ) -> Result<bool, StoreError> {
        off_runtime(|| self.inner.mark_detection_notified(key, first_bucket_ns, at))
    }
}

impl Inner {
    /// Writes one run ([`Store::save_run`]).
    fn save(&mut self, t: run::Run<'_>, files: &[IngestedFile]) -> Result<(), StoreError> {
        let url = self.url.clone();
        let db = |e| pg_error(&url, e);
        let write_err = |e| match e {
            WriteError::Db(e) => pg_error(&url, e),
            WriteError::Damaged(table, block, key) => StoreError::Block {
                path: url.clone(),
                table: table.name(),
                block,
                key,
            },
        };
        let bucket_ns = t.bucket_ns();
        let c = self.conn_mut()?;
        let mut tx = c.transaction().map_err(db)?;
        // The write lock first, then the duplicate check, then the writes:
        // a concurrent run of the same content waits here and then finds it.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PgStore::WRITE_LOCK])
            .map_err(db)?;
        let mut in_run: HashMap<&str, &str> = HashMap::new();
        for f in files {
            let previous = match in_run.insert(&f.content_hash, &f.path) {
                Some(earlier) => Some(earlier.to_string()),
                None => tx
                    .query_opt(
                        "SELECT path FROM files WHERE content_hash = $1",
                        &[&f.content_hash],
                    )
                    .map_err(db)?
                    .map(|r| r.get::<_, String>(0)),
            };
            if let Some(previous) = previous {
                // Dropping the transaction rolls it back: nothing stored.
                return Err(StoreError::Duplicate {
                    path: url.clone(),
                    file: f.path.clone(),
                    content_hash: f.content_hash.clone(),
                    previous,
                });
            }
        }
        tx.execute(
            "INSERT INTO settings (name, value) VALUES ('bucket_ns', $1) ON CONFLICT (name) DO NOTHING",
            &[&bucket_ns.to_string()],
        )
        .map_err(db)?;
        let stored: String = tx
            .query_one("SELECT value FROM settings WHERE name = 'bucket_ns'", &[])
            .map_err(db)?
            .get(0);
        if stored.parse::<i64>().ok() != Some(bucket_ns) {
            return Err(StoreError::BucketLength {
                path: url.clone(),
                stored_ns: stored.parse().unwrap_or(0),
                run_ns: bucket_ns,
            });
        }
        for f in files {
            // No ON CONFLICT: the unique content hash is the last guard.
            tx.execute(
                "INSERT INTO files (content_hash, path, frames, status, ingested_at, implausible_time)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &f.content_hash,
                    &f.path,
                    &(f.frames as i64),
                    &f.status,
                    &f.ingested_at,
                    &(f.implausible_time as i64),
                ],
            )
            .map_err(db)?;
            if let Some(l) = &f.capture_loss {
                tx.execute(
                    "INSERT INTO capture_loss (start_ns, interface, received, dropped, if_dropped)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (start_ns, interface) DO UPDATE SET
                       received = capture_loss.received + excluded.received,
                       dropped = capture_loss.dropped + excluded.dropped,
                       if_dropped = capture_loss.if_dropped + excluded.if_dropped",
                    &[
                        &l.bucket_start_ns,
                        &l.interface,
                        &(l.received as i64),
                        &(l.dropped as i64),
                        &(l.if_dropped as i64),
                    ],
                )
                .map_err(db)?;
            }
        }
        // Each month the run writes into has its partitions.
        let starts = t.starts();
        make_partitions(&mut tx, &starts).map_err(db)?;
        // A day this run adds to has a rollup no longer.
        let days: Vec<i64> = t.days().into_iter().collect();
        tx.execute("DELETE FROM rolled_days WHERE day = ANY($1)", &[&days])
            .map_err(db)?;
        tx.execute(
            "DELETE FROM day_source_blocks WHERE day = ANY($1)",
            &[&days],
        )
        .map_err(db)?;
        let mut fresh = FreshBlocks::default();
        // Each bucket, and the hours and days it rolls up into, as the run
        // closes them; a tier takes no period older than what retention
        // left it (it would be a fragment of a removed one).
        let kept = coverage_of(&mut tx).map_err(db)?.kept_from();
        let mut rollups = run::Rollups::of_run(t);
        let rolled = |_| StoreError::Block {
            path: url.clone(),
            table: "(the run's blocks)",
            block: -1,
            key: -1,
        };
        for b in t.buckets() {
            for (tier, p) in rollups.add(&b).map_err(rolled)? {
                if p.start >= kept[tier.index()] {
                    write_period(&mut tx, &mut fresh, tier, p).map_err(write_err)?;
                }
            }
            if b.start >= kept[Tier::Bucket.index()] {
                write_period(&mut tx, &mut fresh, Tier::Bucket, b).map_err(write_err)?;
            }
        }
        for (tier, p) in rollups.finish().map_err(rolled)? {
            if p.start >= kept[tier.index()] {
                write_period(&mut tx, &mut fresh, tier, p).map_err(write_err)?;
            }
        }
        fresh.flush(&mut tx).map_err(db)?;
        if let Some((day, port_sources, infected)) = t.day_blocks() {
            write_blocks(&mut tx, BlockTable::PortSources, day, port_sources).map_err(write_err)?;
            write_blocks(&mut tx, BlockTable::InfectedPorts, day, infected).map_err(write_err)?;
        }
        tx.commit().map_err(db)
    }
}
