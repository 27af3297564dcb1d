//! Loading, checking and removing the table through the `nft` program
//! (nftables 1.0: `nft -c -f` checks a script against the running kernel
//! without changing anything; `nft -f` applies a script as one
//! transaction). Behind [`Netfilter`] so the safety rules of apply, remove
//! and rollback are tested without a kernel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ruleset::{replace_script, Plan, OWNER, TABLE};

/// Why the gateway could not change or read the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be run.
    #[error("cannot run {program}: {source} (install nftables: apt-get install nftables)")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// `nft` refused the script or the command.
    #[error("nft {what}: {message}")]
    Refused {
        /// What was asked (`-c -f`, `list table`).
        what: String,
        /// nft's own message.
        message: String,
    },
    /// A table `inet iotscope` exists that this program did not make.
    #[error("table {TABLE} exists but was not made by iotscope gateway (no comment \"{OWNER}\"): it is left alone; rename ours or remove it yourself")]
    NotOurs,
    /// The state folder.
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The table would cut a management connection.
    #[error(
        "refusing: the kept table would cut the management connection from {addr} to port {port}"
    )]
    CutsManagement {
        /// The client.
        addr: std::net::IpAddr,
        /// The gateway's port.
        port: u16,
    },
    /// The kept file is not one table of ours.
    #[error("{0} is not one `table inet iotscope` block made by iotscope gateway: not loaded")]
    NotATable(PathBuf),
    /// Nothing to roll back to.
    #[error("no previous ruleset in {0}: nothing to roll back to")]
    NoPrevious(PathBuf),
}

/// The netfilter the gateway talks to.
pub trait Netfilter {
    /// Runs a script: checks it only (`nft -c -f`) or applies it (`nft -f`).
    ///
    /// Errors: [`NftError::Refused`] with nft's message.
    fn run(&self, script: &str, check_only: bool) -> Result<(), NftError>;

    /// The table as text (`nft list table inet iotscope`), or as JSON
    /// (`nft -j`); `None` when it does not exist.
    ///
    /// Errors: [`NftError::Refused`] for any other failure.
    fn list_table(&self, json: bool) -> Result<Option<String>, NftError>;
}

/// The `nft` program.
#[derive(Clone, Debug)]
pub struct NftCli {
    /// Its path (`nft` on the PATH by default).
    pub program: PathBuf,
}

impl Default for NftCli {
    fn default() -> Self {
        NftCli {
            program: PathBuf::from("nft"),
        }
    }
}

impl NftCli {
    fn spawn_err(&self, source: std::io::Error) -> NftError {
        NftError::Spawn {
            program: self.program.display().to_string(),
            source,
        }
    }
}

impl Netfilter for NftCli {
    fn run(&self, script: &str, check_only: bool) -> Result<(), NftError> {
        let mut cmd = Command::new(&self.program);
        if check_only {
            cmd.arg("-c");
        }
        let mut child = cmd
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_err(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| self.spawn_err(e))?;
        }
        let out = child.wait_with_output().map_err(|e| self.spawn_err(e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::Refused {
                what: if check_only { "-c -f" } else { "-f" }.into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    fn list_table(&self, json: bool) -> Result<Option<String>, NftError> {
        let mut cmd = Command::new(&self.program);
        if json {
            cmd.arg("-j");
        }
        let out = cmd
            .args(["list", "table", "inet", "iotscope"])
            .output()
            .map_err(|e| self.spawn_err(e))?;
        if out.status.success() {
            return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
        }
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if message.contains("No such file or directory") {
            return Ok(None);
        }
        Err(NftError::Refused {
            what: "list table inet iotscope".into(),
            message,
        })
    }
}

/// True when a listing of the table carries the owner's comment as the
/// table's own comment (the line after `table inet iotscope {`; a chain's
/// comment further down does not count).
pub fn is_ours(listing: &str) -> bool {
    let mut lines = listing.lines().filter(|l| !l.trim().is_empty());
    lines.next().map(str::trim_end) == Some("table inet iotscope {")
        && lines.next().map(str::trim) == Some(format!("comment \"{OWNER}\"").as_str())
}

/// True when `text` is one `table inet iotscope { ... }` block and nothing
/// else: every other top-level line would run as a command of its own (a
/// kept file that says `delete table ip other` must not be loaded).
pub fn single_table(text: &str) -> bool {
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('\t') && !l.starts_with(' '))
        .collect();
    top == ["table inet iotscope {", "}"]
}

/// Whether a listing of our table lets `src` reach the gateway's TCP
/// `port` by its management rule: the `mgmt_v4`/`mgmt_v6` elements
/// (addresses, prefixes, ranges as nft prints them) and the ports of the
/// rule commented `management`.
pub fn listing_admits(listing: &str, src: std::net::IpAddr, port: u16) -> bool {
    let set = if src.is_ipv4() {
        "set mgmt_v4 {"
    } else {
        "set mgmt_v6 {"
    };
    let mut in_set = false;
    let mut elements = String::new();
    let mut in_elements = false;
    for l in listing.lines() {
        let t = l.trim();
        if t == set {
            in_set = true;
            continue;
        }
        if in_set {
            if let Some(rest) = t.strip_prefix("elements = {") {
                in_elements = true;
                elements.push_str(rest);
            } else if in_elements {
                elements.push(' ');
                elements.push_str(t);
            }
            if in_elements && t.ends_with('}') {
                break;
            }
            if !in_elements && t == "}" {
                break;
            }
        }
    }
    let ip_in = |tok: &str| -> bool {
        let tok = tok.trim();
        if let Some((a, b)) = tok.split_once('-') {
            return match (
                a.trim().parse::<std::net::IpAddr>(),
                b.trim().parse::<std::net::IpAddr>(),
            ) {
                (Ok(a), Ok(b)) => a <= src && src <= b,
                _ => false,
            };
        }
        tok.parse::<iotscope_telescope::Prefix>()
            .is_ok_and(|p| p.contains(iotscope_wire::Addr::from(src)))
    };
    let admitted_src = elements.trim_end_matches('}').split(',').any(ip_in);
    let ports_ok = listing.lines().any(|l| {
        if !l.contains("comment \"management\"") {
            return false;
        }
        let Some(after) = l.split("tcp dport ").nth(1) else {
            return false;
        };
        let list = match after.strip_prefix('{') {
            Some(rest) => rest.split('}').next().unwrap_or(""),
            None => after.split_whitespace().next().unwrap_or(""),
        };
        list.split(',').any(|p| p.trim().parse::<u16>() == Ok(port))
    });
    admitted_src && ports_ok
}

/// The file that keeps the ruleset before the last apply.
pub fn previous_path(state_dir: &Path) -> PathBuf {
    state_dir.join("previous.nft")
}

/// The file that keeps the structure ([`Plan::structure`]) of the table
/// the last `apply` loaded: `refresh` may only change sets' elements.
pub fn structure_path(state_dir: &Path) -> PathBuf {
    state_dir.join("applied.structure")
}

/// Our table as it stands, if any.
///
/// Errors: [`NftError::NotOurs`] when a table of that name is someone
/// else's.
pub fn current(nf: &dyn Netfilter) -> Result<Option<String>, NftError> {
    match nf.list_table(false)? {
        Some(t) if !is_ours(&t) => Err(NftError::NotOurs),
        other => Ok(other),
    }
}

fn write_state(path: &Path, text: &str) -> Result<(), NftError> {
    let fail = |source| NftError::State {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// What `apply` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// A previous table was kept for rollback.
    pub kept_previous: bool,
}

/// Checks the plan with `nft -c`, keeps the table in force (if ours) for
/// [`rollback`], and loads the plan in one transaction.
///
/// Errors: [`NftError::NotOurs`]; [`NftError::Refused`] from the check
/// (nothing was changed then); [`NftError::State`] when the previous table
/// cannot be kept (nothing was changed then either).
pub fn apply(nf: &dyn Netfilter, plan: &Plan, state_dir: &Path) -> Result<Applied, NftError> {
    let before = current(nf)?;
    let mut script = plan.apply_script();
    // Hosts in quarantine stay there for the time they have left: a new
    // table must not release a scanner.
    if before.is_some() {
        if let Some(json) = nf.list_table(true)? {
            if let Ok(st) = crate::status::parse_table(&json) {
                script.push_str(&carry_quarantine(&st.quarantined));
            }
        }
    }
    nf.run(&script, true)?;
    if let Some(t) = &before {
        write_state(&previous_path(state_dir), t)?;
    }
    nf.run(&script, false)?;
    write_state(&structure_path(state_dir), &plan.structure())?;
    Ok(Applied {
        kept_previous: before.is_some(),
    })
}

/// `add element` lines that put quarantined hosts back with the time they
/// have left (at least one second).
pub fn carry_quarantine(hosts: &[crate::status::Quarantined]) -> String {
    let mut s = String::new();
    for q in hosts {
        let Ok(ip) = q.address.parse::<std::net::IpAddr>() else {
            continue;
        };
        let fam = if ip.is_ipv4() { "v4" } else { "v6" };
        s.push_str(&format!(
            "add element {TABLE} quarantine_{fam} {{ {ip} timeout {}s }}\n",
            q.expires_s.max(1)
        ));
    }
    s
}

/// Loads the table kept by the last [`apply`] (and keeps the one it
/// replaces in its place, so a second rollback undoes the first).
///
/// Errors: [`NftError::NoPrevious`], [`NftError::NotOurs`], or nft's.
pub fn rollback(
    nf: &dyn Netfilter,
    state_dir: &Path,
    keep: &[(std::net::IpAddr, u16)],
) -> Result<(), NftError> {
    let path = previous_path(state_dir);
    let previous = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NftError::NoPrevious(path))
        }
        Err(source) => return Err(NftError::State { path, source }),
    };
    if !is_ours(&previous) || !single_table(&previous) {
        return Err(NftError::NotATable(path));
    }
    for &(addr, port) in keep {
        if !listing_admits(&previous, addr, port) {
            return Err(NftError::CutsManagement { addr, port });
        }
    }
    let before = current(nf)?;
    let script = replace_script(&previous);
    nf.run(&script, true)?;
    if let Some(t) = &before {
        write_state(&path, t)?;
    }
    nf.run(&script, false)?;
    // The loaded table is no longer the one the configuration makes:
    // `refresh` waits for the next apply.
    match std::fs::remove_file(structure_path(state_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NftError::State {
            path: structure_path(state_dir),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Deletes the table, if it is there and ours; returns whether it was.
///
/// Errors: [`NftError::NotOurs`], or nft's.
pub fn remove(nf: &dyn Netfilter) -> Result<bool, NftError> {
    match current(nf)? {
        Some(_) => {
            nf.run(&format!("delete table {TABLE}\n"), false)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A netfilter in memory: the table text, and every script it ran.
    #[derive(Default)]
    pub struct Fake {
        pub table: RefCell<Option<String>>,
        pub ran: RefCell<Vec<(String, bool)>>,
        pub refuse: bool,
    }

    impl Netfilter for Fake {
        fn run(&self, script: &str, check_only: bool) -> Result<(), NftError> {
            self.ran.borrow_mut().push((script.to_string(), check_only));
            if self.refuse {
                return Err(NftError::Refused {
                    what: "-c -f".into(),
                    message: "syntax error".into(),
                });
            }
            if !check_only {
                *self.table.borrow_mut() = script
                    .find("table inet iotscope {")
                    .map(|i| script[i..].to_string());
            }
            Ok(())
        }
        fn list_table(&self, _json: bool) -> Result<Option<String>, NftError> {
            Ok(self.table.borrow().clone())
        }
    }

    fn plan(marker: &str) -> Plan {
        Plan {
            table: format!("table inet iotscope {{\n\tcomment \"{OWNER}\"\n\t# {marker}\n}}\n"),
            sets: vec![],
            refused: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn apply_keeps_the_previous_table_and_rollback_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let nf = Fake::default();
        assert!(!apply(&nf, &plan("one"), dir.path()).unwrap().kept_previous);
        assert!(apply(&nf, &plan("two"), dir.path()).unwrap().kept_previous);
        assert!(nf.table.borrow().as_ref().unwrap().contains("# two"));
        assert!(structure_path(dir.path()).exists());
        rollback(&nf, dir.path(), &[]).unwrap();
        // The loaded table is no longer the configuration's: refresh waits.
        assert!(!structure_path(dir.path()).exists());
        assert!(nf.table.borrow().as_ref().unwrap().contains("# one"));
        // A second rollback undoes the first.
        rollback(&nf, dir.path(), &[]).unwrap();
        assert!(nf.table.borrow().as_ref().unwrap().contains("# two"));
        // Every load was checked first.
        let ran = nf.ran.borrow();
        assert!(ran.chunks(2).all(|w| w[0].1 && !w[1].1 && w[0].0 == w[1].0));
    }

    #[test]
    fn rollback_loads_only_one_table_of_ours_that_keeps_management() {
        let dir = tempfile::tempdir().unwrap();
        let nf = Fake::default();
        let ours = format!("table inet iotscope {{\n\tcomment \"{OWNER}\"\n\tset mgmt_v4 {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {{ 198.18.1.2, 198.18.2.0/24,\n\t\t\t     198.18.3.1-198.18.3.9 }}\n\t}}\n\tchain input {{\n\t\tip saddr @mgmt_v4 tcp dport {{ 22, 2222 }} counter packets 0 bytes 0 accept comment \"management\"\n\t}}\n}}\n");
        std::fs::write(
            previous_path(dir.path()),
            format!("{ours}delete table ip other\n"),
        )
        .unwrap();
        assert!(matches!(
            rollback(&nf, dir.path(), &[]),
            Err(NftError::NotATable(_))
        ));
        std::fs::write(previous_path(dir.path()), &ours).unwrap();
        for ok in ["198.18.1.2", "198.18.2.77", "198.18.3.5"] {
            assert!(listing_admits(&ours, ok.parse().unwrap(), 2222), "{ok}");
        }
        assert!(!listing_admits(&ours, "198.18.3.10".parse().unwrap(), 22));
        assert!(!listing_admits(&ours, "198.18.1.2".parse().unwrap(), 80));
        let cut = [("198.18.1.50".parse().unwrap(), 22)];
        assert!(matches!(
            rollback(&nf, dir.path(), &cut),
            Err(NftError::CutsManagement { .. })
        ));
        assert!(nf.ran.borrow().is_empty());
        rollback(&nf, dir.path(), &[("198.18.1.2".parse().unwrap(), 22)]).unwrap();
    }

    #[test]
    fn a_chain_comment_does_not_make_a_table_ours() {
        let theirs =
            format!("table inet iotscope {{\n\tchain c {{\n\t\tcomment \"{OWNER}\"\n\t}}\n}}\n");
        assert!(!is_ours(&theirs));
    }

    #[test]
    fn someone_elses_table_is_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        let nf = Fake::default();
        *nf.table.borrow_mut() = Some("table inet iotscope {\n\tchain x {\n\t}\n}\n".into());
        assert!(matches!(
            apply(&nf, &plan("one"), dir.path()),
            Err(NftError::NotOurs)
        ));
        assert!(matches!(remove(&nf), Err(NftError::NotOurs)));
        assert!(nf.ran.borrow().is_empty());
    }

    #[test]
    fn a_refused_check_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let nf = Fake {
            refuse: true,
            ..Default::default()
        };
        assert!(apply(&nf, &plan("one"), dir.path()).is_err());
        assert_eq!(nf.ran.borrow().len(), 1);
        assert!(nf.ran.borrow()[0].1, "only the check ran");
        assert!(!previous_path(dir.path()).exists());
    }
}
