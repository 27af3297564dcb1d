//! `iotscope serve`: the dashboard and JSON API over a store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The store (default: the config's [store] db, else ./iotscope.db).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Address and port to listen on (default: the config's [web] listen, else 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Self-check requests one client address may make per minute; 0: no limit
    /// (default: the config's [web] check_per_minute, else 60).
    #[arg(long)]
    check_per_minute: Option<u32>,
}

/// The dashboard's settings from the config, the flags and the store.
pub fn settings(
    db: PathBuf,
    listen: SocketAddr,
    check_per_minute: Option<u32>,
    cfg: &crate::config::Config,
) -> anyhow::Result<iotscope_web::Settings> {
    Ok(iotscope_web::Settings {
        db,
        isps: cfg.isp.clone(),
        asn: cfg.enrich.load_asn()?,
        geo: cfg.enrich.load_geo()?,
        check_per_minute: check_per_minute.or(cfg.web.check_per_minute).unwrap_or(60),
        login_per_minute: 20,
        // Secure cookies need TLS; on loopback a browser may speak plain HTTP.
        secure_cookies: cfg.web.secure_cookies.unwrap_or(!listen.ip().is_loopback()),
        session_ttl: Duration::from_secs(3600 * cfg.web.session_hours.unwrap_or(12)),
        trusted_proxies: cfg.web.trusted_proxies.clone(),
        research: super::detect::research(&cfg.detect, &[])?,
    })
}

/// Serves `router` on `listen` until Ctrl-C or SIGTERM.
pub fn run_server(
    listen: SocketAddr,
    router: iotscope_web::Router,
    trusted_proxies: &[String],
) -> anyhow::Result<()> {
    let proxies = iotscope_web::client::Proxies::parse(trusted_proxies)
        .map_err(|e| anyhow::anyhow!("[web] {e}"))?;
    // Every connection holds a descriptor: raise the soft limit, and keep
    // the connection cap under it with room for the store and the logs.
    let files = crate::sys::raise_open_file_limit(iotscope_web::MAX_CONNECTIONS as u64 + 256);
    let options = iotscope_web::ServeOptions {
        proxies,
        max_connections: (files.saturating_sub(64) as usize).min(iotscope_web::MAX_CONNECTIONS),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        // The bound address (port 0 picks a free one): tests and scripts read it here.
        eprintln!(
            "iotscope serve: listening on http://{}/",
            listener.local_addr()?
        );
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        iotscope_web::serve(listener, router, options, shutdown).await?;
        anyhow::Ok(())
    })
}

pub fn run(a: ServeArgs, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let db =
        a.db.or_else(|| cfg.store.db.clone())
            .unwrap_or_else(|| PathBuf::from("iotscope.db"));
    anyhow::ensure!(
        iotscope_store::Locator::parse(db.as_os_str()).exists()?,
        "no store at {} (give --db; `iotscope demo` makes one)",
        super::shown(&db)
    );
    let listen = a
        .listen
        .or(cfg.web.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".parse().unwrap());
    let settings = settings(db.clone(), listen, a.check_per_minute, cfg)?;
    let router = iotscope_web::router(settings)?;
    eprintln!("iotscope serve: store {}; Ctrl-C stops", super::shown(&db));
    run_server(listen, router, &cfg.web.trusted_proxies)?;
    Ok(ExitCode::SUCCESS)
}
