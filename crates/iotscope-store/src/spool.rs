//! A writer's local spool: runs the store could not take (its server down,
//! out of reach, refusing writes), kept in order in a small SQLite file on
//! the writer's own machine until the store takes them again.
//!
//! Why SQLite: a spool must survive the writer's restart and a power cut
//! (each push is one durable transaction, `synchronous = FULL`), and be
//! readable by the next process, on a machine that may have nothing else.
//!
//! Exactly once: every spooled run carries its records' content hashes,
//! which the store refuses twice ([`StoreError::Duplicate`]). A run is
//! removed from the spool only after the store committed it; a forwarder
//! stopped between the two finds it stored at its next try (a duplicate of
//! its first record) and only then removes it. In order: runs are
//! forwarded by their sequence number, and forwarding stops at the first
//! the store refuses, so none overtakes an earlier one.
//!
//! What waits: a sensor's telescope runs, or a honeypot's sessions (with
//! the blocklist entries they gave); a session is keyed by (sensor,
//! session id) in the store, so one forwarded twice is stored once.
//!
//! Layout: table `spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, queued_at
//! TEXT, frames INTEGER, bytes INTEGER, checksum BLOB, payload BLOB, kind
//! TEXT)`; for `kind` `run`, `payload` is the records ([`IngestedFile`],
//! varint-framed, below) then the [`SpooledRun`] encoding; for `session`,
//! a JSON object `{"session": ..., "blocklist": [...]}`; `checksum` is the
//! payload's XXH3-128. The file's
//! `PRAGMA application_id` is [`Spool::APPLICATION_ID`], so a store or any
//! other SQLite file given by mistake is refused, never written.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};

use crate::blocks::{self, put, unzigzag, zigzag, Damaged};
use crate::{BlocklistRecord, CaptureLoss, HoneypotSession, IngestedFile, SpooledRun, StoreError};

/// One thing waiting in a spool, as [`Spool::forward`] hands it over.
#[derive(Debug)]
pub enum SpoolItem<'a> {
    /// A telescope run and its records ([`crate::Store::save_spooled`]).
    Run(&'a SpooledRun, &'a [IngestedFile]),
    /// A honeypot session ([`crate::Store::save_honeypot_session`]) and the
    /// blocklist entries it gave (saved if the session was new).
    Session(&'a HoneypotSession, &'a [BlocklistRecord]),
}

/// A spooled session's payload.
#[derive(serde::Serialize, serde::Deserialize)]
struct SessionPayload {
    session: HoneypotSession,
    blocklist: Vec<BlocklistRecord>,
}

/// Errors of [`Spool`].
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool file could not be opened, read or written.
    #[error("spool {path}: {source}")]
    Database {
        /// The spool's path.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is some other SQLite database.
    #[error("{path} is not an iotscope spool (another SQLite database): give a new file")]
    NotASpool {
        /// The file's path.
        path: String,
    },
    /// Taking the run would pass the spool's bound.
    #[error(
        "spool {path} is full: {commits} runs, {bytes} bytes wait, and this one ({adding} bytes) would pass its bound of {max} bytes"
    )]
    Full {
        /// The spool's path.
        path: String,
        /// Runs waiting.
        commits: u64,
        /// Their bytes.
        bytes: u64,
        /// The refused run's bytes.
        adding: u64,
        /// The bound.
        max: u64,
    },
    /// A sensor's spool holds a honeypot's sessions (or the reverse): the
    /// writer cannot store them; `iotscope store forward` can.
    #[error("spool {path} holds {kind} entries this writer does not store: forward them with `iotscope store forward --spool {path}`")]
    WrongKind {
        /// The spool's path.
        path: String,
        /// What it holds.
        kind: &'static str,
    },
    /// The store refused a run (it stays in the spool, with those after it).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A run forwarded from the spool (what [`Spool::forward`] reports).
#[derive(Clone, Debug)]
pub struct Spooled {
    /// Its sequence number in the spool, ascending from 1.
    pub seq: i64,
    /// When it was spooled, RFC 3339.
    pub queued_at: String,
    /// A run's records as stored (a record the store already had dropped;
    /// none for a session).
    pub files: Vec<IngestedFile>,
    /// Whether the store had it already (an earlier forward whose removal
    /// from the spool was lost, or another forwarder's): nothing was
    /// written.
    pub already_stored: bool,
    /// Why it was set aside instead (damaged: its checksum or encoding, or
    /// a run without records, which could not be told apart from a copy of
    /// itself): kept in the spool's `set_aside` table, not forwarded.
    pub set_aside: Option<String>,
}

/// A bounded, durable, ordered queue of runs for a store.
pub struct Spool {
    conn: rusqlite::Connection,
    path: PathBuf,
    max_bytes: u64,
}

impl Spool {
    /// The spool file's `PRAGMA application_id` ("IOSP").
    pub const APPLICATION_ID: i32 = 0x494f_5350;

    /// Opens the spool at `path`, making it (mode 0600) when missing.
    /// `max_bytes` bounds the payload bytes it holds.
    ///
    /// Errors: [`SpoolError::Database`]; [`SpoolError::NotASpool`] for
    /// another SQLite file.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let err = |source| SpoolError::Database {
            path: path.display().to_string(),
            source,
        };
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            // Made private before SQLite writes a byte: it holds whom the
            // darknet saw.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
        }
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        conn.execute_batch("PRAGMA synchronous = FULL")
            .map_err(err)?;
        let id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(err)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        if id != Self::APPLICATION_ID && (id != 0 || tables != 0) {
            return Err(SpoolError::NotASpool {
                path: path.display().to_string(),
            });
        }
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             PRAGMA application_id = {};
             CREATE TABLE IF NOT EXISTS spool (
                 seq       INTEGER PRIMARY KEY AUTOINCREMENT,
                 queued_at TEXT NOT NULL,
                 frames    INTEGER NOT NULL,
                 bytes     INTEGER NOT NULL,
                 checksum  BLOB NOT NULL,
                 payload   BLOB NOT NULL,
                 kind      TEXT NOT NULL DEFAULT 'run'
             );
             CREATE TABLE IF NOT EXISTS set_aside (
                 seq       INTEGER PRIMARY KEY,
                 queued_at TEXT NOT NULL,
                 kind      TEXT NOT NULL,
                 checksum  BLOB NOT NULL,
                 payload   BLOB NOT NULL,
                 why       TEXT NOT NULL
             );
             COMMIT;",
            Self::APPLICATION_ID
        ))
        .map_err(err)?;
        Ok(Spool {
            conn,
            path: path.to_path_buf(),
            max_bytes,
        })
    }

    /// The spool's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> SpoolError {
        SpoolError::Database {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Runs waiting, their payload bytes and their frames.
    ///
    /// Errors: [`SpoolError::Database`].
    pub fn waiting(&self) -> Result<(u64, u64, u64), SpoolError> {
        self.conn
            .query_row(
                "SELECT count(*), COALESCE(sum(bytes), 0), COALESCE(sum(frames), 0) FROM spool",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                },
            )
            .map_err(|e| self.err(e))
    }

    /// Appends a run and its records, durably (one transaction), after
    /// every run already waiting. Returns its sequence number.
    ///
    /// Errors: [`SpoolError::Full`] when its bytes would pass the bound
    /// (nothing written); [`SpoolError::Database`].
    pub fn push(&mut self, run: &SpooledRun, files: &[IngestedFile]) -> Result<i64, SpoolError> {
        let mut payload = encode_files(files);
        payload.extend_from_slice(&run.to_bytes());
        let frames: u64 = files.iter().map(|f| f.frames).sum();
        self.push_payload("run", payload, frames)
    }

    /// Appends a honeypot session and the blocklist entries it gave, as
    /// [`Self::push`] appends a run.
    ///
    /// Errors: as [`Self::push`].
    pub fn push_session(
        &mut self,
        session: &HoneypotSession,
        blocklist: &[BlocklistRecord],
    ) -> Result<i64, SpoolError> {
        let payload = serde_json::to_vec(&SessionPayload {
            session: session.clone(),
            blocklist: blocklist.to_vec(),
        })
        .expect("a session serialises");
        self.push_payload("session", payload, 0)
    }

    fn push_payload(
        &mut self,
        kind: &str,
        payload: Vec<u8>,
        frames: u64,
    ) -> Result<i64, SpoolError> {
        let checksum = xxhash_rust::xxh3::xxh3_128(&payload).to_be_bytes();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| SpoolError::Database {
                path: self.path.display().to_string(),
                source: e,
            })?;
        let err = |source| SpoolError::Database {
            path: self.path.display().to_string(),
            source,
        };
        let (commits, bytes): (i64, i64) = tx
            .query_row(
                "SELECT count(*), COALESCE(sum(bytes), 0) FROM spool",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        let adding = payload.len() as u64;
        if (bytes as u64).saturating_add(adding) > self.max_bytes {
            return Err(SpoolError::Full {
                path: self.path.display().to_string(),
                commits: commits as u64,
                bytes: bytes as u64,
                adding,
                max: self.max_bytes,
            });
        }
        tx.execute(
            "INSERT INTO spool (queued_at, frames, bytes, checksum, payload, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                crate::now_rfc3339(),
                frames as i64,
                adding as i64,
                &checksum[..],
                payload,
                kind
            ],
        )
        .map_err(err)?;
        let seq = tx.last_insert_rowid();
        tx.commit().map_err(err)?;
        Ok(seq)
    }

    /// Writes the waiting entries with `save` ([`save_spooled_item`] into a
    /// store; it says whether the entry was stored now or was there
    /// already), oldest first, each in the store's own transaction,
    /// removing each from the spool once the store has it; `each` hears of
    /// every entry that left the spool. Stops at the first entry the store
    /// refuses (it and the later ones stay), and after the entry in hand
    /// once `until` has passed (a sensor forwards a backlog a little at
    /// each commit, not at the cost of its capture). An entry that cannot
    /// be forwarded (damaged: its checksum or encoding) is moved to the
    /// spool's `set_aside` table, said to `each`, and the rest go on: one
    /// bad entry does not hold the others back. Returns how many entries
    /// were forwarded.
    ///
    /// A run whose first record the store already holds was stored by an
    /// earlier forward whose removal was lost: it is removed without
    /// writing. A later record the store holds (an archive file someone
    /// analysed meanwhile) is dropped from the run and the rest written.
    ///
    /// Errors: [`SpoolError::Store`] with the store's refusal;
    /// [`SpoolError::Database`].
    pub fn forward(
        &mut self,
        mut save: impl FnMut(SpoolItem<'_>) -> Result<bool, StoreError>,
        until: Option<std::time::Instant>,
        mut each: impl FnMut(&Spooled),
    ) -> Result<u64, SpoolError> {
        let mut done = 0u64;
        loop {
            if until.is_some_and(|t| std::time::Instant::now() >= t) {
                return Ok(done);
            }
            let row = self
                .conn
                .query_row(
                    "SELECT seq, queued_at, checksum, payload, kind FROM spool ORDER BY seq LIMIT 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(|e| self.err(e))?;
            let Some((seq, queued_at, checksum, payload, kind)) = row else {
                return Ok(done);
            };
            let mut already_stored = false;
            let mut files = Vec::new();
            let why = match decode(&checksum, &payload, &kind) {
                Err(why) => Some(why),
                Ok(Decoded::Run(run, decoded)) => {
                    files = decoded;
                    let first = files.first().map(|f| f.content_hash.clone());
                    loop {
                        match save(SpoolItem::Run(&run, &files)) {
                            Ok(stored) => {
                                already_stored = !stored;
                                break;
                            }
                            Err(StoreError::Duplicate { content_hash, .. })
                                if Some(&content_hash) == first.as_ref() =>
                            {
                                already_stored = true;
                                break;
                            }
                            Err(StoreError::Duplicate { content_hash, .. }) => {
                                files.retain(|f| f.content_hash != content_hash);
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    None
                }
                Ok(Decoded::Session(p)) => {
                    already_stored = !save(SpoolItem::Session(&p.session, &p.blocklist))?;
                    None
                }
            };
            // One transaction: an entry set aside is moved, not lost; one
            // another forwarder removed first is not counted twice.
            let path = self.path.display().to_string();
            let err = |source| SpoolError::Database {
                path: path.clone(),
                source,
            };
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(err)?;
            if let Some(why) = &why {
                tx.execute(
                    "INSERT OR REPLACE INTO set_aside (seq, queued_at, kind, checksum, payload, why)
                     SELECT seq, queued_at, kind, checksum, payload, ?2 FROM spool WHERE seq = ?1",
                    params![seq, why],
                )
                .map_err(err)?;
            }
            let removed = tx
                .execute("DELETE FROM spool WHERE seq = ?1", [seq])
                .map_err(err)?;
            tx.commit().map_err(err)?;
            if removed == 0 {
                continue;
            }
            done += why.is_none() as u64;
            each(&Spooled {
                seq,
                queued_at,
                files,
                already_stored,
                set_aside: why,
            });
        }
    }

    /// Entries set aside as damaged, and the reasons (oldest first).
    ///
    /// Errors: [`SpoolError::Database`].
    pub fn set_aside(&self) -> Result<Vec<(i64, String)>, SpoolError> {
        let mut st = self
            .conn
            .prepare("SELECT seq, why FROM set_aside ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e));
        rows
    }
}

/// A spool entry read back.
enum Decoded {
    Run(SpooledRun, Vec<IngestedFile>),
    Session(Box<SessionPayload>),
}

/// Checks and decodes an entry; else why it cannot be forwarded.
fn decode(checksum: &[u8], payload: &[u8], kind: &str) -> Result<Decoded, String> {
    if checksum[..] != xxhash_rust::xxh3::xxh3_128(payload).to_be_bytes() {
        return Err("its checksum does not match its bytes".into());
    }
    match kind {
        "run" => {
            let (files, rest) =
                decode_files(payload).map_err(|_| "its records do not decode".to_string())?;
            if files.is_empty() {
                return Err("a run without records (it could be stored twice)".into());
            }
            let run =
                SpooledRun::from_bytes(rest).map_err(|_| "its run does not decode".to_string())?;
            Ok(Decoded::Run(run, files))
        }
        "session" => serde_json::from_slice(payload)
            .map(|p| Decoded::Session(Box::new(p)))
            .map_err(|e| format!("its session does not decode: {e}")),
        other => Err(format!("an entry of unknown kind {other:?}")),
    }
}

/// Saves a spooled item into `store`: a run with
/// [`crate::Store::save_spooled`]; a session with
/// [`crate::Store::save_honeypot_session`] and, when it was new, its
/// blocklist entries (a session already stored added them then). Returns
/// whether it was stored now (false: the store had the session).
///
/// Errors: the store's.
pub fn save_spooled_item(
    store: &mut dyn crate::Store,
    item: SpoolItem<'_>,
) -> Result<bool, StoreError> {
    match item {
        SpoolItem::Run(run, files) => store.save_spooled(run, files).map(|()| true),
        SpoolItem::Session(session, blocklist) => {
            let new = store.save_honeypot_session(session)?;
            if new && !blocklist.is_empty() {
                store.save_blocklist(blocklist)?;
            }
            Ok(new)
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The records as varints and strings: count, then per record its content
/// hash, path, frames, status, ingested-at, implausible-time count, and 0
/// or 1 and its capture loss (interface, bucket start, received, dropped,
/// dropped by the interface).
fn encode_files(files: &[IngestedFile]) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, files.len() as u64);
    for f in files {
        put_str(&mut out, &f.content_hash);
        put_str(&mut out, &f.path);
        put(&mut out, f.frames);
        put_str(&mut out, &f.status);
        put_str(&mut out, &f.ingested_at);
        put(&mut out, f.implausible_time);
        match &f.capture_loss {
            None => out.push(0),
            Some(l) => {
                out.push(1);
                put_str(&mut out, &l.interface);
                put(&mut out, zigzag(l.bucket_start_ns));
                put(&mut out, l.received);
                put(&mut out, l.dropped);
                put(&mut out, l.if_dropped);
            }
        }
    }
    out
}

/// [`encode_files`]' records back, and the bytes after them.
fn decode_files(buf: &[u8]) -> Result<(Vec<IngestedFile>, &[u8]), Damaged> {
    let mut r = blocks::Reader::raw(buf);
    fn string(r: &mut blocks::Reader<'_>) -> Result<String, Damaged> {
        let n = usize::try_from(r.int()?).map_err(|_| Damaged)?;
        String::from_utf8(r.bytes(n)?.to_vec()).map_err(|_| Damaged)
    }
    let n = r.int()?;
    let mut files = Vec::new();
    for _ in 0..n {
        let content_hash = string(&mut r)?;
        let path = string(&mut r)?;
        let frames = r.int()?;
        let status = string(&mut r)?;
        let ingested_at = string(&mut r)?;
        let implausible_time = r.int()?;
        let capture_loss = match r.bytes(1)?[0] {
            0 => None,
            1 => Some(CaptureLoss {
                interface: string(&mut r)?,
                bucket_start_ns: unzigzag(r.int()?),
                received: r.int()?,
                dropped: r.int()?,
                if_dropped: r.int()?,
            }),
            _ => return Err(Damaged),
        };
        files.push(IngestedFile {
            content_hash,
            path,
            frames,
            status,
            ingested_at,
            implausible_time,
            capture_loss,
        });
    }
    let used = r.position();
    Ok((files, &buf[used..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReportQuery, SqliteStore, Store};
    use iotscope_telescope::{Telescope, TelescopeConfig};
    use iotscope_wire::LinkType;

    use crate::test_frames::syn;

    /// 200 SYNs over three minutes (one-minute buckets), sources by `seed`.
    fn telescope(seed: u32) -> Telescope {
        let mut t = Telescope::new(TelescopeConfig {
            bucket_ns: 60_000_000_000,
            detail: true,
            ..Default::default()
        });
        for i in 0..200u32 {
            let ts = 1_600_000_000_000_000_000 + i as i64 * 1_000_000_000;
            t.ingest(
                ts,
                LinkType::RawIp,
                &syn(((i * 7 + seed) % 50) as u8, 23 + (i % 5) as u16),
            );
        }
        t.finish();
        t
    }

    fn record(hash: &str, frames: u64) -> IngestedFile {
        IngestedFile {
            content_hash: hash.into(),
            path: "interface veth0".into(),
            frames,
            status: "complete".into(),
            ingested_at: "2026-12-01T00:00:00Z".into(),
            implausible_time: 1,
            capture_loss: Some(CaptureLoss {
                interface: "veth0".into(),
                bucket_start_ns: -5,
                received: 7,
                dropped: 2,
                if_dropped: 1,
            }),
        }
    }

    #[test]
    fn a_run_from_the_spool_stores_what_its_telescope_stores() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (telescope(1), telescope(2));
        let mut direct = SqliteStore::open(&dir.path().join("direct.db")).unwrap();
        direct.save_run(&a, &[record("h1", 200)]).unwrap();
        direct.save_run(&b, &[record("h2", 200)]).unwrap();
        let mut spool = Spool::open(&dir.path().join("s.spool"), 1 << 30).unwrap();
        spool
            .push(&SpooledRun::of(&a), &[record("h1", 200)])
            .unwrap();
        spool
            .push(&SpooledRun::of(&b), &[record("h2", 200)])
            .unwrap();
        assert_eq!(spool.waiting().unwrap().0, 2);
        let mut later = SqliteStore::open(&dir.path().join("later.db")).unwrap();
        let mut seen = Vec::new();
        let n = spool
            .forward(
                |i| save_spooled_item(&mut later, i),
                None,
                |s| seen.push(s.seq),
            )
            .unwrap();
        assert_eq!((n, seen), (2, vec![1, 2]));
        assert_eq!(spool.waiting().unwrap(), (0, 0, 0));
        let q = ReportQuery::default();
        assert_eq!(direct.report(&q).unwrap(), later.report(&q).unwrap());
        assert_eq!(
            direct.find_file("h2").unwrap(),
            later.find_file("h2").unwrap()
        );
    }

    #[test]
    fn a_run_forwarded_twice_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let t = telescope(3);
        let path = dir.path().join("s.spool");
        let mut spool = Spool::open(&path, 1 << 30).unwrap();
        spool
            .push(&SpooledRun::of(&t), &[record("h1", 200)])
            .unwrap();
        // A copy of the spool taken before its removal: as if the forwarder
        // died between the store's commit and the spool's delete.
        std::fs::copy(&path, dir.path().join("copy.spool")).unwrap();
        let mut store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        spool
            .forward(|i| save_spooled_item(&mut store, i), None, |_| {})
            .unwrap();
        let mut again = Spool::open(&dir.path().join("copy.spool"), 1 << 30).unwrap();
        let mut stored = Vec::new();
        assert_eq!(
            again
                .forward(
                    |i| save_spooled_item(&mut store, i),
                    None,
                    |s| stored.push(s.already_stored)
                )
                .unwrap(),
            1
        );
        assert_eq!(stored, vec![true]);
        let mut once = SqliteStore::open(&dir.path().join("once.db")).unwrap();
        once.save_run(&t, &[record("h1", 200)]).unwrap();
        let q = ReportQuery::default();
        assert_eq!(store.report(&q).unwrap(), once.report(&q).unwrap());
    }

    #[test]
    fn the_bound_refuses_a_run_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let t = telescope(4);
        let size = {
            let mut p = encode_files(&[record("h1", 200)]);
            p.extend(SpooledRun::of(&t).to_bytes());
            p.len() as u64
        };
        let mut spool = Spool::open(&dir.path().join("s.spool"), size * 2).unwrap();
        spool
            .push(&SpooledRun::of(&t), &[record("h1", 200)])
            .unwrap();
        spool
            .push(&SpooledRun::of(&t), &[record("h2", 200)])
            .unwrap();
        let e = spool
            .push(&SpooledRun::of(&t), &[record("h3", 200)])
            .unwrap_err();
        assert!(matches!(e, SpoolError::Full { commits: 2, .. }), "{e}");
        assert!(e.to_string().contains("is full"), "{e}");
        assert_eq!(spool.waiting().unwrap(), (2, size * 2, 400));
    }

    #[test]
    fn a_damaged_entry_is_set_aside_and_the_rest_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.spool");
        let mut spool = Spool::open(&path, 1 << 30).unwrap();
        for h in ["h1", "h2"] {
            spool
                .push(&SpooledRun::of(&telescope(5)), &[record(h, 200)])
                .unwrap();
        }
        spool
            .conn
            .execute(
                "UPDATE spool SET payload = substr(payload, 1, 40) WHERE seq = 1",
                [],
            )
            .unwrap();
        let mut store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let mut heard = Vec::new();
        let n = spool
            .forward(
                |i| save_spooled_item(&mut store, i),
                None,
                |s| heard.push((s.seq, s.set_aside.clone())),
            )
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(heard[0].0, 1);
        assert!(
            heard[0].1.as_deref().unwrap().contains("checksum"),
            "{heard:?}"
        );
        assert_eq!(heard[1], (2, None));
        assert_eq!(spool.waiting().unwrap().0, 0);
        assert_eq!(spool.set_aside().unwrap().len(), 1);
        assert!(store.find_file("h1").unwrap().is_none());
        assert!(store.find_file("h2").unwrap().is_some());
        // A run without records could be stored twice: set aside too.
        spool.push(&SpooledRun::of(&telescope(6)), &[]).unwrap();
        let n = spool
            .forward(|i| save_spooled_item(&mut store, i), None, |_| {})
            .unwrap();
        assert_eq!((n, spool.set_aside().unwrap().len()), (0, 2));
    }

    #[test]
    fn another_sqlite_file_is_not_a_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        SqliteStore::open(&path).unwrap();
        let e = Spool::open(&path, 1 << 20).err().unwrap();
        assert!(matches!(e, SpoolError::NotASpool { .. }), "{e}");
    }

    #[test]
    fn honeypot_sessions_wait_beside_runs_and_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("s.spool"), 1 << 20).unwrap();
        let session = HoneypotSession {
            sensor: "hp".into(),
            id: "00000000000a".into(),
            protocol: "telnet".into(),
            src_ip: "127.0.0.2".into(),
            src_port: 4000,
            dst_ip: "127.0.0.1".into(),
            dst_port: 23,
            start_ns: 1,
            end_ns: 2,
            commands: vec![(1, "/bin/busybox ECCHI".into(), false)],
            reason: "closed".into(),
            ..Default::default()
        };
        let entry = BlocklistRecord {
            value: "198.18.0.9".into(),
            kind: "ip".into(),
            port: Some(8080),
            malware: "mirai".into(),
            source: "honeypot:hp".into(),
            first_seen: "2026-12-01T00:00:00Z".into(),
        };
        spool
            .push_session(&session, std::slice::from_ref(&entry))
            .unwrap();
        spool
            .push(&SpooledRun::of(&telescope(8)), &[record("h1", 200)])
            .unwrap();
        // The same session again (a retry whose answer was lost).
        spool
            .push_session(&session, std::slice::from_ref(&entry))
            .unwrap();
        let mut store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let n = spool
            .forward(|i| save_spooled_item(&mut store, i), None, |_| {})
            .unwrap();
        assert_eq!(n, 3);
        let stored = store.honeypot_sessions(None, None, 10).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].commands, session.commands);
        assert_eq!(store.blocklist().unwrap().len(), 1);
        assert!(store.find_file("h1").unwrap().is_some());
        // A sensor's sink refuses what it cannot store, naming the spool.
        let e = SpoolError::WrongKind {
            path: "s.spool".into(),
            kind: "honeypot session",
        };
        assert!(
            e.to_string().contains("store forward --spool s.spool"),
            "{e}"
        );
    }

    #[test]
    fn a_spool_is_not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.spool");
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        spool
            .push(&SpooledRun::of(&telescope(7)), &[record("h1", 200)])
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let e = SqliteStore::open(&path).err().unwrap();
        assert!(matches!(e, crate::StoreError::NotAStore { .. }), "{e}");
        assert!(e.to_string().contains("an iotscope spool"), "{e}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the spool was changed"
        );
        assert_eq!(spool.waiting().unwrap().0, 1);
    }

    #[test]
    fn every_truncation_of_a_payload_is_refused() {
        let mut p = encode_files(&[record("h1", 200)]);
        p.extend(SpooledRun::of(&telescope(6)).to_bytes());
        let (files, rest) = decode_files(&p).unwrap();
        assert_eq!(files, vec![record("h1", 200)]);
        assert_eq!(
            SpooledRun::from_bytes(rest).unwrap(),
            SpooledRun::of(&telescope(6))
        );
        for n in 0..rest.len() {
            assert!(SpooledRun::from_bytes(&rest[..n]).is_err(), "{n}");
        }
    }
}
