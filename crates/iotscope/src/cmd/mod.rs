//! One module per top-level command.

pub mod advisories;
pub mod alerts;
pub mod blocklist;
pub mod check;
pub mod checks;
pub mod demo;
pub mod detect;
pub mod enrich;
pub mod findings;
pub mod gateway;
pub mod honeypot;
pub mod lab;
pub mod sensor;
pub mod serve;
pub mod share;
pub mod store;
pub mod survey;
pub mod telescope;
pub mod users;

/// A store: SQLite by default, PostgreSQL for a `postgres://` URL.
pub(crate) type StoreBox = Box<dyn iotscope_store::Store + Send>;

/// Opens (creating if needed) the store `db` names: an SQLite file path,
/// `sqlite:PATH`, or a `postgres://` URL (see [`iotscope_store::Locator`]).
pub(crate) fn open_store(db: &std::path::Path) -> anyhow::Result<StoreBox> {
    Ok(iotscope_store::open(&iotscope_store::Locator::parse(
        db.as_os_str(),
    ))?)
}

/// Opens the store `db` names, which must exist already (a command that
/// only reads or adds to a store never makes an empty one; a PostgreSQL
/// database is made by its administrator).
pub(crate) fn open_existing(db: &std::path::Path) -> anyhow::Result<StoreBox> {
    let at = iotscope_store::Locator::parse(db.as_os_str());
    anyhow::ensure!(at.exists()?, "no store at {at}");
    Ok(iotscope_store::open(&at)?)
}

/// Refuses a spool file that is the store itself (`--db X --spool X`):
/// checked before either is opened, so neither file is made or changed.
pub(crate) fn spool_apart(db: &std::path::Path, spool: &std::path::Path) -> anyhow::Result<()> {
    let iotscope_store::Locator::Sqlite(store) = iotscope_store::Locator::parse(db.as_os_str())
    else {
        return Ok(());
    };
    let full = |p: &std::path::Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.to_path_buf()))
    };
    anyhow::ensure!(
        full(&store) != full(spool),
        "--spool {} is the store itself: give the spool a file of its own",
        spool.display()
    );
    Ok(())
}

/// How `db` is shown in messages: a URL without its password.
pub(crate) fn shown(db: &std::path::Path) -> String {
    iotscope_store::Locator::parse(db.as_os_str()).to_string()
}

/// The store `--db` (or `[store] db`) names, which must exist already.
pub(crate) fn existing_store(
    db: Option<std::path::PathBuf>,
    cfg: &crate::config::Config,
) -> anyhow::Result<StoreBox> {
    use anyhow::Context;
    let db = db
        .or_else(|| cfg.store.db.clone())
        .context("give --db (or [store] db in the config)")?;
    open_existing(&db)
}

/// `--since` and `--until` as ns since the epoch, the first before the
/// second; `what` ends the error for an empty period ("reports nothing").
pub(crate) fn period(
    since: &Option<String>,
    until: &Option<String>,
    what: &str,
) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    use anyhow::Context;
    let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|t| {
                iotscope_telescope::time::parse_rfc3339(t).with_context(|| {
                    format!("--{flag} {t:?} is not RFC 3339 (2016-10-01T00:00:00Z) or a date")
                })
            })
            .transpose()
    };
    let (a, b) = (time("since", since)?, time("until", until)?);
    if let (Some(x), Some(y)) = (a, b) {
        anyhow::ensure!(
            x < y,
            "--since must be before --until (an empty period {what} nothing)"
        );
    }
    Ok((a, b))
}
