//! What the process asks of the operating system.

/// Raises the soft open-file limit towards `wanted` (up to the hard
/// limit); returns the soft limit in force afterwards (`wanted` when it
/// cannot be read, so callers do not shrink for nothing).
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return wanted;
        }
        if lim.rlim_cur >= wanted {
            return lim.rlim_cur;
        }
        let target = wanted.min(lim.rlim_max);
        let new = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
            return lim.rlim_cur;
        }
        target
    }
}

/// Resolves at SIGINT, SIGTERM, or after `limit` when given: how a
/// long-running command (a lab, a honeypot) is told to stop.
pub async fn stop_signal(limit: Option<std::time::Duration>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let timer = async {
        match limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = timer => {}
    }
}
