//! The SQLite backend, embedded and the default.

use std::collections::HashMap;
use std::path::Path;

use iotscope_telescope::aggregate::SourceCounters;
use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::summary::Summary;
use iotscope_telescope::time::rfc3339;
use iotscope_telescope::{PortIndex, Telescope};
use iotscope_wire::Addr;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::blocks::{self, BlockTable, Blocks, PORT_BLOCKS};
use crate::report::{self, BucketRow, PortBucketRow, ReportBuilder, ReportQuery, SourceBucketRow};
use crate::run::{self, DAY_NS};
use crate::Tier;
use crate::{
    AlertRecord, BlocklistRecord, BucketPorts, CaptureLoss, CaptureTotals, DetectionRecord,
    FindingRecord, FingerprintPersistence, HoneypotSession, IngestedFile, MapQuery, MapSource,
    PortSeries, ServiceObservation, SessionRecord, Store, StoreError, SurveyShard, UserRecord,
};

/// Writes blocks inside a run's transaction, merging with stored ones.
struct BlockWriter<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    path: &'t str,
}

impl<'t> BlockWriter<'t> {
    fn new(tx: &'t rusqlite::Transaction<'t>, path: &'t str) -> Self {
        BlockWriter { tx, path }
    }

    fn db(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Database {
            path: self.path.to_string(),
            source,
        }
    }

    fn damaged(&self, table: BlockTable, block: i64, key: i64) -> StoreError {
        StoreError::Block {
            path: self.path.to_string(),
            table: table.name(),
            block,
            key,
        }
    }

    fn stored(
        &self,
        table: BlockTable,
        block: i64,
        key: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (name, col) = (table.name(), table.key());
        self.tx
            .prepare_cached(&format!(
                "SELECT data FROM {name} WHERE block = ?1 AND {col} = ?2"
            ))
            .map_err(|e| self.db(e))?
            .query_row(params![block, key], |r| r.get(0))
            .optional()
            .map_err(|e| self.db(e))
    }

    fn put(&self, table: BlockTable, block: i64, key: i64, data: &[u8]) -> Result<(), StoreError> {
        let (name, col) = (table.name(), table.key());
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO {name} (block, {col}, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (block, {col}) DO UPDATE SET data = excluded.data"
            ))
            .map_err(|e| self.db(e))?
            .execute(params![block, key, data])
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Writes `out`'s blocks of `table` (not ports: see [`Self::write_ports`])
    /// under `key`; with `merge`, a block already stored under the same key
    /// is merged with the new one first. For a merged bucket's sources,
    /// returns how many sources the merge added to the bucket (else None:
    /// the caller knows).
    fn write(
        &mut self,
        table: BlockTable,
        key: i64,
        merge: bool,
        out: Blocks,
    ) -> Result<Option<u64>, StoreError> {
        let mut records = (merge && matches!(table, BlockTable::Sources(_))).then_some(0u64);
        for (block, data) in out.into_blocks() {
            let old = if merge {
                self.stored(table, block, key)?
            } else {
                None
            };
            if let (Some(n), Some(old)) = (records.as_mut(), old.as_ref()) {
                let had =
                    blocks::count_sources(old).map_err(|_| self.damaged(table, block, key))?;
                *n = n.wrapping_sub(had);
            }
            let data = match old {
                None => data,
                Some(old) => table
                    .merge(key, &old, &data)
                    .map_err(|_| self.damaged(table, block, key))?,
            };
            if let Some(n) = records.as_mut() {
                // Merged minus stored: never below zero in all.
                let now =
                    blocks::count_sources(&data).map_err(|_| self.damaged(table, block, key))?;
                *n = n.wrapping_add(now);
            }
            self.put(table, block, key, &data)?;
        }
        Ok(records)
    }

    /// Writes a bucket's port blocks and their sketch blocks (parallel:
    /// the same blocks, the same ports in the same order), merged with the
    /// stored pair when `merge`.
    fn write_ports(
        &mut self,
        tier: Tier,
        start: i64,
        merge: bool,
        ports: Blocks,
        sketches: Blocks,
    ) -> Result<(), StoreError> {
        for ((block, p), (_, s)) in ports.into_blocks().zip(sketches.into_blocks()) {
            let old = if merge {
                match (
                    self.stored(BlockTable::Ports(tier), block, start)?,
                    self.stored(BlockTable::PortSketches(tier), block, start)?,
                ) {
                    (Some(op), Some(os)) => Some((op, os)),
                    (None, None) => None,
                    _ => return Err(self.damaged(BlockTable::PortSketches(tier), block, start)),
                }
            } else {
                None
            };
            let (p, s) = match old {
                None => (p, s),
                Some((op, os)) => blocks::merge_ports((&op, &os), (&p, &s))
                    .map_err(|_| self.damaged(BlockTable::Ports(tier), block, start))?,
            };
            self.put(BlockTable::Ports(tier), block, start, &p)?;
            self.put(BlockTable::PortSketches(tier), block, start, &s)?;
        }
        Ok(())
    }

    /// Writes one period of `tier` (a run's bucket, or a rollup of its
    /// buckets): its row and classes added to any stored, its blocks
    /// merged with those stored under the same start.
    fn write_period(&mut self, tier: Tier, b: run::BucketBlocks) -> Result<(), StoreError> {
        let (bt, ct) = (tier.buckets_table(), tier.classes_table());
        let start = b.start;
        let db = |e| self.db(e);
        // A period new to the store has no blocks to merge with.
        let known = self
            .tx
            .prepare_cached(&format!("SELECT 1 FROM {bt} WHERE start_ns = ?1"))
            .map_err(db)?
            .exists([start])
            .map_err(db)?;
        let (packets, bytes, outside, malformed) = b.totals;
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO {bt} (start_ns, packets, bytes, outside, malformed) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (start_ns) DO UPDATE SET packets = {bt}.packets + excluded.packets,
                   bytes = {bt}.bytes + excluded.bytes, outside = {bt}.outside + excluded.outside,
                   malformed = {bt}.malformed + excluded.malformed"
            ))
            .map_err(db)?
            .execute(params![start, packets, bytes, outside, malformed])
            .map_err(db)?;
        let mut class_stmt = self
            .tx
            .prepare_cached(&format!(
                "INSERT INTO {ct} (start_ns, class, packets) VALUES (?1, ?2, ?3)
                 ON CONFLICT (start_ns, class) DO UPDATE SET packets = {ct}.packets + excluded.packets"
            ))
            .map_err(db)?;
        for (class, n) in &b.classes {
            class_stmt.execute(params![start, class, n]).map_err(db)?;
        }
        drop(class_stmt);
        self.write_ports(tier, start, known, b.ports, b.sketches)?;
        let added = self.write(BlockTable::Sources(tier), start, known, b.sources)?;
        self.tx
            .prepare_cached(&format!(
                "UPDATE {bt} SET sources = sources + ?2 WHERE start_ns = ?1"
            ))
            .map_err(|e| self.db(e))?
            .execute(params![start, added.unwrap_or(b.n_sources) as i64])
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}

/// Every key of a block table (`hi` is excluded, and no key is `i64::MAX`).
const ALL_KEYS: (i64, i64) = (i64::MIN, i64::MAX);

/// Page cache of a connection while it writes a run, KiB.
const WRITE_CACHE_KIB: u32 = 128 * 1024;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Portable SQL: the same text serves PostgreSQL.
const MIGRATIONS: &[&str] = &[
    include_str!("../sql/001_telescope.sql"),
    include_str!("../sql/002_survey.sql"),
    include_str!("../sql/003_findings.sql"),
    include_str!("../sql/004_blocklist.sql"),
    include_str!("../sql/005_alerts.sql"),
    include_str!("../sql/006_web.sql"),
    include_str!("../sql/007_alerts_per_service.sql"),
    include_str!("../sql/008_implausible_time.sql"),
    include_str!("../sql/009_without_rowid.sql"),
    include_str!("../sql/010_blocks.sql"),
    include_str!("../sql/011_capture_loss.sql"),
    include_str!("../sql/012_files_path.sql"),
    include_str!("../sql/013_honeypot.sql"),
    include_str!("../sql/014_day_sources.sql"),
    include_str!("../sql/015_detections.sql"),
    include_str!("../sql/016_survey_shards.sql"),
    include_str!("../sql/017_rollups.sql"),
];

/// The migration (1-based) that creates the block tables; its data step
/// is [`move_rows_into_blocks`].
const BLOCKS_MIGRATION: usize = 10;

/// The migration (1-based) that adds the per-day source rollups; its data
/// step is [`roll_up_days`].
const DAY_ROLLUP_MIGRATION: usize = 14;

/// Migration 014's data step: each bucket's count of distinct sources,
/// from its rows (one source block at a time). The rollups themselves are
/// built when reports first read each day whole, not here: the migration
/// holds the store's write lock, and stays a read of the rows.
/// Errors: [`StoreError::Block`] for a stored block that does not decode;
/// nothing is changed then.
fn roll_up_days(tx: &rusqlite::Transaction<'_>, path: &str) -> Result<(), StoreError> {
    let db = |source| StoreError::Database {
        path: path.to_string(),
        source,
    };
    let mut per_bucket: HashMap<i64, i64> = HashMap::new();
    for block in 0..blocks::SOURCE_BLOCKS {
        let mut st = tx
            .prepare_cached("SELECT start_ns, data FROM bucket_source_blocks WHERE block = ?1")
            .map_err(db)?;
        let mut it = st.query(params![block]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            let start: i64 = r.get(0).map_err(db)?;
            let bad = || StoreError::Block {
                path: path.to_string(),
                table: "bucket_source_blocks",
                block,
                key: start,
            };
            let data = r.get_ref(1).map_err(db)?.as_blob().map_err(|_| bad())?;
            let n = blocks::count_sources(data).map_err(|_| bad())?;
            *per_bucket.entry(start).or_default() += n as i64;
        }
    }
    let mut st = tx
        .prepare("UPDATE buckets SET sources = ?2 WHERE start_ns = ?1")
        .map_err(db)?;
    for (start, n) in per_bucket {
        st.execute(params![start, n]).map_err(db)?;
    }
    Ok(())
}

/// Migration 010's data step: the rows of the per-port, per-source,
/// port-source and infected-port tables moved into blocks (the last two
/// under day 0: they kept no time; `source_ports` held exactly the ports of
/// sources with Mirai SYNs, which become the infected-port blocks), then
/// those tables dropped. Reads each table in key order and holds one
/// bucket's, port's or source's rows at a time. Errors:
/// [`StoreError::Block`] for a stored address or protocol that does not
/// parse; nothing is changed then (the migration's transaction is rolled
/// back).
fn move_rows_into_blocks(tx: &rusqlite::Transaction<'_>, path: &str) -> Result<(), StoreError> {
    let db = |source| StoreError::Database {
        path: path.to_string(),
        source,
    };
    let bad = |table: &'static str, key: i64| StoreError::Block {
        path: path.to_string(),
        table,
        block: -1,
        key,
    };
    let port_index = |proto: &str, port: i64| {
        u16::try_from(port)
            .ok()
            .and_then(|p| iotscope_telescope::parse_port(&format!("{p}/{proto}")))
    };
    let addr_of = |ip: &str, table: &'static str, key: i64| -> Result<Addr, StoreError> {
        Ok(ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| bad(table, key))?
            .into())
    };
    let mut w = BlockWriter::new(tx, path);
    {
        let mut st = tx
            .prepare(
                "SELECT start_ns, proto, port, packets, sources, estimated, sketch FROM bucket_ports
                 ORDER BY start_ns, proto, port",
            )
            .map_err(db)?;
        let mut it = st.query([]).map_err(db)?;
        let mut current: Option<(i64, Blocks, Blocks)> = None;
        while let Some(r) = it.next().map_err(db)? {
            let start: i64 = r.get(0).map_err(db)?;
            if current.as_ref().is_some_and(|c| c.0 != start) {
                let (s, ports, sketches) = current.take().expect("current bucket");
                w.write_ports(Tier::Bucket, s, false, ports, sketches)?;
            }
            let (_, ports, sketches) = current
                .get_or_insert_with(|| (start, Blocks::new(PORT_BLOCKS), Blocks::new(PORT_BLOCKS)));
            let proto: String = r.get(1).map_err(db)?;
            let port = port_index(&proto, r.get(2).map_err(db)?)
                .ok_or_else(|| bad("bucket_ports", start))?;
            let sketch = r
                .get_ref(6)
                .map_err(db)?
                .as_blob()
                .map_err(|_| bad("bucket_ports", start))?;
            let block = blocks::port_block(port);
            blocks::put_port(
                ports.of(block),
                &blocks::PortEntry {
                    port,
                    packets: r.get::<_, i64>(3).map_err(db)? as u64,
                    sources: r.get::<_, i64>(4).map_err(db)? as u64,
                    estimated: r.get(5).map_err(db)?,
                },
            );
            blocks::put_port_sketch(sketches.of(block), port, sketch);
        }
        if let Some((s, ports, sketches)) = current {
            w.write_ports(Tier::Bucket, s, false, ports, sketches)?;
        }
    }
    {
        let mut st = tx
            .prepare(
                "SELECT start_ns, ip, packets, bytes, first_ns, last_ns, class_mask, syn, mirai, zmap, masscan, backscatter
                 FROM bucket_sources ORDER BY start_ns",
            )
            .map_err(db)?;
        let mut it = st.query([]).map_err(db)?;
        let mut current: Option<(i64, Blocks)> = None;
        while let Some(r) = it.next().map_err(db)? {
            let start: i64 = r.get(0).map_err(db)?;
            if current.as_ref().is_some_and(|c| c.0 != start) {
                let (s, out) = current.take().expect("current bucket");
                w.write(BlockTable::Sources(Tier::Bucket), s, false, out)?;
            }
            let out = &mut current
                .get_or_insert_with(|| (start, Blocks::new(blocks::SOURCE_BLOCKS)))
                .1;
            let ip: String = r.get(1).map_err(db)?;
            let addr = addr_of(&ip, "bucket_sources", start)?;
            let g = |i| r.get::<_, i64>(i).map(|v| v as u64);
            let c = SourceCounters {
                packets: g(2).map_err(db)?,
                bytes: g(3).map_err(db)?,
                first_ts: r.get(4).map_err(db)?,
                last_ts: r.get(5).map_err(db)?,
                class_mask: g(6).map_err(db)? as u16,
                syn: g(7).map_err(db)?,
                mirai: g(8).map_err(db)?,
                zmap: g(9).map_err(db)?,
                masscan: g(10).map_err(db)?,
                backscatter: g(11).map_err(db)?,
            };
            blocks::put_source(out.of(blocks::source_block(addr)), start, addr, &c);
        }
        if let Some((s, out)) = current {
            w.write(BlockTable::Sources(Tier::Bucket), s, false, out)?;
        }
    }
    {
        let mut out = Blocks::new(PORT_BLOCKS);
        let mut st = tx
            .prepare("SELECT proto, port, ip FROM port_sources ORDER BY proto, port")
            .map_err(db)?;
        let mut it = st.query([]).map_err(db)?;
        let mut current: Option<(PortIndex, Vec<Addr>)> = None;
        while let Some(r) = it.next().map_err(db)? {
            let proto: String = r.get(0).map_err(db)?;
            let port =
                port_index(&proto, r.get(1).map_err(db)?).ok_or_else(|| bad("port_sources", 0))?;
            let ip: String = r.get(2).map_err(db)?;
            let addr = addr_of(&ip, "port_sources", 0)?;
            if current.as_ref().is_some_and(|c| c.0 != port) {
                let (p, mut addrs) = current.take().expect("current port");
                addrs.sort_unstable();
                blocks::put_port_sources(out.of(blocks::port_block(p)), p, &addrs);
            }
            current
                .get_or_insert_with(|| (port, Vec::new()))
                .1
                .push(addr);
        }
        if let Some((p, mut addrs)) = current {
            addrs.sort_unstable();
            blocks::put_port_sources(out.of(blocks::port_block(p)), p, &addrs);
        }
        w.write(BlockTable::PortSources, 0, false, out)?;
    }
    {
        let mut out = Blocks::new(blocks::SOURCE_BLOCKS);
        let mut st = tx
            .prepare("SELECT ip, proto, port FROM source_ports ORDER BY ip")
            .map_err(db)?;
        let mut it = st.query([]).map_err(db)?;
        let mut current: Option<(String, Vec<PortIndex>)> = None;
        let flush = |ip: &str, mut ports: Vec<PortIndex>, out: &mut Blocks| {
            let addr = addr_of(ip, "source_ports", 0)?;
            ports.sort_unstable();
            ports.dedup();
            blocks::put_source_ports(out.of(blocks::source_block(addr)), addr, &ports);
            Ok::<(), StoreError>(())
        };
        while let Some(r) = it.next().map_err(db)? {
            let ip: String = r.get(0).map_err(db)?;
            let proto: String = r.get(1).map_err(db)?;
            let port =
                port_index(&proto, r.get(2).map_err(db)?).ok_or_else(|| bad("source_ports", 0))?;
            if current.as_ref().is_some_and(|c| c.0 != ip) {
                let (i, ports) = current.take().expect("current source");
                flush(&i, ports, &mut out)?;
            }
            current.get_or_insert_with(|| (ip, Vec::new())).1.push(port);
        }
        if let Some((i, ports)) = current {
            flush(&i, ports, &mut out)?;
        }
        w.write(BlockTable::InfectedPorts, 0, false, out)?;
    }
    tx.execute_batch(
        "DROP TABLE bucket_ports; DROP TABLE bucket_sources; DROP TABLE port_sources; DROP TABLE source_ports;",
    )
    .map_err(db)
}

/// How long a connection waits for another process's write lock (a
/// concurrent ingest or migration) before giving up with "database is locked".
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Puts the database in WAL mode (a no-op when it is). Two connections
/// switching a new file at once can deadlock on the upgrade to an exclusive
/// lock, and SQLite then answers "database is locked" at once rather than
/// calling the busy handler; so the switch is retried until [`BUSY_TIMEOUT`].
fn wal_mode(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let mode = conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0));
        let switched = match mode {
            Ok(m) if m.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(_) => conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)),
            Err(e) => Err(e),
        };
        match switched {
            Ok(_) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The columns [`alert_row`] reads, in its order.
const ALERT_COLUMNS: &str = "ip, problem, port, service, severity, isp, device, evidence, advice, \
                             first_seen, last_seen, status";

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        ip: r.get(0)?,
        problem: r.get(1)?,
        // Port 0 is the key's "no port" (telescope alerts).
        port: r
            .get::<_, Option<i64>>(2)?
            .filter(|p| *p != 0)
            .map(|p| p as u16),
        service: r.get(3)?,
        severity: r.get(4)?,
        isp: r.get(5)?,
        device: r.get(6)?,
        evidence: r.get(7)?,
        advice: r.get(8)?,
        first_seen: r.get(9)?,
        last_seen: r.get(10)?,
        status: r.get(11)?,
    })
}

fn detection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DetectionRecord> {
    Ok(DetectionRecord {
        key: r.get(0)?,
        first_bucket_ns: r.get(1)?,
        last_bucket_ns: r.get(2)?,
        kind: r.get(3)?,
        severity: r.get(4)?,
        proto: r.get(5)?,
        ports: r.get(6)?,
        score: r.get(7)?,
        peak_score: r.get(8)?,
        body: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        notified_at: r.get(12)?,
    })
}

/// A store in one SQLite file.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    pub(crate) path: String,
    /// Read whole days from the day rollups (off only in tests, which
    /// compare with the buckets' own rows).
    rollups: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// Safe when several processes open the same (possibly new) file at
    /// once: each connection waits up to 30 s for another's write lock
    /// instead of failing, and migrations run under the write
    /// lock with `user_version` re-read inside it, so exactly one process
    /// applies each migration and the others find them applied.
    ///
    /// Errors: [`StoreError::Database`] when the file cannot be opened or
    /// migrated (or stays locked longer than the timeout),
    /// [`StoreError::SchemaTooNew`] when a newer iotscope wrote it.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let p = path.display().to_string();
        let db = |source| StoreError::Database {
            path: p.clone(),
            source,
        };
        // The store holds working device passwords, accounts and sessions:
        // a new one is readable by its owner only (SQLite gives its -wal and
        // -shm files the same mode).
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            if let Err(e) = created {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(StoreError::Database {
                        path: p.clone(),
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                            Some(format!("cannot create the store: {e}")),
                        ),
                    });
                }
            }
        }
        let mut conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        // Another SQLite database (a sensor's spool, another program's
        // file) is no store: refused before anything in it is changed. A
        // store has a schema version from its first transaction on.
        let (version, tables, app): (i64, i64, i32) = conn
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version),
                        (SELECT count(*) FROM sqlite_master),
                        (SELECT application_id FROM pragma_application_id)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(db)?;
        if version == 0 && tables > 0 {
            return Err(StoreError::NotAStore {
                path: p.clone(),
                what: if app == crate::Spool::APPLICATION_ID {
                    "an iotscope spool (forward it with `iotscope store forward --spool`)"
                } else {
                    "another program's SQLite database"
                },
            });
        }
        wal_mode(&conn).map_err(db)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(db)?;
        let too_new = |found: i64| StoreError::SchemaTooNew {
            path: p.clone(),
            found,
            known: MIGRATIONS.len() as i64,
        };
        let user_version = |c: &Connection| -> rusqlite::Result<i64> {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
        };
        let seen = user_version(&conn).map_err(db)?;
        if seen > MIGRATIONS.len() as i64 {
            return Err(too_new(seen));
        }
        if seen < MIGRATIONS.len() as i64 {
            // Take the write lock before deciding what to run: another
            // process may have migrated since `seen` was read.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let version = user_version(&tx).map_err(db)?;
            if version > MIGRATIONS.len() as i64 {
                return Err(too_new(version));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(sql).map_err(db)?;
                if i + 1 == BLOCKS_MIGRATION {
                    move_rows_into_blocks(&tx, &p)?;
                }
                if i + 1 == DAY_ROLLUP_MIGRATION {
                    roll_up_days(&tx, &p)?;
                }
                tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                    .map_err(db)?;
            }
            tx.commit().map_err(db)?;
        }
        Ok(SqliteStore {
            conn,
            path: p,
            rollups: true,
        })
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            source,
        }
    }
}

/// What `conn`'s store holds of each tier (see [`crate::Coverage`]).
fn coverage_of(conn: &rusqlite::Connection) -> rusqlite::Result<crate::Coverage> {
    let setting = |name: &str| -> rusqlite::Result<Option<i64>> {
        conn.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .map(|v| v.and_then(|s| s.parse().ok()))
    };
    let bucket_ns = setting("bucket_ns")?.unwrap_or(3_600_000_000_000);
    let mut kept_from = [i64::MIN; 3];
    for t in Tier::ALL {
        kept_from[t.index()] = setting(crate::tier::kept_from_key(t))?.unwrap_or(i64::MIN);
    }
    let mut earliest: Option<i64> = None;
    for t in Tier::ALL {
        let e: Option<i64> = conn.query_row(
            &format!("SELECT min(start_ns) FROM {}", t.buckets_table()),
            [],
            |r| r.get(0),
        )?;
        earliest = match (earliest, e) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(crate::Coverage::new(
        bucket_ns,
        kept_from,
        setting("rollups_from")?.unwrap_or(i64::MIN),
        earliest,
    ))
}

impl Store for SqliteStore {
    fn coverage(&self) -> Result<crate::Coverage, StoreError> {
        coverage_of(&self.conn).map_err(|e| self.err(e))
    }

    fn prune(
        &mut self,
        retention: &crate::Retention,
        now_ns: i64,
    ) -> Result<Vec<crate::Pruned>, StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let cov = coverage_of(&tx).map_err(db)?;
        let plan = retention
            .plan(&cov, now_ns)
            .map_err(|why| StoreError::Tier {
                path: path.clone(),
                why,
            })?;
        let mut out = Vec::new();
        for (t, before) in plan {
            let mut periods = 0;
            for (i, table) in t.tables().into_iter().enumerate() {
                let n = tx
                    .execute(
                        &format!("DELETE FROM {table} WHERE start_ns < ?1"),
                        [before],
                    )
                    .map_err(db)? as u64;
                if i == 0 {
                    periods = n;
                }
            }
            if t == Tier::Bucket {
                // The lazy per-day source rollups are built from buckets.
                let day = before.div_euclid(DAY_NS) + (before.rem_euclid(DAY_NS) != 0) as i64;
                tx.execute("DELETE FROM day_source_blocks WHERE day < ?1", [day])
                    .map_err(db)?;
                tx.execute("DELETE FROM rolled_days WHERE day < ?1", [day])
                    .map_err(db)?;
            }
            tx.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![crate::tier::kept_from_key(t), before.to_string()],
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
        self.conn
            .query_row(
                "SELECT value FROM settings WHERE name = 'bucket_ns'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|v| v.and_then(|s| s.parse().ok()))
            .map_err(|e| self.err(e))
    }

    fn find_file(&self, content_hash: &str) -> Result<Option<IngestedFile>, StoreError> {
        self.conn
            .query_row(
                "SELECT content_hash, path, frames, status, ingested_at, implausible_time FROM files WHERE content_hash = ?1",
                [content_hash],
                |r| {
                    Ok(IngestedFile {
                        content_hash: r.get(0)?,
                        path: r.get(1)?,
                        frames: r.get::<_, i64>(2)? as u64,
                        status: r.get(3)?,
                        ingested_at: r.get(4)?,
                        implausible_time: r.get::<_, i64>(5)? as u64,
                        capture_loss: None,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
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

    fn save_services(&mut self, rows: &[ServiceObservation]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO services (ip, port, proto, status, service, banner, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                     ON CONFLICT (ip, port, proto) DO UPDATE SET status = excluded.status,
                       service = excluded.service, banner = excluded.banner, last_seen = excluded.last_seen",
                )
                .map_err(db)?;
            for r in rows {
                st.execute(params![
                    r.ip, r.port, r.proto, r.status, r.service, r.banner, r.ts
                ])
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn services(&self) -> Result<Vec<ServiceObservation>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare("SELECT ip, port, proto, status, service, banner, last_seen FROM services ORDER BY ip, port")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(ServiceObservation {
                    ip: r.get(0)?,
                    port: r.get::<_, i64>(1)? as u16,
                    proto: r.get(2)?,
                    status: r.get(3)?,
                    service: r.get(4)?,
                    banner: r.get(5)?,
                    ts: r.get(6)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn save_findings(&mut self, rows: &[FindingRecord]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO findings (ip, port, service, kind, severity, device, evidence, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                     ON CONFLICT (ip, port, kind) DO UPDATE SET service = excluded.service,
                       severity = excluded.severity, device = excluded.device,
                       evidence = excluded.evidence, last_seen = excluded.last_seen",
                )
                .map_err(db)?;
            for r in rows {
                st.execute(params![
                    r.ip, r.port, r.service, r.kind, r.severity, r.device, r.evidence, r.ts
                ])
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn findings(&self) -> Result<Vec<FindingRecord>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare(
                "SELECT ip, port, service, kind, severity, device, evidence, last_seen, first_seen
                 FROM findings ORDER BY ip, port, kind",
            )
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(FindingRecord {
                    ip: r.get(0)?,
                    port: r.get::<_, i64>(1)? as u16,
                    service: r.get(2)?,
                    kind: r.get(3)?,
                    severity: r.get(4)?,
                    device: r.get(5)?,
                    evidence: r.get(6)?,
                    ts: r.get(7)?,
                    first_seen: r.get(8)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn findings_page(
        &self,
        after: Option<&(String, u16, String)>,
        limit: usize,
    ) -> Result<Vec<FindingRecord>, StoreError> {
        let db = |e| self.err(e);
        let (ip, port, kind) = after
            .cloned()
            .unwrap_or_else(|| (String::new(), 0, String::new()));
        let first = after.is_none();
        let mut st = self
            .conn
            .prepare(
                "SELECT ip, port, service, kind, severity, device, evidence, last_seen, first_seen
                 FROM findings WHERE ?1 OR (ip, port, kind) > (?2, ?3, ?4)
                 ORDER BY ip, port, kind LIMIT ?5",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![first, ip, port, kind, limit as i64], |r| {
                Ok(FindingRecord {
                    ip: r.get(0)?,
                    port: r.get::<_, i64>(1)? as u16,
                    service: r.get(2)?,
                    kind: r.get(3)?,
                    severity: r.get(4)?,
                    device: r.get(5)?,
                    evidence: r.get(6)?,
                    ts: r.get(7)?,
                    first_seen: r.get(8)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn save_blocklist(&mut self, rows: &[BlocklistRecord]) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let now = now_rfc3339();
        let tx = self.conn.transaction().map_err(db)?;
        let mut added = 0;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO blocklist (value, kind, port, malware, source, first_seen, imported)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (value) DO UPDATE SET imported = excluded.imported",
                )
                .map_err(db)?;
            let mut exists = tx
                .prepare("SELECT 1 FROM blocklist WHERE value = ?1")
                .map_err(db)?;
            for r in rows {
                if !exists.exists(params![r.value]).map_err(db)? {
                    added += 1;
                }
                st.execute(params![
                    r.value,
                    r.kind,
                    r.port,
                    r.malware,
                    r.source,
                    r.first_seen,
                    now
                ])
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(added)
    }

    fn blocklist(&self) -> Result<Vec<BlocklistRecord>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare("SELECT value, kind, port, malware, source, first_seen FROM blocklist ORDER BY value")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(BlocklistRecord {
                    value: r.get(0)?,
                    kind: r.get(1)?,
                    port: r.get::<_, Option<i64>>(2)?.map(|p| p as u16),
                    malware: r.get(3)?,
                    source: r.get(4)?,
                    first_seen: r.get(5)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn merge_alerts(&mut self, rows: &[AlertRecord]) -> Result<(usize, usize), StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let now = now_rfc3339();
        let tx = self.conn.transaction().map_err(db)?;
        let (mut created, mut updated) = (0, 0);
        {
            let mut get = tx
                .prepare("SELECT status, last_seen FROM alerts WHERE ip = ?1 AND port = ?2 AND problem = ?3")
                .map_err(db)?;
            let mut insert = tx
                .prepare(
                    "INSERT INTO alerts (ip, problem, port, service, severity, isp, device, evidence, advice,
                                         first_seen, last_seen, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'new')",
                )
                .map_err(db)?;
            let mut update = tx
                .prepare(
                    "UPDATE alerts SET service = ?4, severity = ?5, isp = ?6, device = ?7,
                       evidence = ?8, advice = ?9, first_seen = min(first_seen, ?10),
                       last_seen = max(last_seen, ?11), status = ?12
                     WHERE ip = ?1 AND problem = ?2 AND port = ?3",
                )
                .map_err(db)?;
            let mut history = tx
                .prepare("INSERT INTO alert_history (ip, port, problem, ts, status, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(db)?;
            for r in rows {
                // Port 0 is the key's "no port" (telescope alerts).
                let port = i64::from(r.port.unwrap_or(0));
                let known: Option<(String, String)> = get
                    .query_row(params![r.ip, port, r.problem], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
                    .map_err(db)?;
                match known {
                    None => {
                        insert
                            .execute(params![
                                r.ip,
                                r.problem,
                                port,
                                r.service,
                                r.severity,
                                r.isp,
                                r.device,
                                r.evidence,
                                r.advice,
                                r.first_seen,
                                r.last_seen
                            ])
                            .map_err(db)?;
                        history
                            .execute(params![
                                r.ip,
                                port,
                                r.problem,
                                now,
                                "new",
                                format!("first seen {}", r.first_seen)
                            ])
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
                        update
                            .execute(params![
                                r.ip,
                                r.problem,
                                port,
                                r.service,
                                r.severity,
                                r.isp,
                                r.device,
                                r.evidence,
                                r.advice,
                                r.first_seen,
                                r.last_seen,
                                status
                            ])
                            .map_err(db)?;
                        if again {
                            history
                                .execute(params![
                                    r.ip,
                                    port,
                                    r.problem,
                                    now,
                                    "persisting",
                                    format!("seen again {}", r.last_seen)
                                ])
                                .map_err(db)?;
                        }
                        updated += 1;
                    }
                }
            }
        }
        tx.commit().map_err(db)?;
        Ok((created, updated))
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts ORDER BY ip, problem, port"
            ))
            .map_err(db)?;
        let rows = st.query_map([], alert_row).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn set_alert_status(
        &mut self,
        ip: &str,
        port: Option<u16>,
        problem: &str,
        status: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        let n = tx
            .execute(
                "UPDATE alerts SET status = ?3 WHERE ip = ?1 AND problem = ?2 AND port = ?4",
                params![ip, problem, status, i64::from(port.unwrap_or(0))],
            )
            .map_err(db)?;
        if n > 0 {
            tx.execute(
                "INSERT INTO alert_history (ip, port, problem, ts, status, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![ip, i64::from(port.unwrap_or(0)), problem, now_rfc3339(), status, note],
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
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare("SELECT ts, status, note FROM alert_history WHERE ip = ?1 AND port = ?2 AND problem = ?3 ORDER BY rowid")
            .map_err(db)?;
        let rows = st
            .query_map(params![ip, i64::from(port.unwrap_or(0)), problem], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn alerts_for_ip(&self, ip: &str) -> Result<Vec<AlertRecord>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE ip = ?1 ORDER BY problem, port"
            ))
            .map_err(db)?;
        let rows = st.query_map(params![ip], alert_row).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn put_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO users (name, password_hash, role, isp, created) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
                 role = excluded.role, isp = excluded.isp",
                params![u.name, u.password_hash, u.role, u.isp, u.created],
            )
            .map_err(|e| self.err(e))?;
        // A new password ends every session of the old one.
        self.conn
            .execute("DELETE FROM sessions WHERE user_name = ?1", params![u.name])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare("SELECT name, password_hash, role, isp, created FROM users ORDER BY name")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(UserRecord {
                    name: r.get(0)?,
                    password_hash: r.get(1)?,
                    role: r.get(2)?,
                    isp: r.get(3)?,
                    created: r.get(4)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn delete_user(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM users WHERE name = ?1", params![name])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn put_session(&mut self, s: &SessionRecord, now_ns: i64) -> Result<(), StoreError> {
        // Expired sessions go when new ones come: the table stays small.
        self.conn
            .execute(
                "DELETE FROM sessions WHERE expires_ns <= ?1",
                params![now_ns],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "INSERT INTO sessions (token_hash, user_name, kind, csrf, created, expires_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.token_hash,
                    s.user,
                    s.kind,
                    s.csrf,
                    s.created,
                    s.expires_ns
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn session(
        &self,
        token_hash: &str,
        now_ns: i64,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT s.token_hash, s.user_name, s.kind, s.csrf, s.created, s.expires_ns,
                        u.password_hash, u.role, u.isp, u.created
                 FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.token_hash = ?1 AND s.expires_ns > ?2",
            )
            .map_err(db)?;
        let mut rows = st.query(params![token_hash, now_ns]).map_err(db)?;
        let Some(r) = rows.next().map_err(db)? else {
            return Ok(None);
        };
        let session = SessionRecord {
            token_hash: r.get(0).map_err(db)?,
            user: r.get(1).map_err(db)?,
            kind: r.get(2).map_err(db)?,
            csrf: r.get(3).map_err(db)?,
            created: r.get(4).map_err(db)?,
            expires_ns: r.get(5).map_err(db)?,
        };
        let user = UserRecord {
            name: session.user.clone(),
            password_hash: r.get(6).map_err(db)?,
            role: r.get(7).map_err(db)?,
            isp: r.get(8).map_err(db)?,
            created: r.get(9).map_err(db)?,
        };
        Ok(Some((session, user)))
    }

    fn delete_session(&mut self, token_hash: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                params![token_hash],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn save_honeypot_session(&mut self, h: &HoneypotSession) -> Result<bool, StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let new = tx
            .execute(
                "INSERT INTO honeypot_sessions (sensor, id, protocol, src_ip, src_port, dst_ip, dst_port,
                   start_ns, end_ns, username, password, input_sha256, reason, linked_session, linked_ip, truncated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (sensor, id) DO NOTHING",
                params![
                    h.sensor,
                    h.id,
                    h.protocol,
                    h.src_ip,
                    h.src_port,
                    h.dst_ip,
                    h.dst_port,
                    h.start_ns,
                    h.end_ns,
                    h.login.as_ref().map(|l| &l.0),
                    h.login.as_ref().map(|l| &l.1),
                    h.input_sha256,
                    h.reason,
                    h.linked.as_ref().map(|l| &l.0),
                    h.linked.as_ref().map(|l| &l.1),
                    h.truncated as i64,
                ],
            )
            .map_err(db)?
            == 1;
        if new {
            let mut st = tx
                .prepare("INSERT INTO honeypot_logins VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .map_err(db)?;
            for (i, (at, u, p, ok)) in h.logins.iter().enumerate() {
                st.execute(params![h.sensor, h.id, i as i64, at, u, p, *ok as i64])
                    .map_err(db)?;
            }
            let mut st = tx
                .prepare("INSERT INTO honeypot_commands VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(db)?;
            for (i, (at, input, known)) in h.commands.iter().enumerate() {
                st.execute(params![h.sensor, h.id, i as i64, at, input, *known as i64])
                    .map_err(db)?;
            }
            let mut st = tx
                .prepare("INSERT INTO honeypot_downloads VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .map_err(db)?;
            for (i, (kind, url, host, port)) in h.downloads.iter().enumerate() {
                st.execute(params![h.sensor, h.id, i as i64, kind, url, host, port])
                    .map_err(db)?;
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO honeypot_payloads VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(db)?;
            for (p, sha, size, dup) in &h.payloads {
                st.execute(params![h.sensor, h.id, p, sha, *size as i64, *dup as i64])
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
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare(
                "SELECT sensor, id, protocol, src_ip, src_port, dst_ip, dst_port, start_ns, end_ns,
                        username, password, input_sha256, reason, linked_session, linked_ip, truncated
                 FROM honeypot_sessions WHERE start_ns >= ?1 AND start_ns < ?2
                 ORDER BY start_ns, sensor, id LIMIT ?3",
            )
            .map_err(db)?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut out: Vec<HoneypotSession> = st
            .query_map(
                params![
                    since_ns.unwrap_or(i64::MIN),
                    until_ns.unwrap_or(i64::MAX),
                    limit
                ],
                |r| {
                    let user: Option<String> = r.get(9)?;
                    let pass: Option<String> = r.get(10)?;
                    let ls: Option<String> = r.get(13)?;
                    let li: Option<String> = r.get(14)?;
                    Ok(HoneypotSession {
                        sensor: r.get(0)?,
                        id: r.get(1)?,
                        protocol: r.get(2)?,
                        src_ip: r.get(3)?,
                        src_port: r.get(4)?,
                        dst_ip: r.get(5)?,
                        dst_port: r.get(6)?,
                        start_ns: r.get(7)?,
                        end_ns: r.get(8)?,
                        login: user.zip(pass),
                        input_sha256: r.get(11)?,
                        reason: r.get(12)?,
                        linked: ls.zip(li),
                        truncated: r.get::<_, i64>(15)? as u64,
                        ..Default::default()
                    })
                },
            )
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        for h in &mut out {
            let key = (h.sensor.as_str(), h.id.as_str());
            h.logins = self.session_rows(
                "SELECT at_ns, username, password, success FROM honeypot_logins
                 WHERE sensor = ?1 AND session = ?2 ORDER BY seq",
                key,
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0)),
            )?;
            h.commands = self.session_rows(
                "SELECT at_ns, input, known FROM honeypot_commands
                 WHERE sensor = ?1 AND session = ?2 ORDER BY seq",
                key,
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)),
            )?;
            h.downloads = self.session_rows(
                "SELECT kind, url, host, port FROM honeypot_downloads
                 WHERE sensor = ?1 AND session = ?2 ORDER BY seq",
                key,
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            h.payloads = self.session_rows(
                "SELECT path, sha256, size, duplicate FROM honeypot_payloads
                 WHERE sensor = ?1 AND session = ?2 ORDER BY path",
                key,
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, i64>(3)? != 0,
                    ))
                },
            )?;
        }
        Ok(out)
    }

    fn port_activity(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<BucketPorts>, StoreError> {
        let db = |e| self.err(e);
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        let mut out: Vec<BucketPorts> = Vec::new();
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT start_ns FROM buckets WHERE start_ns >= ?1 AND start_ns < ?2 ORDER BY start_ns")
                .map_err(db)?;
            let mut it = st.query(params![lo, hi]).map_err(db)?;
            while let Some(r) = it.next().map_err(db)? {
                out.push(BucketPorts {
                    start_ns: r.get(0).map_err(db)?,
                    ports: Vec::new(),
                });
            }
        }
        self.each_block(
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
            self.each_block(
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
                    path: self.path.clone(),
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
        for block in 0..blocks::SOURCE_BLOCKS {
            self.each_source(block, lo, hi, |start, a, c| f(start, a, &c))?;
        }
        Ok(())
    }

    fn merge_detections(
        &mut self,
        rows: &[DetectionRecord],
        cooldown_ns: i64,
    ) -> Result<Vec<(String, i64, bool)>, StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let now = now_rfc3339();
        let tx = self.conn.transaction().map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        {
            // Every episode of the key the row comes within the cool-down
            // of, oldest first: one is widened, several are bridged by the
            // row and become one.
            let mut near = tx
                .prepare(
                    "SELECT key, first_bucket_ns, last_bucket_ns, kind, severity, proto, ports, score,
                            peak_score, body, created_at, updated_at, notified_at
                     FROM detections
                     WHERE key = ?1 AND last_bucket_ns >= ?2 AND first_bucket_ns <= ?3
                     ORDER BY first_bucket_ns",
                )
                .map_err(db)?;
            let mut insert = tx
                .prepare(
                    "INSERT INTO detections (key, first_bucket_ns, last_bucket_ns, kind, severity, proto,
                       ports, score, peak_score, body, created_at, updated_at, notified_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?10, NULL)",
                )
                .map_err(db)?;
            let mut remove = tx
                .prepare("DELETE FROM detections WHERE key = ?1 AND first_bucket_ns = ?2")
                .map_err(db)?;
            let mut set = tx
                .prepare(
                    "UPDATE detections SET first_bucket_ns = ?3, last_bucket_ns = ?4, kind = ?5,
                       severity = ?6, proto = ?7, ports = ?8, score = ?9, peak_score = ?10,
                       body = ?11, updated_at = ?12, notified_at = ?13
                     WHERE key = ?1 AND first_bucket_ns = ?2",
                )
                .map_err(db)?;
            for r in rows {
                // Every episode of the key the row comes within the
                // cool-down of, oldest first: one is widened, several are
                // bridged by the row and become one.
                let lo = r.first_bucket_ns.saturating_sub(cooldown_ns);
                let hi = r.last_bucket_ns.saturating_add(cooldown_ns);
                let eps: Vec<DetectionRecord> = near
                    .query_map(params![r.key, lo, hi], detection_row)
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?;
                let Some(keep) = eps.first() else {
                    insert
                        .execute(params![
                            r.key,
                            r.first_bucket_ns,
                            r.last_bucket_ns,
                            r.kind,
                            r.severity,
                            r.proto,
                            r.ports,
                            r.score,
                            r.body,
                            now
                        ])
                        .map_err(db)?;
                    out.push((r.key.clone(), r.first_bucket_ns, true));
                    continue;
                };
                let m = crate::merge_episode(&eps, r);
                if m.changed {
                    for e in &eps[1..] {
                        remove
                            .execute(params![r.key, e.first_bucket_ns])
                            .map_err(db)?;
                    }
                    set.execute(params![
                        r.key,
                        keep.first_bucket_ns,
                        m.first,
                        m.last,
                        m.kind,
                        m.severity,
                        m.proto,
                        m.ports,
                        m.score,
                        m.peak,
                        m.body,
                        now,
                        m.notified
                    ])
                    .map_err(db)?;
                }
                out.push((r.key.clone(), m.first, false));
            }
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
        let db = |e| self.err(e);
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT key, first_bucket_ns, last_bucket_ns, kind, severity, proto, ports, score,
                        peak_score, body, created_at, updated_at, notified_at
                 FROM detections WHERE last_bucket_ns >= ?1 AND first_bucket_ns < ?2
                 ORDER BY first_bucket_ns DESC, key LIMIT ?3",
            )
            .map_err(db)?;
        let rows = st
            .query_map(
                params![lo, hi, limit.min(i64::MAX as usize) as i64],
                detection_row,
            )
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn mark_detection_notified(
        &mut self,
        key: &str,
        first_bucket_ns: i64,
        at: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE detections SET notified_at = ?3 WHERE key = ?1 AND first_bucket_ns = ?2",
                params![key, first_bucket_ns, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn map_sources(&self, q: &MapQuery) -> Result<Vec<MapSource>, StoreError> {
        let (lo, hi) = (
            q.since_ns.unwrap_or(i64::MIN),
            q.until_ns.unwrap_or(i64::MAX),
        );
        // Rollups of the period's whole days first; then one read
        // transaction: what is read is one state of the store.
        self.roll_days(lo, hi)?;
        let _read = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let rolled = self.rolled_segments(lo, hi)?;
        let wanted = q
            .port
            .as_ref()
            .and_then(|(proto, port)| iotscope_telescope::parse_port(&format!("{port}/{proto}")));
        if q.port.is_some() && wanted.is_none() {
            return Ok(Vec::new());
        }
        let busiest =
            |a: &MapSource, b: &MapSource| b.packets.cmp(&a.packets).then_with(|| a.ip.cmp(&b.ip));
        let mut rows: Vec<MapSource> = Vec::new();
        let mut by_addr: HashMap<Addr, SourceCounters> = HashMap::new();
        // The sources that ever sent to the port: one port block per day.
        let mut on_port: std::collections::HashSet<Addr> = Default::default();
        if let Some(want) = wanted {
            let b = blocks::port_block(want);
            let mut addrs = Vec::new();
            self.each_block(BlockTable::PortSources, (b, b), ALL_KEYS, |_, r| {
                while !r.done() {
                    if r.next_port_sources(&mut addrs)? == want {
                        on_port.extend(addrs.iter().copied());
                    }
                }
                Ok(())
            })?;
            if on_port.is_empty() {
                return Ok(Vec::new());
            }
        }
        for block in 0..blocks::SOURCE_BLOCKS {
            by_addr.clear();
            self.each_source_rolled(block, lo, hi, &rolled, |_, a, c| {
                if wanted.is_none() || on_port.contains(&a) {
                    by_addr.entry(a).or_default().add(&c);
                }
            })?;
            rows.extend(by_addr.drain().map(|(a, c)| MapSource {
                ip: a.to_string(),
                packets: c.packets,
                first_ns: c.first_ts,
                last_ns: c.last_ts,
                class_mask: c.class_mask,
                fingerprints: [c.mirai, c.zmap, c.masscan, c.backscatter],
                syn: c.syn,
            }));
            // Keep at most twice the rows asked for as blocks come.
            if q.limit > 0 && rows.len() >= q.limit.saturating_mul(2).max(1024) {
                rows.select_nth_unstable_by(q.limit - 1, busiest);
                rows.truncate(q.limit);
            }
        }
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
        let db = |e| self.err(e);
        let (lo, hi) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        let mut starts = Vec::new();
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT start_ns FROM {} WHERE start_ns >= ?1 AND start_ns < ?2 ORDER BY start_ns",
                tier.buckets_table()
            ))
            .map_err(db)?;
        let mut it = st.query(params![lo, hi]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            starts.push(r.get::<_, i64>(0).map_err(db)?);
        }
        let mut lines = Vec::new();
        for (proto, port) in ports {
            let mut packets = vec![0u64; starts.len()];
            let mut sources = vec![0u64; starts.len()];
            if let Some(want) = iotscope_telescope::parse_port(&format!("{port}/{proto}")) {
                let b = blocks::port_block(want);
                self.each_block(BlockTable::Ports(tier), (b, b), (lo, hi), |start, r| {
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
                })?;
            }
            lines.push((packets, sources));
        }
        Ok(PortSeries { starts, lines })
    }

    fn fingerprint_persistence(&self) -> Result<Vec<FingerprintPersistence>, StoreError> {
        let mut rows = Vec::new();
        let mut by_addr: HashMap<Addr, FingerprintPersistence> = HashMap::new();
        for block in 0..blocks::SOURCE_BLOCKS {
            self.each_source(block, i64::MIN, i64::MAX, |start, a, c| {
                if c.mirai == 0 {
                    return;
                }
                let e = by_addr.entry(a).or_insert_with(|| FingerprintPersistence {
                    ip: a.to_string(),
                    buckets: 0,
                    packets: 0,
                    first_bucket_ns: start,
                    last_bucket_ns: start,
                });
                e.buckets += 1;
                e.packets += c.mirai;
                e.first_bucket_ns = e.first_bucket_ns.min(start);
                e.last_bucket_ns = e.last_bucket_ns.max(start);
            })?;
            rows.extend(by_addr.drain().map(|(_, v)| v));
        }
        rows.sort_by(|a, b| a.ip.cmp(&b.ip));
        Ok(rows)
    }

    fn oldest_bucket_start(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT min(start_ns) FROM buckets", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn newest_bucket_end(&self) -> Result<Option<i64>, StoreError> {
        let last: Option<i64> = self
            .conn
            .query_row("SELECT max(start_ns) FROM buckets", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let bucket = self.bucket_ns()?.unwrap_or(3_600_000_000_000);
        Ok(last.map(|l| l + bucket))
    }

    fn version(&self) -> Result<String, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) || '/' || coalesce(max(ingested_at), '') FROM files",
                [],
                |r| r.get::<_, String>(0),
            )
            .map_err(|e| self.err(e))
    }

    fn capture_loss(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Vec<CaptureLoss>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT start_ns, interface, received, dropped, if_dropped FROM capture_loss
                 WHERE start_ns >= ?1 AND start_ns < ?2 ORDER BY start_ns, interface",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                params![since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX)],
                |r| {
                    Ok(CaptureLoss {
                        bucket_start_ns: r.get(0)?,
                        interface: r.get(1)?,
                        received: r.get::<_, i64>(2)? as u64,
                        dropped: r.get::<_, i64>(3)? as u64,
                        if_dropped: r.get::<_, i64>(4)? as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn capture_totals(&self) -> Result<Vec<CaptureTotals>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare(
                // CAST: PostgreSQL's SUM of BIGINT is NUMERIC.
                "SELECT interface, CAST(SUM(received) AS BIGINT), CAST(SUM(dropped) AS BIGINT),
                        CAST(SUM(if_dropped) AS BIGINT), MAX(start_ns)
                 FROM capture_loss GROUP BY interface ORDER BY interface",
            )
            .map_err(db)?;
        let mut out: Vec<CaptureTotals> = st
            .query_map([], |r| {
                Ok(CaptureTotals {
                    interface: r.get(0)?,
                    received: r.get::<_, i64>(1)? as u64,
                    dropped: r.get::<_, i64>(2)? as u64,
                    if_dropped: r.get::<_, i64>(3)? as u64,
                    last_bucket_start_ns: r.get(4)?,
                    ..Default::default()
                })
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        let mut st = self
            .conn
            .prepare(
                "SELECT CAST(COALESCE(SUM(frames), 0) AS BIGINT), COALESCE(MAX(ingested_at), '') FROM files WHERE path = ?1",
            )
            .map_err(db)?;
        for t in &mut out {
            let (frames, at): (i64, String) = st
                .query_row([format!("interface {}", t.interface)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db)?;
            t.frames = frames as u64;
            t.last_commit_at = at;
        }
        Ok(out)
    }

    fn put_survey_shard(&mut self, r: &SurveyShard) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO survey_shards (run, shard, shards, seed, host, pairs, sent, open, findings,
                   state, started, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (run, shard) DO UPDATE SET shards = excluded.shards, seed = excluded.seed,
                   host = excluded.host, pairs = excluded.pairs, sent = excluded.sent,
                   open = excluded.open, findings = excluded.findings, state = excluded.state,
                   updated = excluded.updated",
                params![
                    r.run,
                    r.shard,
                    r.shards,
                    r.seed as i64,
                    r.host,
                    r.pairs as i64,
                    r.sent as i64,
                    r.open as i64,
                    r.findings as i64,
                    r.state,
                    r.started,
                    r.updated
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn survey_shards(&self, run: Option<&str>) -> Result<Vec<SurveyShard>, StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare(
                "SELECT run, shard, shards, seed, host, pairs, sent, open, findings, state, started, updated
                 FROM survey_shards WHERE ?1 IS NULL OR run = ?1 ORDER BY run, shard",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![run], |r| {
                Ok(SurveyShard {
                    run: r.get(0)?,
                    shard: r.get(1)?,
                    shards: r.get(2)?,
                    seed: r.get::<_, i64>(3)? as u64,
                    host: r.get(4)?,
                    pairs: r.get::<_, i64>(5)? as u64,
                    sent: r.get::<_, i64>(6)? as u64,
                    open: r.get::<_, i64>(7)? as u64,
                    findings: r.get::<_, i64>(8)? as u64,
                    state: r.get(9)?,
                    started: r.get(10)?,
                    updated: r.get(11)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn report(&self, q: &ReportQuery) -> Result<Summary, StoreError> {
        let db = |e| self.err(e);
        let (lo, hi) = (
            q.since_ns.unwrap_or(i64::MIN),
            q.until_ns.unwrap_or(i64::MAX),
        );
        // Rollups of the period's whole days first; then one read
        // transaction: what is read is one state of the store.
        self.roll_days(lo, hi)?;
        let _read = self.conn.unchecked_transaction().map_err(db)?;
        let bucket_ns = self.bucket_ns()?.unwrap_or(3_600_000_000_000);
        let tier = self
            .coverage()?
            .choose(q.tier, q.since_ns, q.until_ns)
            .map_err(|why| StoreError::Tier {
                path: self.path.clone(),
                why,
            })?;
        let rolled = match tier {
            Tier::Bucket => self.rolled_segments(lo, hi)?,
            _ => Vec::new(),
        };
        let (bt, ct) = (tier.buckets_table(), tier.classes_table());
        let period_ns = tier.length_ns(bucket_ns);
        // Frames with an implausible time are in no bucket, so no period
        // holds them: the figure is the whole store's.
        let implausible_time: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(implausible_time), 0) FROM files",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        let mut report = ReportBuilder::new(q, period_ns, implausible_time as u64);
        let mut st = self
            .conn
            .prepare(&format!("SELECT start_ns, packets, bytes, outside, malformed, sources FROM {bt} WHERE start_ns >= ?1 AND start_ns < ?2 ORDER BY start_ns"))
            .map_err(db)?;
        let mut it = st.query(params![lo, hi]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            report.bucket(BucketRow {
                start_ns: r.get(0).map_err(db)?,
                packets: r.get::<_, i64>(1).map_err(db)? as u64,
                bytes: r.get::<_, i64>(2).map_err(db)? as u64,
                outside: r.get::<_, i64>(3).map_err(db)? as u64,
                malformed: r.get::<_, i64>(4).map_err(db)? as u64,
                sources: r.get::<_, i64>(5).map_err(db)? as u64,
                classes: Default::default(),
            });
        }
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT start_ns, class, packets FROM {ct} WHERE start_ns >= ?1 AND start_ns < ?2"
            ))
            .map_err(db)?;
        let mut it = st.query(params![lo, hi]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            let start: i64 = r.get(0).map_err(db)?;
            let class = r.get_ref(1).map_err(db)?.as_str().unwrap_or("");
            if let Some(c) = iotscope_wire::Class::from_name(class) {
                report.class(start, c, r.get::<_, i64>(2).map_err(db)? as u64);
            }
        }
        let all_ports = (0, PORT_BLOCKS - 1);
        self.each_block(BlockTable::Ports(tier), all_ports, (lo, hi), |start, r| {
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
        })?;
        // Sketches only where a port has more than one row to unite.
        self.each_block(
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
        // Block by block: a source is always in the same block, so its
        // sums are complete when its block ends.
        for block in 0..blocks::SOURCE_BLOCKS {
            if tier == Tier::Bucket {
                self.each_source_rolled(block, lo, hi, &rolled, |_, addr, counters| {
                    report.source(&SourceBucketRow { addr, counters })
                })?;
            } else {
                self.each_block(
                    BlockTable::Sources(tier),
                    (block, block),
                    (lo, hi),
                    |start, r| {
                        while !r.done() {
                            let (addr, counters) = r.next_source(start)?;
                            report.source(&SourceBucketRow { addr, counters });
                        }
                        Ok(())
                    },
                )?;
            }
            let mut ports = Vec::new();
            self.each_block(
                BlockTable::InfectedPorts,
                (block, block),
                ALL_KEYS,
                |_, r| {
                    while !r.done() {
                        let addr = r.next_source_ports(&mut ports)?;
                        for &p in ports.iter().take_while(|&&p| p < 1 << 16) {
                            report.infected_port(addr, p as u16);
                        }
                    }
                    Ok(())
                },
            )?;
            report.end_block();
        }
        let mut summary = report.finish();
        summary.tier = Some(tier.name().to_string());
        report::add_capture_loss(
            &mut summary,
            self.capture_loss(Some(lo), Some(hi))?,
            period_ns,
        );
        Ok(summary)
    }
}

impl SqliteStore {
    fn damaged(&self, table: &'static str, block: i64, key: i64) -> StoreError {
        StoreError::Block {
            path: self.path.clone(),
            table,
            block,
            key,
        }
    }

    /// Calls `f(key, address, counters)` for the sources of source block
    /// `block` in the buckets starting in `lo..hi`: the day rollups of the
    /// `rolled` day ranges (key: the day's start; see
    /// [`Self::rolled_segments`]), the buckets' own rows for the rest (key:
    /// the bucket start). A source comes once a day or once a bucket, so
    /// callers add its rows up; the sums are those of the buckets (a rollup
    /// is built from them, and dropped when a run adds to its day).
    fn each_source_rolled(
        &self,
        block: i64,
        lo: i64,
        hi: i64,
        rolled: &[(i64, i64)],
        mut f: impl FnMut(i64, Addr, SourceCounters),
    ) -> Result<(), StoreError> {
        let mut at = lo;
        for &(first, end) in rolled {
            let (day_lo, day_hi) = (first.saturating_mul(DAY_NS), end.saturating_mul(DAY_NS));
            self.each_source(block, at, day_lo, &mut f)?;
            self.each_block(
                BlockTable::DaySources,
                (block, block),
                (first, end),
                |day, r| {
                    let base = day.saturating_mul(DAY_NS);
                    while !r.done() {
                        let (a, c) = r.next_source(base)?;
                        f(base, a, c);
                    }
                    Ok(())
                },
            )?;
            at = day_hi;
        }
        self.each_source(block, at, hi, f)
    }

    /// The whole UTC days of `[lo, hi)` (as day numbers), if any.
    fn whole_days(lo: i64, hi: i64) -> Option<(i64, i64)> {
        let first = lo.div_euclid(DAY_NS) + (lo.rem_euclid(DAY_NS) != 0) as i64;
        let end = hi.div_euclid(DAY_NS);
        (first < end).then_some((first, end))
    }

    /// Builds the rollup of every day wholly inside `[lo, hi)` that has
    /// buckets and none yet, each in its own write transaction (a day is
    /// read once, block by block, as a report of it would read it). A day
    /// the store is too busy to write is left to its buckets (no error).
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Block`] for a
    /// damaged bucket block.
    fn roll_days(&self, lo: i64, hi: i64) -> Result<(), StoreError> {
        let Some((first, end)) = Self::whole_days(lo, hi).filter(|_| self.rollups) else {
            return Ok(());
        };
        let db = |e| self.err(e);
        // Not the newest day with data: a sensor is still adding to it (each
        // commit would drop its rollup again); it is read from its buckets.
        let newest: Option<i64> = self
            .conn
            .query_row("SELECT max(start_ns) FROM buckets", [], |r| r.get(0))
            .map_err(db)?;
        let Some(end) = newest.map(|n| end.min(n.div_euclid(DAY_NS))) else {
            return Ok(());
        };
        if first >= end {
            return Ok(());
        }
        let days = self.unrolled_days(first, end)?;
        // A rollup is an optimisation: a store busy with a writer, read-only
        // or out of space is read from its buckets now (no wait for the
        // write lock, no error), and the next report tries again.
        self.conn
            .busy_timeout(std::time::Duration::ZERO)
            .map_err(db)?;
        for day in days {
            if self.roll_day(day).is_err() {
                break;
            }
        }
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        Ok(())
    }

    /// The rows `sql` gives for one honeypot session, `(sensor, id)` as
    /// its parameters ?1 and ?2, each made by `f`.
    fn session_rows<T>(
        &self,
        sql: &str,
        (sensor, id): (&str, &str),
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let db = |e| self.err(e);
        self.conn
            .prepare_cached(sql)
            .map_err(db)?
            .query_map(params![sensor, id], f)
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// The days in `[first, end)` that have buckets and no rollup, in order.
    fn unrolled_days(&self, first: i64, end: i64) -> Result<Vec<i64>, StoreError> {
        let db = |e| self.err(e);
        let mut days: std::collections::BTreeSet<i64> = Default::default();
        // The days themselves, not every bucket start (a year of minutes is
        // half a million): SQLite's division truncates, so floor by hand.
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT CASE WHEN start_ns >= 0 THEN start_ns / ?3
                                      ELSE (start_ns + 1) / ?3 - 1 END
                 FROM buckets WHERE start_ns >= ?1 AND start_ns < ?2",
            )
            .map_err(db)?;
        let range = (first.saturating_mul(DAY_NS), end.saturating_mul(DAY_NS));
        let mut it = st.query(params![range.0, range.1, DAY_NS]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            days.insert(r.get::<_, i64>(0).map_err(db)?);
        }
        let mut st = self
            .conn
            .prepare_cached("SELECT day FROM rolled_days WHERE day >= ?1 AND day < ?2")
            .map_err(db)?;
        let mut it = st.query(params![first, end]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            days.remove(&r.get::<_, i64>(0).map_err(db)?);
        }
        Ok(days.into_iter().collect())
    }

    /// Builds one day's rollup from its buckets' rows, in a transaction
    /// that also marks the day rolled.
    fn roll_day(&self, day: i64) -> Result<(), StoreError> {
        let db = |e| self.err(e);
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(db)?;
        // Another reader may have built it while this one waited.
        let done = tx
            .query_row(
                "SELECT 1 FROM rolled_days WHERE day = ?1",
                [day],
                |_| Ok(()),
            )
            .optional()
            .map_err(db)?
            .is_some();
        if done {
            return Ok(());
        }
        let (lo, hi) = (day.saturating_mul(DAY_NS), (day + 1).saturating_mul(DAY_NS));
        let w = BlockWriter::new(&tx, &self.path);
        let mut sums: HashMap<Addr, SourceCounters> = HashMap::new();
        for block in 0..blocks::SOURCE_BLOCKS {
            self.each_source(block, lo, hi, |_, a, c| sums.entry(a).or_default().add(&c))?;
            if sums.is_empty() {
                continue;
            }
            let mut rows: Vec<_> = sums.drain().collect();
            rows.sort_unstable_by_key(|r| r.0);
            let mut data = blocks::new_block();
            for (a, c) in &rows {
                blocks::put_source(&mut data, lo, *a, c);
            }
            w.put(BlockTable::DaySources, block, day, &data)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO rolled_days (day) VALUES (?1)",
            [day],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// The runs of consecutive rolled days within `[lo, hi)`'s whole days,
    /// as day ranges `[first, end)`, in order.
    fn rolled_segments(&self, lo: i64, hi: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let Some((first, end)) = Self::whole_days(lo, hi).filter(|_| self.rollups) else {
            return Ok(Vec::new());
        };
        // Days with no bucket need no reading either way: they join any run.
        let plain = self.unrolled_days(first, end)?;
        // `plain`: days with buckets and no rollup; the rest is rolled.
        let mut out = Vec::new();
        let mut at = first;
        for d in plain {
            if d > at {
                out.push((at, d));
            }
            at = d + 1;
        }
        if at < end {
            out.push((at, end));
        }
        Ok(out)
    }

    /// Calls `f(bucket start, address, counters)` for every source record
    /// of source block `block` in the buckets starting in `lo..hi`.
    fn each_source(
        &self,
        block: i64,
        lo: i64,
        hi: i64,
        mut f: impl FnMut(i64, Addr, SourceCounters),
    ) -> Result<(), StoreError> {
        let db = |e| self.err(e);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT start_ns, data FROM bucket_source_blocks
                 WHERE block = ?1 AND start_ns >= ?2 AND start_ns < ?3",
            )
            .map_err(db)?;
        let mut it = st.query(params![block, lo, hi]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            let start: i64 = r.get(0).map_err(db)?;
            let bad = || self.damaged("bucket_source_blocks", block, start);
            let data = r.get_ref(1).map_err(db)?.as_blob().map_err(|_| bad())?;
            let mut rd = blocks::Reader::new(data).map_err(|_| bad())?;
            while !rd.done() {
                let (a, c) = rd.next_source(start).map_err(|_| bad())?;
                f(start, a, c);
            }
        }
        Ok(())
    }

    /// Calls `f(key, reader)` for every stored block of `table` whose block
    /// number is in `blocks` (inclusive) and whose key (bucket start or
    /// day) is in `keys` (end excluded); `f` reads the records. A block
    /// that does not decode is [`StoreError::Block`].
    fn each_block(
        &self,
        table: BlockTable,
        (first, last): (i64, i64),
        (lo, hi): (i64, i64),
        mut f: impl FnMut(i64, &mut blocks::Reader<'_>) -> Result<(), blocks::Damaged>,
    ) -> Result<(), StoreError> {
        let db = |e| self.err(e);
        let (name, col) = (table.name(), table.key());
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT block, {col}, data FROM {name}
                 WHERE block >= ?1 AND block <= ?2 AND {col} >= ?3 AND {col} < ?4"
            ))
            .map_err(db)?;
        let mut it = st.query(params![first, last, lo, hi]).map_err(db)?;
        while let Some(r) = it.next().map_err(db)? {
            let block: i64 = r.get(0).map_err(db)?;
            let key: i64 = r.get(1).map_err(db)?;
            let bad = || self.damaged(table.name(), block, key);
            let data = r.get_ref(2).map_err(db)?.as_blob().map_err(|_| bad())?;
            let mut rd = blocks::Reader::new(data).map_err(|_| bad())?;
            f(key, &mut rd).map_err(|_| bad())?;
        }
        Ok(())
    }
}

/// Now, for `ingested_at`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339((now.as_secs() as i64) * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(ip: &str, port: Option<u16>, problem: &str) -> AlertRecord {
        AlertRecord {
            ip: ip.into(),
            problem: problem.into(),
            port,
            service: port.map(|_| "telnet".into()),
            severity: "high".into(),
            isp: None,
            device: None,
            evidence: "{}".into(),
            advice: "change it".into(),
            first_seen: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:00:00Z".into(),
            status: String::new(),
        }
    }

    /// Issue 18: a honeypot session comes back whole, and one sent again
    /// is stored once.
    fn detection(key: &str, bucket_h: i64, severity: &str, score: f64) -> DetectionRecord {
        const H: i64 = 3_600_000_000_000;
        DetectionRecord {
            key: key.into(),
            first_bucket_ns: bucket_h * H,
            last_bucket_ns: bucket_h * H,
            kind: "scan_campaign".into(),
            severity: severity.into(),
            proto: "tcp".into(),
            ports: "23".into(),
            score,
            peak_score: score,
            body: format!("{{\"bucket\":{bucket_h}}}"),
            created_at: String::new(),
            updated_at: String::new(),
            notified_at: None,
        }
    }

    #[test]
    fn detections_merge_into_episodes_within_the_cooldown() {
        const H: i64 = 3_600_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut st = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let rows = [
            detection("campaign:tcp/23", 10, "high", 9.0),
            detection("campaign:tcp/23", 11, "medium", 20.0),
            detection("campaign:tcp/23", 15, "medium", 7.0),
            // Past the 6-hour cool-down of bucket 15: a new episode.
            detection("campaign:tcp/23", 22, "medium", 8.0),
            detection("backscatter", 11, "medium", 5.0),
        ];
        let out = st.merge_detections(&rows, 6 * H).unwrap();
        let created: Vec<bool> = out.iter().map(|o| o.2).collect();
        assert_eq!(created, [true, false, false, true, true]);
        let eps = st.detections(None, None, 100).unwrap();
        assert_eq!(eps.len(), 3);
        let first = eps.iter().find(|e| e.first_bucket_ns == 10 * H).unwrap();
        assert_eq!(first.last_bucket_ns, 15 * H);
        assert_eq!(first.severity, "high", "the higher severity stays");
        assert_eq!(first.peak_score, 20.0);
        assert_eq!(first.score, 7.0, "the newest bucket's figures");
        assert_eq!(first.body, "{\"bucket\":15}");
        // A replay of the same rows changes nothing.
        let again = st.merge_detections(&rows, 6 * H).unwrap();
        assert!(again.iter().all(|o| !o.2));
        assert_eq!(st.detections(None, None, 100).unwrap(), eps);
        // An older bucket within the cool-down widens the episode backwards.
        st.merge_detections(&[detection("campaign:tcp/23", 8, "low", 1.0)], 6 * H)
            .unwrap();
        let eps = st.detections(None, None, 100).unwrap();
        assert!(eps
            .iter()
            .any(|e| e.first_bucket_ns == 8 * H && e.last_bucket_ns == 15 * H));
        assert!(st
            .mark_detection_notified("campaign:tcp/23", 8 * H, "now")
            .unwrap());
        assert!(!st
            .mark_detection_notified("campaign:tcp/23", 9 * H, "now")
            .unwrap());
        // The period filter: episodes overlapping [16 h, 21 h) are none of these.
        assert!(st
            .detections(Some(16 * H), Some(21 * H), 100)
            .unwrap()
            .is_empty());
        // A bucket within the cool-down of two episodes bridges them into one
        // (replays and late buckets never leave overlapping episodes), which
        // stays delivered...
        let out = st
            .merge_detections(&[detection("campaign:tcp/23", 18, "high", 2.0)], 6 * H)
            .unwrap();
        assert_eq!(out, [("campaign:tcp/23".to_string(), 8 * H, false)]);
        let eps = st.detections(None, None, 100).unwrap();
        let tcp: Vec<_> = eps.iter().filter(|e| e.key == "campaign:tcp/23").collect();
        assert_eq!(tcp.len(), 1, "{eps:#?}");
        assert_eq!(
            (tcp[0].first_bucket_ns, tcp[0].last_bucket_ns),
            (8 * H, 22 * H)
        );
        assert_eq!(tcp[0].notified_at.as_deref(), Some("now"));
        // ...until its severity rises: the escalation is delivered again.
        st.merge_detections(&[detection("campaign:tcp/23", 23, "critical", 3.0)], 6 * H)
            .unwrap();
        let e = st.detections(None, None, 100).unwrap();
        let e = e.iter().find(|e| e.key == "campaign:tcp/23").unwrap();
        assert_eq!(
            (e.severity.as_str(), e.notified_at.as_deref()),
            ("critical", None)
        );
    }

    #[test]
    fn honeypot_sessions_round_trip_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let h = HoneypotSession {
            sensor: "hp1".into(),
            id: "0123456789ab".into(),
            protocol: "telnet".into(),
            src_ip: "198.51.100.2".into(),
            src_port: 40000,
            dst_ip: "127.0.0.1".into(),
            dst_port: 2323,
            start_ns: 5,
            end_ns: 9,
            login: Some(("root".into(), "xc3511".into())),
            logins: vec![(6, "root".into(), "xc3511".into(), true)],
            commands: vec![(7, "/bin/busybox MIRAI".into(), false)],
            downloads: vec![(
                "wget".into(),
                "http://h.example/x".into(),
                Some("h.example".into()),
                Some(80),
            )],
            payloads: vec![("/tmp/x".into(), "ab".repeat(32), 100, false)],
            input_sha256: "cd".repeat(32),
            reason: "exit".into(),
            linked: Some(("ba9876543210".into(), "198.51.100.1".into())),
            truncated: 0,
        };
        assert!(st.save_honeypot_session(&h).unwrap());
        let mut again = h.clone();
        again.commands.push((8, "more".into(), true));
        assert!(!st.save_honeypot_session(&again).unwrap());
        assert_eq!(
            st.honeypot_sessions(None, None, 10).unwrap(),
            vec![h.clone()]
        );
        assert!(st.honeypot_sessions(Some(6), None, 10).unwrap().is_empty());
    }

    /// Issue 14: the store holds working passwords; a new one is 0600.
    #[cfg(unix)]
    #[test]
    fn a_new_store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        SqliteStore::open(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    /// Issue 13: alerts are keyed by (address, port, problem); a store
    /// made when they were keyed by (address, problem) keeps its alerts
    /// and their histories, each with the port it had.
    #[test]
    fn alerts_are_per_service_and_old_stores_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS.iter().take(6).enumerate() {
                c.execute_batch(sql).unwrap();
                c.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                    .unwrap();
            }
            c.execute_batch(
                "INSERT INTO alerts VALUES ('198.51.100.7', 'default_credential', 80, 'http', 'critical',
                   NULL, NULL, '{}', 'a', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', 'notified');
                 INSERT INTO alerts VALUES ('198.51.100.7', 'infected_mirai', NULL, NULL, 'high',
                   NULL, NULL, '{}', 'a', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', 'new');
                 INSERT INTO alert_history VALUES ('198.51.100.7', 'default_credential', 't1', 'new', 'first');
                 INSERT INTO alert_history VALUES ('198.51.100.7', 'default_credential', 't2', 'notified', 'sent');",
            )
            .unwrap();
        }
        let mut s = SqliteStore::open(&path).unwrap();
        let all = s.alerts().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].port, all[0].status.as_str()),
            (Some(80), "notified")
        );
        assert_eq!(all[1].port, None);
        let h = s
            .alert_history("198.51.100.7", Some(80), "default_credential")
            .unwrap();
        assert_eq!(h.len(), 2);
        // The port the old key hid gets its own alert; the old one stays.
        let (created, updated) = s
            .merge_alerts(&[
                alert("198.51.100.7", Some(23), "default_credential"),
                alert("198.51.100.7", Some(80), "default_credential"),
                alert("198.51.100.7", None, "infected_mirai"),
            ])
            .unwrap();
        assert_eq!((created, updated), (1, 2));
        assert!(s
            .set_alert_status(
                "198.51.100.7",
                Some(23),
                "default_credential",
                "fixed",
                "gone"
            )
            .unwrap());
        let by_port: Vec<(Option<u16>, String)> = s
            .alerts_for_ip("198.51.100.7")
            .unwrap()
            .into_iter()
            .filter(|a| a.problem == "default_credential")
            .map(|a| (a.port, a.status))
            .collect();
        assert_eq!(
            by_port,
            [(Some(23), "fixed".into()), (Some(80), "notified".into())]
        );
        assert!(!s
            .set_alert_status(
                "198.51.100.7",
                Some(2323),
                "default_credential",
                "fixed",
                "x"
            )
            .unwrap());
    }

    fn obs(ts: &str, status: &str) -> ServiceObservation {
        ServiceObservation {
            ip: "127.77.0.5".into(),
            port: 23,
            proto: "tcp".into(),
            ts: ts.into(),
            status: status.into(),
            service: Some("telnet".into()),
            banner: Some("{}".into()),
        }
    }

    #[test]
    fn a_later_observation_replaces_the_earlier_and_keeps_first_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = SqliteStore::open(&path).unwrap();
        s.save_services(&[obs("2026-01-01T00:00:00Z", "open")])
            .unwrap();
        s.save_services(&[obs("2026-02-01T00:00:00Z", "protocol-error")])
            .unwrap();
        let all = s.services().unwrap();
        assert_eq!(all, vec![obs("2026-02-01T00:00:00Z", "protocol-error")]);
        let first: String = s
            .conn
            .query_row("SELECT first_seen FROM services", [], |r| r.get(0))
            .unwrap();
        assert_eq!(first, "2026-01-01T00:00:00Z");
        // Reopening runs no migration twice.
        drop(s);
        assert_eq!(
            SqliteStore::open(&path).unwrap().services().unwrap().len(),
            1
        );
    }

    #[test]
    fn findings_keep_the_password_and_first_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        let f = |ts: &str, ev: &str| FindingRecord {
            ip: "127.0.0.9".into(),
            port: 23,
            service: "telnet".into(),
            kind: "default_credential".into(),
            severity: "high".into(),
            device: None,
            evidence: ev.into(),
            ts: ts.into(),
            first_seen: String::new(),
        };
        s.save_findings(&[f("2026-01-01T00:00:00Z", r#"{"password":"xc3511"}"#)])
            .unwrap();
        s.save_findings(&[f("2026-02-01T00:00:00Z", r#"{"password":"vizxv"}"#)])
            .unwrap();
        let all = s.findings().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].evidence, r#"{"password":"vizxv"}"#);
        assert_eq!(all[0].first_seen, "2026-01-01T00:00:00Z");
        assert_eq!(all[0].ts, "2026-02-01T00:00:00Z");
    }

    #[test]
    fn sessions_die_with_their_expiry_their_account_or_a_new_password() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let user = |name: &str, hash: &str| UserRecord {
            name: name.into(),
            password_hash: hash.into(),
            role: "isp".into(),
            isp: Some("ISP A".into()),
            created: "2026-11-26T00:00:00Z".into(),
        };
        let session = |hash: &str, user: &str, expires_ns: i64| SessionRecord {
            token_hash: hash.into(),
            user: user.into(),
            kind: "session".into(),
            csrf: "c".into(),
            created: "2026-11-26T00:00:00Z".into(),
            expires_ns,
        };
        let far = i64::MAX / 2;
        st.put_user(&user("a", "h1")).unwrap();
        st.put_user(&user("b", "h2")).unwrap();
        st.put_session(&session("old", "a", 1), 0).unwrap();
        st.put_session(&session("t1", "a", far), 0).unwrap();
        st.put_session(&session("t2", "b", far), 0).unwrap();
        let (s, u) = st.session("t1", 10).unwrap().unwrap();
        assert_eq!((s.user.as_str(), u.isp.as_deref()), ("a", Some("ISP A")));
        assert!(st.session("old", 10).unwrap().is_none(), "expired");
        // Made at time 5, a session sweeps those expired by then.
        st.put_session(&session("t3", "a", far), 5).unwrap();
        assert!(st.session("old", 0).unwrap().is_none(), "swept");
        assert!(st.session("nope", 10).unwrap().is_none());
        // A new password ends the account's sessions, not others'.
        st.put_user(&user("a", "h3")).unwrap();
        assert!(st.session("t1", 10).unwrap().is_none());
        assert!(st.session("t2", 10).unwrap().is_some());
        // Removing an account removes its sessions.
        assert!(st.delete_user("b").unwrap());
        assert!(st.session("t2", 10).unwrap().is_none());
        assert!(!st.delete_user("b").unwrap());
        assert_eq!(st.users().unwrap().len(), 1);
    }
}

/// Ingest and store creation under concurrency: several processes (here
/// threads, each with its own connection) on one file.
#[cfg(test)]
mod concurrency {
    use std::sync::{Arc, Barrier};

    use iotscope_telescope::TelescopeConfig;
    use iotscope_wire::{LinkType, ALL_CLASSES};

    use super::*;

    use crate::test_frames::syn;

    /// One run's aggregates: `packets` SYNs over three hours, as the
    /// command builds them for a store.
    fn run(packets: u32) -> Telescope {
        let mut t = Telescope::new(TelescopeConfig {
            darknets: Vec::new(),
            bucket_ns: 3_600_000_000_000,
            detail: true,
            ..Default::default()
        });
        for i in 0..packets {
            let ts = 1_475_280_000_000_000_000 + i as i64 * 1_000_000_000;
            t.ingest(
                ts,
                LinkType::RawIp,
                &syn((i % 50) as u8, 23 + (i % 3) as u16),
            );
        }
        t.flush();
        t.finish();
        t
    }

    fn file(hash: &str, path: &str) -> IngestedFile {
        IngestedFile {
            content_hash: hash.into(),
            path: path.into(),
            frames: 1,
            status: "complete".into(),
            ingested_at: now_rfc3339(),
            implausible_time: 0,
            capture_loss: None,
        }
    }

    #[test]
    fn a_run_of_another_bucket_length_is_refused_inside_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("b.db")).unwrap();
        s.save_run(&run(10), &[file("h1", "a.pcap")]).unwrap();
        let mut minute = Telescope::new(TelescopeConfig {
            bucket_ns: 60_000_000_000,
            detail: true,
            ..Default::default()
        });
        minute.finish();
        let err = s.save_run(&minute, &[file("h2", "b.pcap")]).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::BucketLength {
                    stored_ns: 3_600_000_000_000,
                    run_ns: 60_000_000_000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(stored_files(&s), 1, "nothing of the refused run is stored");
    }

    fn stored_packets(s: &SqliteStore) -> u64 {
        s.report(&ReportQuery::default()).unwrap().packets
    }

    fn stored_files(s: &SqliteStore) -> i64 {
        s.conn
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .unwrap()
    }

    /// A raw IPv4 TCP SYN from `src` to 198.18.0.1:`dport` with sequence
    /// number `seq` (198.18.0.1 itself is Mirai's fingerprint).
    fn syn_v4(src: u32, dport: u16, seq: u32) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src.to_be_bytes());
        p.extend_from_slice(&[198, 18, 0, 1, 0x9c, 0x40]);
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x02, 4, 0, 0, 0, 0, 0]);
        p
    }

    /// Frames from sources over the whole IPv4 space (every source block),
    /// a third of them Mirai-like, to many ports, over five hours.
    fn spread_events(n: u32) -> Vec<(i64, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let src = (i % 700).wrapping_mul(0x9e37_79b9) | 1;
                let seq = if src % 3 == 0 { 0xc612_0001 } else { i };
                let port = [23, 2323, 80, 8080, 5555][(i % 5) as usize] + (src % 40) as u16;
                let ts = 1_475_280_000_000_000_000 + i as i64 * 900_000_000;
                (ts, syn_v4(src, port, seq))
            })
            .collect()
    }

    fn telescope_of<'a>(events: impl Iterator<Item = &'a (i64, Vec<u8>)>) -> Telescope {
        let mut t = Telescope::new(TelescopeConfig {
            bucket_ns: 3_600_000_000_000,
            detail: true,
            ..Default::default()
        });
        for (ts, f) in events {
            t.ingest(*ts, LinkType::RawIp, f);
        }
        t.finish();
        t
    }

    /// What a store's report and the run's own summary must share.
    fn assert_same_report(stored: &Summary, ran: &Summary) {
        assert_eq!(stored.sources, ran.sources);
        assert_eq!(stored.classes, ran.classes);
        assert_eq!(stored.fingerprints, ran.fingerprints);
        assert_eq!(stored.infected, ran.infected);
        assert_eq!(stored.top_sources, ran.top_sources);
        assert_eq!(stored.ports, ran.ports);
        assert_eq!(stored.series, ran.series);
        assert_eq!(
            (&stored.first_ts, &stored.last_ts),
            (&ran.first_ts, &ran.last_ts)
        );
    }

    /// Two runs of interleaved frames land in the same buckets and blocks:
    /// the store merges them into what one run over all frames gives.
    #[test]
    fn two_runs_into_the_same_buckets_report_as_one_run() {
        let events = spread_events(9000);
        let whole = telescope_of(events.iter());
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        s.save_run(
            &telescope_of(events.iter().step_by(2)),
            &[file("a", "a.pcap")],
        )
        .unwrap();
        s.save_run(
            &telescope_of(events.iter().skip(1).step_by(2)),
            &[file("b", "b.pcap")],
        )
        .unwrap();
        for top in [5, 100_000] {
            let stored = s
                .report(&ReportQuery {
                    top,
                    ..Default::default()
                })
                .unwrap();
            assert!(!whole.summary(top).infected.is_empty());
            assert_same_report(&stored, &whole.summary(top));
        }
        // The map: busiest first, and its port filter.
        let map = s
            .map_sources(&MapQuery {
                limit: 3,
                ..Default::default()
            })
            .unwrap();
        let top3 = whole.summary(3).top_sources;
        assert_eq!(
            map.iter().map(|m| (&m.ip, m.packets)).collect::<Vec<_>>(),
            top3.iter().map(|t| (&t.ip, t.packets)).collect::<Vec<_>>()
        );
        let busiest = whole.summary(0).ports[0].clone();
        let on_port = s
            .map_sources(&MapQuery {
                limit: usize::MAX,
                port: Some((busiest.proto.to_string(), busiest.port)),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(on_port.len() as u64, busiest.sources);
        // Mirai persistence: every infected host, in address text order.
        let persist = s.fingerprint_persistence().unwrap();
        let mut ips: Vec<&str> = persist.iter().map(|p| p.ip.as_str()).collect();
        assert!(ips.windows(2).all(|w| w[0] < w[1]));
        ips.sort_unstable();
        assert!(ips.len() >= whole.summary(0).infected.len());
        // A series of one port across the buckets.
        let series = s
            .port_series(
                None,
                None,
                &[
                    (busiest.proto.to_string(), busiest.port),
                    ("udp".into(), 53),
                ],
            )
            .unwrap();
        let ran = whole.summary(100_000);
        for (i, b) in ran.series.iter().enumerate() {
            let p23 = b
                .ports
                .iter()
                .find(|p| p.port == busiest.port && p.proto == busiest.proto);
            assert_eq!(series.lines[0].0[i], p23.map_or(0, |p| p.packets));
            assert_eq!(series.lines[0].1[i], p23.map_or(0, |p| p.sources));
            assert_eq!(series.lines[1].0[i], 0);
        }
    }

    /// A store written before blocks (migration 009) is moved into blocks
    /// when opened, and reports what it reported before.
    #[test]
    fn a_store_of_rows_migrates_into_blocks_and_reports_the_same() {
        let events = spread_events(5000);
        let t = telescope_of(events.iter());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The rows the store of migration 009 wrote for this run.
            let c = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS.iter().take(9).enumerate() {
                c.execute_batch(sql).unwrap();
                c.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                    .unwrap();
            }
            c.execute(
                "INSERT INTO settings VALUES ('bucket_ns', ?1)",
                [t.config().bucket_ns.to_string()],
            )
            .unwrap();
            let addrs = t.source_addrs();
            for b in t.buckets() {
                let start = b.number * t.config().bucket_ns;
                c.execute(
                    "INSERT INTO buckets VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![start, b.total.packets as i64, b.bytes as i64, 0, 0],
                )
                .unwrap();
                for cl in ALL_CLASSES {
                    if b.classes[cl.index()] > 0 {
                        c.execute(
                            "INSERT INTO bucket_classes VALUES (?1, ?2, ?3)",
                            params![start, cl.name(), b.classes[cl.index()] as i64],
                        )
                        .unwrap();
                    }
                }
                for (&port, n) in &b.port_totals {
                    let (proto, number) = iotscope_telescope::port_of(port);
                    c.execute(
                        "INSERT INTO bucket_ports VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
                        params![
                            start,
                            proto,
                            number,
                            n.packets as i64,
                            n.sources as i64,
                            b.port_sketches[&port].to_bytes()
                        ],
                    )
                    .unwrap();
                }
                for (id, s) in t.bucket_sources(b) {
                    c.execute(
                        "INSERT INTO bucket_sources VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                        params![
                            start,
                            addrs[id as usize].to_string(),
                            s.packets as i64,
                            s.bytes as i64,
                            s.first_ts,
                            s.last_ts,
                            s.class_mask as i64,
                            s.syn as i64,
                            s.mirai as i64,
                            s.zmap as i64,
                            s.masscan as i64,
                            s.backscatter as i64
                        ],
                    )
                    .unwrap();
                }
            }
            let stats = t.source_stats();
            t.for_each_port_source(|port, id| {
                let (proto, number) = iotscope_telescope::port_of(port);
                let ip = addrs[id as usize].to_string();
                c.execute(
                    "INSERT INTO port_sources VALUES (?1, ?2, ?3)",
                    params![proto, number, ip],
                )
                .unwrap();
                if stats[id as usize].mirai > 0 {
                    c.execute(
                        "INSERT INTO source_ports VALUES (?1, ?2, ?3)",
                        params![ip, proto, number],
                    )
                    .unwrap();
                }
            });
            // Stores from before migration 006 have infected hosts' ports
            // in source_ports only (port_sources began empty there).
            let first_infected = &t.summary(1).infected[0].ip;
            c.execute(
                "INSERT INTO source_ports VALUES (?1, 'tcp', 65000)",
                [first_infected],
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let stored = s
            .report(&ReportQuery {
                top: 100_000,
                ..Default::default()
            })
            .unwrap();
        let mut stored = stored;
        let ran = t.summary(100_000);
        assert!(!ran.infected.is_empty());
        let host = stored
            .infected
            .iter_mut()
            .find(|h| h.ip == ran.infected[0].ip)
            .unwrap();
        assert_eq!(
            host.ports.pop(),
            Some(65000),
            "a port only source_ports had"
        );
        assert_same_report(&stored, &ran);
        let old_tables: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('bucket_ports', 'bucket_sources', 'port_sources', 'source_ports')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_tables, 0);
    }

    /// Issue 17: whole days are read from the day rollups. Over runs that
    /// fall in one day, span days, merge into buckets already stored (late
    /// frames) and carry frames stamped outside any bucket, every period
    /// (whole days, partial days, a bucket, everything) reports exactly
    /// what the buckets' own rows give, and so does the map.
    /// Minute buckets over two days in two interleaved runs (so the second
    /// merges into stored hours and days): each hour's rollup row holds
    /// what a report of the buckets of that hour gives, the daily tier
    /// gives every figure of the whole period, and retention of the
    /// buckets leaves reports answering from the hours.
    #[test]
    fn hourly_and_daily_rollups_answer_as_the_buckets_do() {
        const MIN: i64 = 60_000_000_000;
        const HOUR: i64 = 60 * MIN;
        let t0 = 1_475_280_000_000_000_000i64; // a UTC midnight
        let mk = |odd: bool| {
            let mut t = Telescope::new(TelescopeConfig {
                bucket_ns: MIN,
                detail: true,
                ..Default::default()
            });
            let mut x = 0x2545_f491_4f6c_dd1du64;
            for i in 0..9000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i % 2 == 1) != odd {
                    continue;
                }
                let ts = t0 + (i as i64) * 19 * 1_000_000_000; // ~47.5 h
                t.ingest(
                    ts,
                    LinkType::RawIp,
                    &syn((x % 251) as u8, 23 + (x % 7) as u16),
                );
            }
            t.finish();
            t
        };
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        s.save_run(&mk(false), &[file("a", "a")]).unwrap();
        s.save_run(&mk(true), &[file("b", "b")]).unwrap();
        let all = ReportQuery {
            top: usize::MAX,
            ..Default::default()
        };
        let raw = s.report(&all).unwrap();
        assert_eq!(raw.tier.as_deref(), Some("bucket"));
        let tier = |t| ReportQuery {
            tier: crate::TierChoice::Exactly(t),
            ..all.clone()
        };
        let hours = s.report(&tier(Tier::Hour)).unwrap();
        assert_eq!(hours.bucket_seconds, 3600.0);
        assert_eq!(hours.series.len(), 48);
        for (h, row) in hours.series.iter().enumerate() {
            let lo = t0 + h as i64 * HOUR;
            let one = s
                .report(&ReportQuery {
                    since_ns: Some(lo),
                    until_ns: Some(lo + HOUR),
                    ..all.clone()
                })
                .unwrap();
            assert_eq!(
                (row.packets, row.sources),
                (one.packets, one.sources),
                "hour {h}"
            );
        }
        let days = s.report(&tier(Tier::Day)).unwrap();
        assert_eq!(days.series.len(), 2);
        for r in [&hours, &days] {
            assert_eq!((r.packets, r.sources), (raw.packets, raw.sources));
            assert_eq!(r.ports, raw.ports);
            assert_eq!(r.top_sources, raw.top_sources);
            assert_eq!(r.infected, raw.infected);
            assert_eq!((&r.first_ts, &r.last_ts), (&raw.first_ts, &raw.last_ts));
        }
        // Buckets kept 30 hours at the end of the second day: those of the
        // first 18 hours go, and a report of everything reads the hours.
        let pruned = s
            .prune(
                &crate::Retention {
                    keep_ns: [Some(30 * HOUR), None, None],
                },
                t0 + 48 * HOUR,
            )
            .unwrap();
        assert_eq!(pruned[0].before_ns, t0 + 18 * HOUR);
        assert_eq!(pruned[0].periods, 18 * 60);
        let after = s.report(&all).unwrap();
        assert_eq!(after.tier.as_deref(), Some("hour"));
        assert_eq!(after.series, hours.series);
        let late = ReportQuery {
            since_ns: Some(t0 + 20 * HOUR),
            ..all.clone()
        };
        assert_eq!(s.report(&late).unwrap().tier.as_deref(), Some("bucket"));
    }

    /// A run within one hour has its hour and day written from its
    /// per-source counters, not by merging its buckets' blocks: the same
    /// figures as the merge gives (the run written from a spool takes the
    /// merge), also when a second run of the hour merges into them.
    #[test]
    fn a_run_within_one_period_rolls_up_as_its_buckets_merge() {
        const MIN: i64 = 60_000_000_000;
        let t0 = 1_475_280_000_000_000_000i64 + 5 * 60 * MIN; // 05:00 UTC
        let mk = |seed: u64| {
            let mut t = Telescope::new(TelescopeConfig {
                bucket_ns: MIN,
                detail: true,
                ..Default::default()
            });
            let mut x = seed;
            for i in 0..3000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Sources come back across the hour's minutes.
                let ts = t0 + (i as i64) * 1_100_000_000 + (x % 1000) as i64;
                t.ingest(
                    ts,
                    LinkType::RawIp,
                    &syn((x % 97) as u8, 23 + (x % 5) as u16),
                );
            }
            t.finish();
            t
        };
        let dir = tempfile::tempdir().unwrap();
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        let mut spooled = SqliteStore::open(&dir.path().join("spooled.db")).unwrap();
        for (n, seed) in [0x2545_f491_4f6c_dd1du64, 0x9e37_79b9_7f4a_7c15]
            .iter()
            .enumerate()
        {
            let t = mk(*seed);
            let f = [file(&format!("h{n}"), &format!("{n}.pcap"))];
            live.save_run(&t, &f).unwrap();
            spooled
                .save_spooled(&crate::SpooledRun::of(&t), &f)
                .unwrap();
        }
        let all = ReportQuery {
            top: usize::MAX,
            ..Default::default()
        };
        let raw = live.report(&all).unwrap();
        assert!(raw.sources > 50 && raw.series.len() > 50);
        for tier in [Tier::Hour, Tier::Day] {
            let q = ReportQuery {
                tier: crate::TierChoice::Exactly(tier),
                ..all.clone()
            };
            let (a, b) = (live.report(&q).unwrap(), spooled.report(&q).unwrap());
            assert_eq!(a, b, "{tier:?}");
            assert_eq!(a.series.len(), 1);
            assert_eq!((a.packets, a.sources), (raw.packets, raw.sources));
            assert_eq!(a.series[0].sources, raw.sources);
            assert_eq!(a.top_sources, raw.top_sources);
            assert_eq!((&a.first_ts, &a.last_ts), (&raw.first_ts, &raw.last_ts));
        }
    }

    #[test]
    fn day_rollups_answer_as_the_buckets_do() {
        const DAY: i64 = 86_400_000_000_000;
        let t0 = 1_475_280_000_000_000_000i64; // 2016-10-01T00:00:00Z
                                               // Four days of frames from 400 sources, a fifth Mirai-like; some
                                               // sources come back day after day.
        let events: Vec<(i64, Vec<u8>)> = (0..24_000u32)
            .map(|i| {
                let src = (i.wrapping_mul(2_654_435_761) % 400).wrapping_mul(0x9e37_79b9) | 1;
                let seq = if src % 5 == 0 { 0xc612_0001 } else { i };
                let port = [23, 2323, 80, 8080][(i % 4) as usize];
                (t0 + i as i64 * 14_400_000_000, syn_v4(src, port, seq))
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        // Day 0 in one run; days 1-2 in one run spanning both; day 3 in
        // two interleaved runs (the second merges into stored buckets); and
        // a run of day 1's last hours again with a frame stamped in 1970.
        let day_of = |ts: i64| (ts - t0).div_euclid(DAY);
        let pick = |f: &dyn Fn(usize, i64) -> bool| -> Vec<(i64, Vec<u8>)> {
            events
                .iter()
                .enumerate()
                .filter(|(i, (ts, _))| f(*i, *ts))
                .map(|(_, e)| e.clone())
                .collect()
        };
        let runs = [
            pick(&|_, ts| day_of(ts) == 0),
            pick(&|_, ts| {
                (1..=2).contains(&day_of(ts)) && (ts - t0) % DAY < 20 * 3_600_000_000_000
                    || day_of(ts) == 2
            }),
            pick(&|i, ts| day_of(ts) == 3 && i % 2 == 0),
            pick(&|i, ts| day_of(ts) == 3 && i % 2 == 1),
        ];
        let mut late = pick(&|_, ts| day_of(ts) == 1 && (ts - t0) % DAY >= 20 * 3_600_000_000_000);
        late.push((5_000_000_000, syn_v4(0x0b00_0001, 23, 1)));
        for (n, run) in runs.iter().chain([&late]).enumerate() {
            s.save_run(
                &telescope_of(run.iter()),
                &[file(&format!("h{n}"), &format!("{n}.pcap"))],
            )
            .unwrap();
        }
        let hour = 3_600_000_000_000i64;
        let ranges = [
            (None, None),
            (Some(t0), Some(t0 + 4 * DAY)),
            (Some(t0 + DAY), Some(t0 + 3 * DAY)),
            (Some(t0 + 5 * hour), Some(t0 + 2 * DAY + 7 * hour)),
            (Some(t0 + 23 * hour), Some(t0 + DAY + hour)),
            (Some(t0 + 30 * hour), None),
            (None, Some(t0 + 3 * DAY + 2 * hour)),
            (Some(t0 + 2 * hour), Some(t0 + 3 * hour)),
        ];
        for (since_ns, until_ns) in ranges {
            let q = ReportQuery {
                since_ns,
                until_ns,
                top: usize::MAX,
                ..Default::default()
            };
            let m = MapQuery {
                since_ns,
                until_ns,
                port: None,
                limit: 100_000,
            };
            s.rollups = true;
            let (rolled, rolled_map) = (s.report(&q).unwrap(), s.map_sources(&m).unwrap());
            s.rollups = false;
            let (plain, plain_map) = (s.report(&q).unwrap(), s.map_sources(&m).unwrap());
            assert_same_report(&rolled, &plain);
            assert_eq!(rolled.packets, plain.packets);
            assert_eq!(rolled_map, plain_map, "{since_ns:?}..{until_ns:?}");
            assert!(plain.sources > 0);
        }
        // Frames arriving later for a day already rolled up: its rollup is
        // dropped and built again, so the answers still agree.
        let again: Vec<(i64, Vec<u8>)> = (0..500u32)
            .map(|i| {
                (
                    t0 + DAY + 3 * hour + i as i64 * 1_000_000_000,
                    syn_v4(0x0c00_0000 | i, 8080, i),
                )
            })
            .collect();
        s.save_run(&telescope_of(again.iter()), &[file("h-late", "late.pcap")])
            .unwrap();
        for (since_ns, until_ns) in ranges {
            let q = ReportQuery {
                since_ns,
                until_ns,
                top: usize::MAX,
                ..Default::default()
            };
            s.rollups = true;
            let rolled = s.report(&q).unwrap();
            s.rollups = false;
            assert_same_report(&rolled, &s.report(&q).unwrap());
        }
        // Each day's rollup holds one row per source, and buckets know
        // their distinct sources as the rows do.
        let rows: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM day_source_blocks WHERE day BETWEEN 17075 AND 17078",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(rows > 0);

        // A store from before migration 014 gets its rollups and bucket
        // counts built when opened, and reports the same.
        s.rollups = true;
        let q = ReportQuery {
            top: usize::MAX,
            ..Default::default()
        };
        let before = s.report(&q).unwrap();
        s.conn
            .execute_batch(
                "DROP TABLE survey_shards; DROP TABLE detections; DROP TABLE day_source_blocks; DROP TABLE rolled_days; ALTER TABLE buckets DROP COLUMN sources;
                 DROP TABLE hourly_buckets; DROP TABLE hourly_classes; DROP TABLE hourly_port_blocks; DROP TABLE hourly_port_sketches; DROP TABLE hourly_source_blocks;
                 DROP TABLE daily_buckets; DROP TABLE daily_classes; DROP TABLE daily_port_blocks; DROP TABLE daily_port_sketches; DROP TABLE daily_source_blocks;
                 PRAGMA user_version = 13;",
            )
            .unwrap();
        drop(s);
        let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let after = s.report(&q).unwrap();
        assert_same_report(&after, &before);
    }

    /// A review: a report waited out the busy timeout (30 s) for each day
    /// to roll up while a writer held the store. A rollup is not worth a
    /// wait: the report reads the buckets and the day stays unrolled; and
    /// the newest day, which a sensor keeps adding to, is never rolled.
    #[test]
    fn a_busy_store_is_read_from_its_buckets_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = SqliteStore::open(&path).unwrap();
        let day = 86_400_000_000_000i64;
        let t0 = 1_475_280_000_000_000_000i64;
        let events: Vec<(i64, Vec<u8>)> = (0..3000u32)
            .map(|i| {
                (
                    t0 + i as i64 * 100_000_000_000,
                    syn_v4(0x0b00_0000 | (i % 97), 23, i),
                )
            })
            .collect();
        s.save_run(&telescope_of(events.iter()), &[file("a", "a.pcap")])
            .unwrap();
        let writer = SqliteStore::open(&path).unwrap();
        writer.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let q = ReportQuery {
            top: usize::MAX,
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let busy = s.report(&q).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let rolled: i64 = s
            .conn
            .query_row("SELECT count(*) FROM rolled_days", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rolled, 0);
        writer.conn.execute_batch("ROLLBACK").unwrap();
        let free = s.report(&q).unwrap();
        assert_same_report(&busy, &free);
        let days: Vec<i64> = s
            .conn
            .prepare("SELECT day FROM rolled_days ORDER BY day")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // Four days of data (3.5 days from midnight): the three past ones
        // are rolled, the newest not.
        let first = t0.div_euclid(day);
        assert_eq!(days, vec![first, first + 1, first + 2]);
    }

    /// A damaged block is a clear error naming the table, not a panic or
    /// a wrong figure.
    #[test]
    fn a_damaged_block_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        s.save_run(&run(300), &[file("a", "a.pcap")]).unwrap();
        // A frame the next day: the first day is whole and past, and a
        // first report builds its rollup (the newest day never gets one).
        let next: Vec<(i64, Vec<u8>)> = vec![(
            1_475_280_000_000_000_000 + 86_400_000_000_000,
            syn_v4(0x0b00_0001, 23, 1),
        )];
        s.save_run(&telescope_of(next.iter()), &[file("b", "b.pcap")])
            .unwrap();
        s.report(&ReportQuery::default()).unwrap();
        for table in ["bucket_source_blocks", "day_source_blocks"] {
            s.conn
                .execute(
                    &format!("UPDATE {table} SET data = substr(data, 1, length(data) - 1)"),
                    [],
                )
                .unwrap();
        }
        // Every bucket: the whole day, from its rollup.
        let e = s.report(&ReportQuery::default()).unwrap_err().to_string();
        assert!(e.contains("day_source_blocks block 10 at "), "{e}");
        // Part of the day: the buckets' own rows.
        let part = ReportQuery {
            until_ns: Some(1_475_280_000_000_000_000 + 3_600_000_000_000),
            ..Default::default()
        };
        let e = s.report(&part).unwrap_err().to_string();
        assert!(e.contains("bucket_source_blocks block 10 at "), "{e}");
    }

    #[test]
    fn the_report_streams_rows_and_gives_what_the_run_gave() {
        // Many ports per bucket (past the per-bucket trimming) and sources
        // over several buckets: the stored report is the run's report.
        let mut t = Telescope::new(TelescopeConfig {
            bucket_ns: 3_600_000_000_000,
            detail: true,
            ..Default::default()
        });
        for i in 0..6000u32 {
            let ts = 1_475_280_000_000_000_000 + i as i64 * 3_000_000_000;
            let port = (i * 7919 % 211) as u16 + (i % 5) as u16;
            t.ingest(ts, LinkType::RawIp, &syn((i % 97) as u8, port));
        }
        t.finish();
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        s.save_run(&t, &[file("h", "a.pcap")]).unwrap();
        for top in [1, 3, 10, 500] {
            let stored = s
                .report(&ReportQuery {
                    top,
                    ..Default::default()
                })
                .unwrap();
            let mut ran = t.summary(top);
            ran.implausible_time = stored.implausible_time;
            assert_eq!(stored.series, ran.series, "top {top}");
            assert_eq!(stored.top_sources, ran.top_sources, "top {top}");
            assert_eq!(stored.ports.len(), ran.ports.len());
            assert_eq!(stored.sources, ran.sources);
        }
        let none = s
            .report(&ReportQuery {
                top: usize::MAX,
                series_top: Some(0),
                ..Default::default()
            })
            .unwrap();
        assert!(none.series.iter().all(|b| b.ports.is_empty()));
        assert_eq!(none.top_sources.len() as u64, none.sources);
    }

    #[test]
    fn processes_opening_a_new_store_at_once_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(dir.path().join("new.db"));
            let start = Arc::new(Barrier::new(4));
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        SqliteStore::open(&path).map(|_| ())
                    })
                })
                .collect();
            for o in opens {
                if let Err(e) = o.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
            let s = SqliteStore::open(&path).unwrap();
            let version: i64 = s
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version, MIGRATIONS.len() as i64);
        }
    }

    #[test]
    fn concurrent_runs_of_the_same_capture_count_once() {
        let one = run(3000);
        let once = one.totals().packets;
        assert_eq!(once, 3000);
        let one = Arc::new(one);
        for round in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(dir.path().join("c.db"));
            if round % 2 == 1 {
                // Half the rounds on a store that exists, half on a new one.
                SqliteStore::open(&path).unwrap();
            }
            let start = Arc::new(Barrier::new(2));
            let runs: Vec<_> = (0..2)
                .map(|i| {
                    let (path, start, one) = (path.clone(), start.clone(), one.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let mut s = SqliteStore::open(&path).unwrap();
                        s.save_run(&one, &[file("h1", &format!("run{i}.pcap"))])
                    })
                })
                .collect();
            let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
            let saved = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(saved, 1, "round {round}: {results:?}");
            for r in results {
                match r {
                    Ok(()) => {}
                    Err(StoreError::Duplicate {
                        content_hash,
                        file,
                        previous,
                        ..
                    }) => {
                        assert_eq!(content_hash, "h1");
                        assert!(file.starts_with("run") && previous.starts_with("run"));
                        assert_ne!(file, previous);
                    }
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(stored_packets(&s), once, "round {round}");
            assert_eq!(stored_files(&s), 1);
        }
    }

    #[test]
    fn a_run_with_content_already_stored_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("d.db")).unwrap();
        let t = run(500);
        s.save_run(&t, &[file("h1", "a.pcap")]).unwrap();
        // The same content again with a new file: the whole run is refused,
        // the new file too (its counts are mixed with the duplicate's).
        let err = s
            .save_run(&t, &[file("h2", "new.pcap"), file("h1", "copy.pcap")])
            .unwrap_err();
        match err {
            StoreError::Duplicate {
                file,
                content_hash,
                previous,
                ..
            } => {
                assert_eq!(
                    (file.as_str(), content_hash.as_str(), previous.as_str()),
                    ("copy.pcap", "h1", "a.pcap")
                );
            }
            e => panic!("{e}"),
        }
        assert_eq!(stored_packets(&s), 500);
        assert_eq!(stored_files(&s), 1);
        assert!(s.find_file("h2").unwrap().is_none());
    }

    #[test]
    fn a_run_listing_the_same_content_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let err = s
            .save_run(&run(200), &[file("h1", "a.pcap"), file("h1", "b.pcap")])
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Duplicate { file, previous, .. }
                if file == "b.pcap" && previous == "a.pcap"),
            "{err}"
        );
        assert_eq!(stored_packets(&s), 0);
        assert_eq!(stored_files(&s), 0);
    }

    #[test]
    fn the_content_hash_is_unique_in_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("u.db")).unwrap();
        let insert = "INSERT INTO files (content_hash, path, frames, status, ingested_at)
                      VALUES ('h1', ?1, 1, 'complete', '2026-01-01T00:00:00Z')";
        s.conn.execute(insert, ["a.pcap"]).unwrap();
        let e = s.conn.execute(insert, ["b.pcap"]).unwrap_err();
        assert_eq!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation)
        );
    }
}

impl SqliteStore {
    /// Writes one run ([`Store::save_run`]).
    fn save(&mut self, t: run::Run<'_>, files: &[IngestedFile]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let bucket_ns = t.bucket_ns();
        // A run writes hundreds of thousands of rows into several B-trees;
        // with SQLite's default 2 MB page cache each insert re-read pages
        // from the OS. A larger cache for the write only (readers, such as
        // the server's pool, keep the default; it is set back after).
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{WRITE_CACHE_KIB}"))
            .map_err(db)?;
        // The write lock first, then the duplicate check, then the inserts:
        // a concurrent run of the same content waits here and then finds it.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        {
            let mut stored = tx
                .prepare("SELECT path FROM files WHERE content_hash = ?1")
                .map_err(db)?;
            let mut in_run: HashMap<&str, &str> = HashMap::new();
            for f in files {
                let previous = match in_run.insert(&f.content_hash, &f.path) {
                    Some(earlier) => Some(earlier.to_string()),
                    None => stored
                        .query_row([&f.content_hash], |r| r.get::<_, String>(0))
                        .optional()
                        .map_err(db)?,
                };
                if let Some(previous) = previous {
                    // Dropping the transaction rolls it back: nothing stored.
                    return Err(StoreError::Duplicate {
                        path: path.clone(),
                        file: f.path.clone(),
                        content_hash: f.content_hash.clone(),
                        previous,
                    });
                }
            }
        }
        tx.execute(
            "INSERT INTO settings (name, value) VALUES ('bucket_ns', ?1) ON CONFLICT (name) DO NOTHING",
            [bucket_ns.to_string()],
        )
        .map_err(db)?;
        // Under the write lock: a run that checked the length when it
        // opened the store may meet one another process set since.
        let stored: String = tx
            .query_row(
                "SELECT value FROM settings WHERE name = 'bucket_ns'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if stored.parse::<i64>().ok() != Some(bucket_ns) {
            return Err(StoreError::BucketLength {
                path: path.clone(),
                stored_ns: stored.parse().unwrap_or(0),
                run_ns: bucket_ns,
            });
        }
        for f in files {
            // No ON CONFLICT: the unique content hash is the last guard.
            tx.execute(
                "INSERT INTO files (content_hash, path, frames, status, ingested_at, implausible_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![f.content_hash, f.path, f.frames as i64, f.status, f.ingested_at, f.implausible_time as i64],
            )
            .map_err(db)?;
            if let Some(l) = &f.capture_loss {
                tx.execute(
                    "INSERT INTO capture_loss (start_ns, interface, received, dropped, if_dropped) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (start_ns, interface) DO UPDATE SET received = capture_loss.received + excluded.received,
                       dropped = capture_loss.dropped + excluded.dropped, if_dropped = capture_loss.if_dropped + excluded.if_dropped",
                    params![l.bucket_start_ns, l.interface, l.received as i64, l.dropped as i64, l.if_dropped as i64],
                )
                .map_err(db)?;
            }
        }
        {
            let mut blocks = BlockWriter::new(&tx, &path);
            // A day this run adds to has a rollup no longer: it is built
            // again when a report next reads the day whole.
            for day in t.days() {
                tx.execute("DELETE FROM rolled_days WHERE day = ?1", [day])
                    .map_err(db)?;
                tx.execute("DELETE FROM day_source_blocks WHERE day = ?1", [day])
                    .map_err(db)?;
            }
            // Each bucket, and the hours and days it rolls up into, as the
            // run closes them; a tier takes no period older than what
            // retention left it (it would be a fragment of a removed one).
            let kept = coverage_of(&tx).map_err(db)?.kept_from();
            let mut rollups = run::Rollups::of_run(t);
            let rolled = |e: blocks::Damaged| {
                let _ = e;
                StoreError::Block {
                    path: path.clone(),
                    table: "(the run's blocks)",
                    block: -1,
                    key: -1,
                }
            };
            for b in t.buckets() {
                for (tier, p) in rollups.add(&b).map_err(rolled)? {
                    if p.start >= kept[tier.index()] {
                        blocks.write_period(tier, p)?;
                    }
                }
                if b.start >= kept[Tier::Bucket.index()] {
                    blocks.write_period(Tier::Bucket, b)?;
                }
            }
            for (tier, p) in rollups.finish().map_err(rolled)? {
                if p.start >= kept[tier.index()] {
                    blocks.write_period(tier, p)?;
                }
            }
            // (Each run of the day rewrites the blocks it touches.)
            if let Some((day, port_sources, infected)) = t.day_blocks() {
                blocks.write(BlockTable::PortSources, day, true, port_sources)?;
                blocks.write(BlockTable::InfectedPorts, day, true, infected)?;
            }
        }
        tx.commit().map_err(db)?;
        self.conn
            .execute_batch("PRAGMA cache_size = -2000")
            .map_err(db)
    }
}
