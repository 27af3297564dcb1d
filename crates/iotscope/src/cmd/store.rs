//! `iotscope store`: moving a whole store between engines, and forwarding
//! a sensor's spool.

use std::ffi::OsString;
use std::process::ExitCode;

use iotscope_store::Locator;

#[derive(clap::Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy a whole store into an empty one, either engine each (SQLite to
    /// PostgreSQL when one machine is outgrown, and back), in one
    /// transaction; then every table's row count and checksum are compared
    /// on both sides. Exit 2 when the destination holds rows or a table
    /// differs.
    Copy {
        /// The source: a path, `sqlite:PATH` or a `postgres://` URL.
        #[arg(long, value_name = "STORE")]
        from: OsString,
        /// The destination (created or migrated; must hold no rows).
        #[arg(long, value_name = "STORE")]
        to: OsString,
        /// `text` or `json` (`from`, `to`, `tables`: `table`, `rows`,
        /// `checksum`).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Remove telescope periods wholly past their tier's retention: a finer
    /// tier only where a coarser tier the store keeps holds them (buckets
    /// where hourly or daily rollups do, hours where days do), so reports
    /// then read the tier that still holds a period and say so; the
    /// coarsest tier the store keeps (days; the buckets themselves in a
    /// store whose buckets roll up into nothing, such as 7m or 1d ones)
    /// loses its periods for good. Durations: `--keep-bucket` and the
    /// others, else `[store.retention]` in the config; a tier with neither
    /// is kept for ever. Other tables (files, capture loss, survey, alerts)
    /// stay.
    Prune {
        /// The store (default: the config's [store] db).
        #[arg(long, value_name = "STORE")]
        db: Option<OsString>,
        /// Keep the store's own buckets this long (e.g. 30d).
        #[arg(long, value_name = "DURATION")]
        keep_bucket: Option<String>,
        /// Keep hourly rollups this long (e.g. 2years).
        #[arg(long, value_name = "DURATION")]
        keep_hour: Option<String>,
        /// Keep daily rollups this long (their removal is for good).
        #[arg(long, value_name = "DURATION")]
        keep_day: Option<String>,
        /// The time ages are measured from (RFC 3339 or a date; default:
        /// now). Replayed old captures are as old as their frames.
        #[arg(long, value_name = "T")]
        now: Option<String>,
        /// `text` or `json` (`db`, `now`, `tiers`: `tier`, `before`,
        /// `periods`).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Forward what waits in a sensor's or a honeypot's spool (`sensor
    /// --spool`, `honeypot --spool`: telescope runs, honeypot sessions) to a
    /// store, oldest first, each once; stops at the first the store refuses
    /// (exit 2; it and the later ones stay in the spool); a damaged entry is
    /// set aside in the spool and said.
    Forward {
        /// The spool file.
        #[arg(long, value_name = "PATH")]
        spool: std::path::PathBuf,
        /// The store: a path, `sqlite:PATH` or a `postgres://` URL (default:
        /// the config's [store] db; there is no other default).
        #[arg(long, value_name = "STORE")]
        db: Option<OsString>,
        /// `text` or `json` (`spool`, `db`, `forwarded`, `already_stored`,
        /// `set_aside`, `waiting`).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

pub fn run(c: StoreCommand, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let (from, to, format) = match c {
        StoreCommand::Copy { from, to, format } => (from, to, format),
        StoreCommand::Forward { spool, db, format } => {
            // No default file: a spool forwarded into a store nobody named
            // would look forwarded and be nowhere anyone reads.
            let Some(db) = db.or(cfg.store.db.clone().map(std::path::PathBuf::into_os_string))
            else {
                anyhow::bail!(
                    "give the store to forward into: --db STORE (or [store] db in the config)"
                );
            };
            return forward(&spool, &db, &format);
        }
        StoreCommand::Prune {
            db,
            keep_bucket,
            keep_hour,
            keep_day,
            now,
            format,
        } => {
            let r = &cfg.store.retention;
            let from = |flag: &'static str,
                        key: &'static str,
                        given: Option<String>,
                        cfg: &Option<String>| {
                match given {
                    Some(t) => (flag, Some(t)),
                    None => (key, cfg.clone()),
                }
            };
            return prune(
                db,
                [
                    from(
                        "--keep-bucket",
                        "[store.retention] bucket",
                        keep_bucket,
                        &r.bucket,
                    ),
                    from("--keep-hour", "[store.retention] hour", keep_hour, &r.hour),
                    from("--keep-day", "[store.retention] day", keep_day, &r.day),
                ],
                now,
                &format,
                cfg,
            );
        }
    };
    let (from, to) = (Locator::parse(&from), Locator::parse(&to));
    anyhow::ensure!(from.exists()?, "no store at {from}");
    let started = std::time::Instant::now();
    let tables = iotscope_store::copy(&from, &to, &mut |table, rows| {
        eprintln!("iotscope store copy: {table}: {rows} rows");
    })?;
    let rows: u64 = tables.iter().map(|t| t.rows).sum();
    if format == "json" {
        let out = serde_json::json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "tables": tables.iter().map(|t| serde_json::json!({
                "table": t.table, "rows": t.rows, "checksum": t.checksum,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for t in &tables {
            println!("{:<22} {:>12} rows  {}", t.table, t.rows, t.checksum);
        }
    }
    eprintln!(
        "iotscope store copy: {rows} rows in {} tables from {from} to {to} in {:.1} s; counts and checksums agree",
        tables.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `store forward`.
fn forward(path: &std::path::Path, db: &OsString, format: &str) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(path.is_file(), "no spool at {}", path.display());
    super::spool_apart(std::path::Path::new(db), path)?;
    // The bound only limits pushes; forwarding takes what is there.
    let mut spool = iotscope_store::Spool::open(path, u64::MAX)?;
    let locator = Locator::parse(db);
    if spool.waiting()?.0 == 0 {
        // Nothing to forward: no store is made or migrated for it.
        if format == "json" {
            println!(
                "{}",
                serde_json::json!({"spool": path.display().to_string(), "db": locator.to_string(),
                    "forwarded": 0, "already_stored": 0, "set_aside": 0, "waiting": 0})
            );
        } else {
            println!("0 entries forwarded (the spool is empty)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut store = iotscope_store::open(&locator)?;
    let (mut forwarded, mut already, mut aside) = (0u64, 0u64, 0u64);
    let result = spool.forward(
        |item| iotscope_store::save_spooled_item(store.as_mut(), item),
        None,
        |s| {
            if let Some(why) = &s.set_aside {
                aside += 1;
                eprintln!(
                    "iotscope store forward: entry {} (spooled {}) set aside, not forwarded: {why}",
                    s.seq, s.queued_at
                );
                return;
            }
            forwarded += 1;
            already += s.already_stored as u64;
            eprintln!(
                "iotscope store forward: entry {} (spooled {}){}",
                s.seq,
                s.queued_at,
                if s.already_stored {
                    ": the store had it already"
                } else {
                    ""
                }
            );
        },
    );
    let waiting = spool.waiting()?.0;
    if format == "json" {
        println!(
            "{}",
            serde_json::json!({
                "spool": path.display().to_string(),
                "db": locator.to_string(),
                "forwarded": forwarded,
                "already_stored": already,
                "set_aside": aside,
                "waiting": waiting,
            })
        );
    } else {
        println!(
            "{forwarded} entries forwarded to {locator} ({already} the store had already), {aside} set aside as damaged, {waiting} waiting"
        );
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `store prune`.
fn prune(
    db: Option<OsString>,
    keeps: [(&str, Option<String>); 3],
    now: Option<String>,
    format: &str,
    cfg: &crate::config::Config,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let mut retention = iotscope_store::Retention::default();
    // `flag`: the flag or the config key the duration came from.
    for (i, (flag, text)) in keeps.into_iter().enumerate() {
        retention.keep_ns[i] = text
            .map(|t| {
                humantime::parse_duration(t.trim())
                    .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
                    .with_context(|| {
                        format!("{flag} {t:?} is not a duration such as 30d or 2years")
                    })
            })
            .transpose()?;
    }
    anyhow::ensure!(
        retention.keep_ns.iter().any(Option::is_some),
        "give how long to keep a tier: --keep-bucket, --keep-hour or --keep-day (or [store.retention])"
    );
    let now_ns = match &now {
        Some(t) => iotscope_telescope::time::parse_rfc3339(t).with_context(|| {
            format!(
                "--now {t:?} is not a time such as 2016-10-01T00:00:00Z or a date from 1970 to 2262"
            )
        })?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64),
    };
    let path = match db {
        Some(d) => std::path::PathBuf::from(d),
        None => cfg.db_path(None),
    };
    let mut store = super::open_existing(&path)?;
    let cov = store.coverage()?;
    for (i, t) in iotscope_store::Tier::ALL.into_iter().enumerate() {
        if retention.keep_ns[i].is_some() && cov.from_ns[i].is_none() {
            eprintln!(
                "iotscope store prune: this store keeps no {} tier (its {} s buckets do not roll up into it): nothing to keep or remove there",
                t.name(),
                cov.bucket_ns as f64 / 1e9
            );
        }
    }
    // The coarsest tier the store keeps loses its periods for good.
    let last = iotscope_store::Tier::ALL
        .into_iter()
        .rfind(|t| cov.from_ns[t.index()].is_some());
    let pruned = store.prune(&retention, now_ns)?;
    let when = iotscope_telescope::time::rfc3339;
    if format == "json" {
        println!(
            "{}",
            serde_json::json!({
                "db": super::shown(&path),
                "now": when(now_ns),
                "tiers": pruned.iter().map(|p| serde_json::json!({
                    "tier": p.tier.name(),
                    "before": when(p.before_ns),
                    "periods": p.periods,
                    // No coarser tier holds what it lost.
                    "for_good": Some(p.tier) == last,
                })).collect::<Vec<_>>(),
            })
        );
    } else {
        for p in &pruned {
            println!(
                "{:<7} {:>9} periods removed{}; kept from {}",
                p.tier.name(),
                p.periods,
                if Some(p.tier) == last {
                    " for good (no coarser tier holds them)"
                } else {
                    ""
                },
                when(p.before_ns)
            );
        }
        if pruned.is_empty() {
            println!("nothing to remove");
        }
    }
    Ok(ExitCode::SUCCESS)
}
