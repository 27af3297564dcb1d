//! Helpers shared by the end-to-end tests that use outside tools.

use std::process::{Command, Stdio};

/// True when `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Says why a test does nothing; fails instead when IOTSCOPE_REQUIRE_TOOLS
/// is set (as `.ci/run` does), so CI never passes by skipping.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("IOTSCOPE_REQUIRE_TOOLS").is_none(),
        "IOTSCOPE_REQUIRE_TOOLS is set but {why}"
    );
    eprintln!("skipped: {why}");
}

/// The effective user id (`id -u`; the binary crate carries no libc for tests).
#[allow(dead_code)]
pub fn effective_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(u32::MAX)
}
