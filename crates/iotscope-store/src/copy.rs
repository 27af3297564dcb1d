//! Moving a whole store between engines (`iotscope store copy`): every
//! table's rows, in one transaction on the destination, then verified by
//! per-table row counts and checksums computed on both sides.
//!
//! Both stores are opened (and so migrated) first; the destination must be
//! empty, so a copy never mixes two stores' rows (a store's telescope
//! blocks merge only through [`crate::Store::save_run`]).

use rusqlite::types::Value as LiteValue;
use xxhash_rust::xxh3::Xxh3;

use crate::{Locator, SqliteStore, StoreError};

/// A column's type, as both engines hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// TEXT.
    Text,
    /// INTEGER (SQLite) / BIGINT (PostgreSQL).
    Int,
    /// REAL / DOUBLE PRECISION.
    Real,
    /// BLOB / BYTEA.
    Blob,
    /// INTEGER 0/1 (SQLite) / BOOLEAN (PostgreSQL).
    Bool,
}

use Kind::{Blob, Bool, Int, Real, Text};

/// One table: its columns (all of them but an engine's own row numbers)
/// and the order rows are read and checksummed in (its key).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    order: &'static str,
}

/// Every table of the schema (migrations 001-017 / pg 001-005), parents
/// before children.
const TABLES: &[Table] = &[
    Table {
        name: "settings",
        columns: &[("name", Text), ("value", Text)],
        order: "name",
    },
    Table {
        name: "files",
        columns: &[
            ("content_hash", Text),
            ("path", Text),
            ("frames", Int),
            ("status", Text),
            ("ingested_at", Text),
            ("implausible_time", Int),
        ],
        order: "content_hash",
    },
    Table {
        name: "buckets",
        columns: &[
            ("start_ns", Int),
            ("packets", Int),
            ("bytes", Int),
            ("outside", Int),
            ("malformed", Int),
            ("sources", Int),
        ],
        order: "start_ns",
    },
    Table {
        name: "bucket_classes",
        columns: &[("start_ns", Int), ("class", Text), ("packets", Int)],
        order: "start_ns, class",
    },
    Table {
        name: "bucket_port_blocks",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "bucket_port_sketches",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "bucket_source_blocks",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "port_source_blocks",
        columns: &[("block", Int), ("day", Int), ("data", Blob)],
        order: "block, day",
    },
    Table {
        name: "infected_port_blocks",
        columns: &[("block", Int), ("day", Int), ("data", Blob)],
        order: "block, day",
    },
    Table {
        name: "day_source_blocks",
        columns: &[("block", Int), ("day", Int), ("data", Blob)],
        order: "block, day",
    },
    Table {
        name: "rolled_days",
        columns: &[("day", Int)],
        order: "day",
    },
    Table {
        name: "hourly_buckets",
        columns: &[
            ("start_ns", Int),
            ("packets", Int),
            ("bytes", Int),
            ("outside", Int),
            ("malformed", Int),
            ("sources", Int),
        ],
        order: "start_ns",
    },
    Table {
        name: "hourly_classes",
        columns: &[("start_ns", Int), ("class", Text), ("packets", Int)],
        order: "start_ns, class",
    },
    Table {
        name: "hourly_port_blocks",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "hourly_port_sketches",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "hourly_source_blocks",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "daily_buckets",
        columns: &[
            ("start_ns", Int),
            ("packets", Int),
            ("bytes", Int),
            ("outside", Int),
            ("malformed", Int),
            ("sources", Int),
        ],
        order: "start_ns",
    },
    Table {
        name: "daily_classes",
        columns: &[("start_ns", Int), ("class", Text), ("packets", Int)],
        order: "start_ns, class",
    },
    Table {
        name: "daily_port_blocks",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "daily_port_sketches",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "daily_source_blocks",
        columns: &[("block", Int), ("start_ns", Int), ("data", Blob)],
        order: "block, start_ns",
    },
    Table {
        name: "capture_loss",
        columns: &[
            ("start_ns", Int),
            ("interface", Text),
            ("received", Int),
            ("dropped", Int),
            ("if_dropped", Int),
        ],
        order: "start_ns, interface",
    },
    Table {
        name: "services",
        columns: &[
            ("ip", Text),
            ("port", Int),
            ("proto", Text),
            ("status", Text),
            ("service", Text),
            ("banner", Text),
            ("first_seen", Text),
            ("last_seen", Text),
        ],
        order: "ip, port, proto",
    },
    Table {
        name: "findings",
        columns: &[
            ("ip", Text),
            ("port", Int),
            ("service", Text),
            ("kind", Text),
            ("severity", Text),
            ("device", Text),
            ("evidence", Text),
            ("first_seen", Text),
            ("last_seen", Text),
        ],
        order: "ip, port, kind",
    },
    Table {
        name: "blocklist",
        columns: &[
            ("value", Text),
            ("kind", Text),
            ("port", Int),
            ("malware", Text),
            ("source", Text),
            ("first_seen", Text),
            ("imported", Text),
        ],
        order: "value",
    },
    Table {
        name: "alerts",
        columns: &[
            ("ip", Text),
            ("port", Int),
            ("problem", Text),
            ("service", Text),
            ("severity", Text),
            ("isp", Text),
            ("device", Text),
            ("evidence", Text),
            ("advice", Text),
            ("first_seen", Text),
            ("last_seen", Text),
            ("status", Text),
        ],
        order: "ip, port, problem",
    },
    // Its order is the order of events: SQLite's rowid, PostgreSQL's seq
    // (see `Engine::history_order`); copied in that order, it stays.
    Table {
        name: "alert_history",
        columns: &[
            ("ip", Text),
            ("port", Int),
            ("problem", Text),
            ("ts", Text),
            ("status", Text),
            ("note", Text),
        ],
        order: "",
    },
    Table {
        name: "users",
        columns: &[
            ("name", Text),
            ("password_hash", Text),
            ("role", Text),
            ("isp", Text),
            ("created", Text),
        ],
        order: "name",
    },
    Table {
        name: "sessions",
        columns: &[
            ("token_hash", Text),
            ("user_name", Text),
            ("kind", Text),
            ("csrf", Text),
            ("created", Text),
            ("expires_ns", Int),
        ],
        order: "token_hash",
    },
    Table {
        name: "honeypot_sessions",
        columns: &[
            ("sensor", Text),
            ("id", Text),
            ("protocol", Text),
            ("src_ip", Text),
            ("src_port", Int),
            ("dst_ip", Text),
            ("dst_port", Int),
            ("start_ns", Int),
            ("end_ns", Int),
            ("username", Text),
            ("password", Text),
            ("input_sha256", Text),
            ("reason", Text),
            ("linked_session", Text),
            ("linked_ip", Text),
            ("truncated", Int),
        ],
        order: "sensor, id",
    },
    Table {
        name: "honeypot_logins",
        columns: &[
            ("sensor", Text),
            ("session", Text),
            ("seq", Int),
            ("at_ns", Int),
            ("username", Text),
            ("password", Text),
            ("success", Bool),
        ],
        order: "sensor, session, seq",
    },
    Table {
        name: "honeypot_commands",
        columns: &[
            ("sensor", Text),
            ("session", Text),
            ("seq", Int),
            ("at_ns", Int),
            ("input", Text),
            ("known", Bool),
        ],
        order: "sensor, session, seq",
    },
    Table {
        name: "honeypot_downloads",
        columns: &[
            ("sensor", Text),
            ("session", Text),
            ("seq", Int),
            ("kind", Text),
            ("url", Text),
            ("host", Text),
            ("port", Int),
        ],
        order: "sensor, session, seq",
    },
    Table {
        name: "honeypot_payloads",
        columns: &[
            ("sensor", Text),
            ("session", Text),
            ("path", Text),
            ("sha256", Text),
            ("size", Int),
            ("duplicate", Bool),
        ],
        order: "sensor, session, path",
    },
    Table {
        name: "detections",
        columns: &[
            ("key", Text),
            ("first_bucket_ns", Int),
            ("last_bucket_ns", Int),
            ("kind", Text),
            ("severity", Text),
            ("proto", Text),
            ("ports", Text),
            ("score", Real),
            ("peak_score", Real),
            ("body", Text),
            ("created_at", Text),
            ("updated_at", Text),
            ("notified_at", Text),
        ],
        order: "key, first_bucket_ns",
    },
    Table {
        name: "survey_shards",
        columns: &[
            ("run", Text),
            ("shard", Int),
            ("shards", Int),
            ("seed", Int),
            ("host", Text),
            ("pairs", Int),
            ("sent", Int),
            ("open", Int),
            ("findings", Int),
            ("state", Text),
            ("started", Text),
            ("updated", Text),
        ],
        order: "run, shard",
    },
];

/// One value, engine-neutral.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

impl Value {
    /// Feeds the value's canonical bytes (a tag, then the value) to a hash.
    fn hash_into(&self, h: &mut Xxh3) {
        match self {
            Value::Null => h.update(&[0]),
            Value::Int(v) => {
                h.update(&[1]);
                h.update(&v.to_be_bytes());
            }
            Value::Real(v) => {
                h.update(&[2]);
                h.update(&v.to_bits().to_be_bytes());
            }
            Value::Text(v) => {
                h.update(&[3]);
                h.update(&(v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
            Value::Blob(v) => {
                h.update(&[4]);
                h.update(&(v.len() as u64).to_be_bytes());
                h.update(v);
            }
            Value::Bool(v) => h.update(&[5, *v as u8]),
        }
    }

    fn to_lite(&self) -> LiteValue {
        match self {
            Value::Null => LiteValue::Null,
            Value::Int(v) => LiteValue::Integer(*v),
            Value::Real(v) => LiteValue::Real(*v),
            Value::Text(v) => LiteValue::Text(v.clone()),
            Value::Blob(v) => LiteValue::Blob(v.clone()),
            Value::Bool(v) => LiteValue::Integer(*v as i64),
        }
    }
}

/// What one table's copy moved and how it checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: &'static str,
    /// Rows in the source and, after the copy, in the destination.
    pub rows: u64,
    /// XXH3-128 of the rows' canonical bytes in key order, hex: the same
    /// on both sides.
    pub checksum: String,
}

/// A store opened for copying, of either engine.
enum Engine {
    Lite(SqliteStore),
    #[cfg(feature = "postgres")]
    Pg(Box<crate::PgStore>),
}

impl Engine {
    fn open(at: &Locator) -> Result<Engine, StoreError> {
        match at {
            Locator::Sqlite(p) => Ok(Engine::Lite(SqliteStore::open(p)?)),
            #[cfg(feature = "postgres")]
            Locator::Postgres(u) => Ok(Engine::Pg(Box::new(crate::PgStore::open(u)?))),
            #[cfg(not(feature = "postgres"))]
            Locator::Postgres(u) => Err(StoreError::NoPostgres {
                url: crate::redact_url(u),
            }),
        }
    }

    /// `SELECT` of the table's columns in its order.
    fn select(&self, t: &Table) -> String {
        let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
        let order = if t.order.is_empty() {
            match self {
                Engine::Lite(_) => "rowid",
                #[cfg(feature = "postgres")]
                Engine::Pg(_) => "seq",
            }
        } else {
            t.order
        };
        format!(
            "SELECT {} FROM {} ORDER BY {order}",
            cols.join(", "),
            t.name
        )
    }

    /// Calls `f` with each row of `t`, in its order, streaming.
    fn each_row(
        &self,
        t: &Table,
        f: &mut dyn FnMut(&[Value]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = self.select(t);
        let mut row: Vec<Value> = Vec::with_capacity(t.columns.len());
        match self {
            Engine::Lite(s) => {
                let db = |e| s.err(e);
                let mut st = s.conn.prepare(&sql).map_err(db)?;
                let mut it = st.query([]).map_err(db)?;
                while let Some(r) = it.next().map_err(db)? {
                    row.clear();
                    for (i, (_, kind)) in t.columns.iter().enumerate() {
                        let v = match r.get::<_, LiteValue>(i).map_err(db)? {
                            LiteValue::Null => Value::Null,
                            LiteValue::Integer(v) if *kind == Bool => Value::Bool(v != 0),
                            LiteValue::Integer(v) => Value::Int(v),
                            LiteValue::Real(v) => Value::Real(v),
                            LiteValue::Text(v) => Value::Text(v),
                            LiteValue::Blob(v) => Value::Blob(v),
                        };
                        row.push(v);
                    }
                    f(&row)?;
                }
            }
            #[cfg(feature = "postgres")]
            Engine::Pg(s) => {
                use postgres::fallible_iterator::FallibleIterator;
                let mut c = s.inner.conn()?;
                let db = |e| s.inner.err(e);
                let mut it = c
                    .query_raw(sql.as_str(), std::iter::empty::<i64>())
                    .map_err(db)?;
                while let Some(r) = it.next().map_err(db)? {
                    row.clear();
                    for (i, (_, kind)) in t.columns.iter().enumerate() {
                        let v = match kind {
                            Text => r.get::<_, Option<String>>(i).map(Value::Text),
                            Int => r.get::<_, Option<i64>>(i).map(Value::Int),
                            Real => r.get::<_, Option<f64>>(i).map(Value::Real),
                            Blob => r.get::<_, Option<Vec<u8>>>(i).map(Value::Blob),
                            Bool => r.get::<_, Option<bool>>(i).map(Value::Bool),
                        };
                        row.push(v.unwrap_or(Value::Null));
                    }
                    f(&row)?;
                }
            }
        }
        Ok(())
    }

    /// Rows and checksum of `t`.
    fn sum(&self, t: &Table) -> Result<(u64, String), StoreError> {
        let mut h = Xxh3::new();
        let mut n = 0u64;
        self.each_row(t, &mut |row| {
            n += 1;
            for v in row {
                v.hash_into(&mut h);
            }
            Ok(())
        })?;
        Ok((n, format!("{:032x}", h.digest128())))
    }

    /// The first table of the schema that holds rows, with its count.
    fn first_nonempty(&self) -> Result<Option<(&'static str, i64)>, StoreError> {
        for t in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {}", t.name);
            let n: i64 = match self {
                Engine::Lite(s) => s
                    .conn
                    .query_row(&sql, [], |r| r.get(0))
                    .map_err(|e| s.err(e))?,
                #[cfg(feature = "postgres")]
                Engine::Pg(s) => s
                    .inner
                    .conn()?
                    .query_one(sql.as_str(), &[])
                    .map_err(|e| s.inner.err(e))?
                    .get(0),
            };
            if n > 0 {
                return Ok(Some((t.name, n)));
            }
        }
        Ok(None)
    }

    /// Copies every table of `from` into this (empty) store in one
    /// transaction; `progress(table, rows)` after each table.
    fn fill_from(
        &mut self,
        from: &Engine,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<(), StoreError> {
        match self {
            Engine::Lite(s) => {
                let path = s.path.clone();
                let db = |source| StoreError::Database {
                    path: path.clone(),
                    source,
                };
                for t in TABLES {
                    let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
                    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                    let mut st = s
                        .conn
                        .prepare(&format!(
                            "INSERT INTO {} ({}) VALUES ({})",
                            t.name,
                            cols.join(", "),
                            marks.join(", ")
                        ))
                        .map_err(db)?;
                    let mut n = 0u64;
                    from.each_row(t, &mut |row| {
                        let values: Vec<LiteValue> = row.iter().map(Value::to_lite).collect();
                        st.execute(rusqlite::params_from_iter(values)).map_err(db)?;
                        n += 1;
                        Ok(())
                    })?;
                    progress(t.name, n);
                }
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Engine::Pg(s) => {
                use postgres::binary_copy::BinaryCopyInWriter;
                use postgres::types::{ToSql, Type};
                let url = s.inner.url.clone();
                let mut c = s.inner.conn()?;
                let db = |e| crate::postgres::pg_error(&url, e);
                let tx = &mut *c;
                // The months of the source's buckets get their partitions
                // first (the write lock is held since `begin_write`).
                let buckets = TABLES
                    .iter()
                    .find(|t| t.name == "buckets")
                    .expect("buckets");
                let mut starts = Vec::new();
                from.each_row(buckets, &mut |row| {
                    if let Some(Value::Int(start)) = row.first() {
                        starts.push(*start);
                    }
                    Ok(())
                })?;
                crate::postgres::make_partitions(tx, &starts).map_err(db)?;
                for t in TABLES {
                    let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
                    let types: Vec<Type> = t
                        .columns
                        .iter()
                        .map(|(_, k)| match k {
                            Text => Type::TEXT,
                            Int => Type::INT8,
                            Real => Type::FLOAT8,
                            Blob => Type::BYTEA,
                            Bool => Type::BOOL,
                        })
                        .collect();
                    let sink = tx
                        .copy_in(&format!(
                            "COPY {} ({}) FROM STDIN BINARY",
                            t.name,
                            cols.join(", ")
                        ))
                        .map_err(db)?;
                    let mut w = BinaryCopyInWriter::new(sink, &types);
                    let mut n = 0u64;
                    from.each_row(t, &mut |row| {
                        let values: Vec<Box<dyn ToSql + Sync>> = row
                            .iter()
                            .zip(t.columns)
                            .map(|(v, (_, k))| -> Box<dyn ToSql + Sync> {
                                match (v, k) {
                                    (Value::Int(v), _) => Box::new(*v),
                                    (Value::Real(v), _) => Box::new(*v),
                                    (Value::Text(v), _) => Box::new(v.clone()),
                                    (Value::Blob(v), _) => Box::new(v.clone()),
                                    (Value::Bool(v), _) => Box::new(*v),
                                    (Value::Null, Text) => Box::new(None::<String>),
                                    (Value::Null, Int) => Box::new(None::<i64>),
                                    (Value::Null, Real) => Box::new(None::<f64>),
                                    (Value::Null, Blob) => Box::new(None::<Vec<u8>>),
                                    (Value::Null, Bool) => Box::new(None::<bool>),
                                }
                            })
                            .collect();
                        let refs: Vec<&(dyn ToSql + Sync)> =
                            values.iter().map(|b| b.as_ref()).collect();
                        w.write(&refs).map_err(db)?;
                        n += 1;
                        Ok(())
                    })?;
                    w.finish().map_err(db)?;
                    progress(t.name, n);
                }
                Ok(())
            }
        }
    }

    /// Runs `sql` (transaction control) on the store's connection.
    fn control(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Engine::Lite(s) => s.conn.execute_batch(sql).map_err(|e| s.err(e)),
            #[cfg(feature = "postgres")]
            Engine::Pg(s) => s
                .inner
                .conn()?
                .batch_execute(sql)
                .map_err(|e| s.inner.err(e)),
        }
    }

    /// Starts a read-only transaction: every read until [`Self::end`] sees
    /// one state of the store, whatever other processes write meanwhile.
    fn begin_snapshot(&self) -> Result<(), StoreError> {
        match self {
            // A deferred transaction's snapshot is taken at its first read.
            Engine::Lite(_) => self.control("BEGIN; SELECT COUNT(*) FROM settings;"),
            #[cfg(feature = "postgres")]
            // One side idles while the other is read whole (the checks):
            // no idle-in-transaction limit for a copy's own sessions.
            Engine::Pg(_) => self.control(
                "SET idle_in_transaction_session_timeout = 0;
                 BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT COUNT(*) FROM settings;",
            ),
        }
    }

    /// Starts the write transaction, holding the store's write lock (as a
    /// run's write does), so nothing else writes until it ends.
    fn begin_write(&self) -> Result<(), StoreError> {
        match self {
            Engine::Lite(_) => self.control("BEGIN IMMEDIATE"),
            #[cfg(feature = "postgres")]
            Engine::Pg(_) => self.control(&format!(
                "SET idle_in_transaction_session_timeout = 0;
                 BEGIN; SELECT pg_advisory_xact_lock({})",
                crate::PgStore::WRITE_LOCK
            )),
        }
    }

    /// Ends the transaction: committed, or rolled back.
    fn end(&self, commit: bool) -> Result<(), StoreError> {
        self.control(if commit { "COMMIT" } else { "ROLLBACK" })
    }
}

/// Inside the destination's write transaction: refuses a destination that
/// holds rows, copies, then compares every table of the source's snapshot
/// with what the transaction wrote (before it commits).
fn fill_and_check(
    source: &Engine,
    dest: &mut Engine,
    to: &Locator,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Vec<TableCopy>, StoreError> {
    if let Some((table, n)) = dest.first_nonempty()? {
        return Err(StoreError::CopyTarget {
            to: to.to_string(),
            why: format!("it is not empty ({table} holds {n} rows)"),
        });
    }
    dest.fill_from(source, progress)?;
    let mut out = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        let (rows, checksum) = source.sum(t)?;
        let there = dest.sum(t)?;
        if there != (rows, checksum.clone()) {
            return Err(StoreError::CopyMismatch {
                table: t.name,
                from: format!("{rows} rows, {checksum}"),
                to: format!("{} rows, {}", there.0, there.1),
            });
        }
        out.push(TableCopy {
            table: t.name,
            rows,
            checksum,
        });
    }
    Ok(out)
}

/// Copies the whole store at `from` into the empty store at `to` (either
/// engine each; both are created or migrated first), in one transaction,
/// then reads both again and compares every table's row count and
/// checksum. `progress(table, rows)` is called after each table's copy.
///
/// Errors: [`StoreError::CopyTarget`] when `to` is `from` or holds rows
/// (nothing is written then); [`StoreError::CopyMismatch`] when a table
/// differs after the copy; the engines' errors otherwise (a failed copy
/// writes nothing: its transaction rolls back).
pub fn copy(
    from: &Locator,
    to: &Locator,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Vec<TableCopy>, StoreError> {
    if from == to {
        return Err(StoreError::CopyTarget {
            to: to.to_string(),
            why: "it is the source".into(),
        });
    }
    let source = Engine::open(from)?;
    let mut dest = Engine::open(to)?;
    source.begin_snapshot()?;
    dest.begin_write()?;
    let copied = fill_and_check(&source, &mut dest, to, progress);
    // Nothing of a refused or failed copy stays: the write rolls back.
    let ended = dest.end(copied.is_ok());
    let _ = source.end(false);
    let out = copied?;
    ended?;
    Ok(out)
}
