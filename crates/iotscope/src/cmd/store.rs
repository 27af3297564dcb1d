//! `iotscope store`: moving a whole store between engines.

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
}

pub fn run(c: StoreCommand) -> anyhow::Result<ExitCode> {
    let StoreCommand::Copy { from, to, format } = c;
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
