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
    /// Forward the runs waiting in a sensor's spool (`sensor --spool`) to a
    /// store, oldest first, each once; stops at the first the store refuses
    /// (exit 2; it and the later ones stay in the spool).
    Forward {
        /// The spool file.
        #[arg(long, value_name = "PATH")]
        spool: std::path::PathBuf,
        /// The store: a path, `sqlite:PATH` or a `postgres://` URL.
        #[arg(long, value_name = "STORE")]
        db: OsString,
        /// `text` or `json` (`spool`, `db`, `forwarded`, `already_stored`,
        /// `waiting`).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

pub fn run(c: StoreCommand) -> anyhow::Result<ExitCode> {
    let (from, to, format) = match c {
        StoreCommand::Copy { from, to, format } => (from, to, format),
        StoreCommand::Forward { spool, db, format } => return forward(&spool, &db, &format),
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
    // The bound only limits pushes; forwarding takes what is there.
    let mut spool = iotscope_store::Spool::open(path, u64::MAX)?;
    let locator = Locator::parse(db);
    let mut store = iotscope_store::open(&locator)?;
    let (mut forwarded, mut already) = (0u64, 0u64);
    let result = spool.forward(
        |r, f| store.save_spooled(r, f),
        None,
        |s| {
            forwarded += 1;
            already += s.already_stored as u64;
            eprintln!(
                "iotscope store forward: run {} (spooled {}){}",
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
                "waiting": waiting,
            })
        );
    } else {
        println!("{forwarded} runs forwarded ({already} the store had already), {waiting} waiting");
    }
    result?;
    Ok(ExitCode::SUCCESS)
}
