//! What `survey --resume` keeps between an interrupted run and the run that
//! continues it, so that the two together probe exactly the pairs one
//! uninterrupted run would: each once, none missed, none twice.
//!
//! Invariants: the probe order is a function of the target set, the ports,
//! the seed and the shard, and the target set is a function of the targets
//! and of what the exclusion files *contained* when the plan was made; so
//! the state records those contents (entries and SHA-256), not the files'
//! paths, and the resumed run rebuilds the very same plan from them. The
//! exclusions in force *now* are then applied to the remaining pairs as
//! they are sent (as a SIGHUP reload would), and the difference is
//! reported. Open services found before the stop whose checks had not run
//! are carried in the state, so `--checks` covers every host of the sweep.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::scope::Exclusions;
use crate::targets::{Range, TargetError};

/// The current layout of the state file.
pub const STATE_VERSION: u32 = 2;

/// What the exclusion sets held when a plan was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExclusionRecord {
    /// [`Exclusions::digest`] of `entries`.
    pub sha256: String,
    /// [`Exclusions::entries`].
    pub entries: Vec<String>,
}

impl ExclusionRecord {
    /// The record of `set`.
    pub fn of(set: &Exclusions) -> ExclusionRecord {
        ExclusionRecord {
            sha256: set.digest(),
            entries: set.entries(),
        }
    }
}

/// An open service whose checks had not run when the survey stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingService {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// Protocol module that grabbed it.
    pub service: String,
    /// What the module saw.
    pub banner: serde_json::Value,
}

/// The resume state (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Targets as given.
    pub targets: Vec<String>,
    /// Ports as given.
    pub ports: String,
    /// Seed of the order.
    pub seed: u64,
    /// Shard "I/N".
    pub shard: String,
    /// `connect` or `syn`.
    pub mode: String,
    /// The `--checks` list, if any.
    pub checks: Option<String>,
    /// The exclusions the plan (target set and order) was built with.
    pub exclusions: ExclusionRecord,
    /// Positions of the shard already probed.
    pub done: u64,
    /// Services found but not yet checked.
    #[serde(default)]
    pub pending_checks: Vec<PendingService>,
}

/// A state file that cannot continue this run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// Not JSON of the expected layout.
    #[error("{path} is not a survey resume state ({why})")]
    Unreadable {
        /// The file.
        path: String,
        /// The parser's words.
        why: String,
    },
    /// Written by an earlier layout that did not record what the
    /// exclusions held: its plan cannot be rebuilt exactly.
    #[error("{path} was written by an earlier iotscope that did not record the exclusions' contents, so its probe order cannot be rebuilt exactly; remove it to start the survey over")]
    OldVersion {
        /// The file.
        path: String,
    },
    /// Another survey's state.
    #[error("{path} was written by a run with another {field} ({saved:?}, now {now:?}); resume with the same targets, ports, seed, shard, mode and checks")]
    Mismatch {
        /// The file.
        path: String,
        /// Which setting differs.
        field: &'static str,
        /// The saved value.
        saved: String,
        /// This run's value.
        now: String,
    },
    /// The recorded exclusions do not parse or do not match their digest.
    #[error("{path}: the recorded exclusions are damaged ({why})")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl ResumeState {
    /// The run this shard belongs to, when several scanners share one
    /// store (issue 19): `run-` and 16 hex digits of SHA-256 over the
    /// targets, ports, seed and number of shards (not this shard's number,
    /// mode or checks), so every shard of one sweep names the same run with
    /// no coordination. A sweep repeated with the same settings is the same
    /// run; give `--run` to tell repeats apart.
    pub fn run_id(&self) -> String {
        use sha2::Digest;
        let shards = self.shard.split_once('/').map_or("1", |(_, n)| n);
        let canonical = serde_json::json!([self.targets, self.ports, self.seed, shards]);
        let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("run-{hex}")
    }

    /// Reads a state file's text.
    ///
    /// # Errors
    /// [`ResumeError::Unreadable`] or [`ResumeError::OldVersion`].
    pub fn parse(text: &str, path: &str) -> Result<ResumeState, ResumeError> {
        let unreadable = |e: serde_json::Error| ResumeError::Unreadable {
            path: path.to_string(),
            why: e.to_string(),
        };
        let v: serde_json::Value = serde_json::from_str(text).map_err(unreadable)?;
        if v.get("version").is_none() && v.get("done").is_some() {
            return Err(ResumeError::OldVersion {
                path: path.to_string(),
            });
        }
        if v.get("version").and_then(|n| n.as_u64()) != Some(u64::from(STATE_VERSION)) {
            return Err(ResumeError::Unreadable {
                path: path.to_string(),
                why: format!(
                    "layout version {} (this iotscope writes {STATE_VERSION})",
                    v["version"]
                ),
            });
        }
        serde_json::from_value(v).map_err(unreadable)
    }

    /// Checks that `self` (saved) continues the run described by `now`
    /// (whose `done`, `exclusions` and `pending_checks` are ignored).
    ///
    /// # Errors
    /// [`ResumeError::Mismatch`] naming the first setting that differs.
    pub fn continues(&self, now: &ResumeState, path: &str) -> Result<(), ResumeError> {
        let fields: [(&'static str, String, String); 6] = [
            ("targets", self.targets.join(" "), now.targets.join(" ")),
            ("ports", self.ports.clone(), now.ports.clone()),
            ("seed", self.seed.to_string(), now.seed.to_string()),
            ("shard", self.shard.clone(), now.shard.clone()),
            ("mode", self.mode.clone(), now.mode.clone()),
            (
                "checks",
                self.checks.clone().unwrap_or_default(),
                now.checks.clone().unwrap_or_default(),
            ),
        ];
        for (field, saved, now) in fields {
            if saved != now {
                return Err(ResumeError::Mismatch {
                    path: path.to_string(),
                    field,
                    saved,
                    now,
                });
            }
        }
        Ok(())
    }

    /// Checks that `done` fits the shard's `pairs`.
    ///
    /// # Errors
    /// [`ResumeError::Damaged`].
    pub fn check_done(&self, pairs: u64, path: &str) -> Result<(), ResumeError> {
        if self.done > pairs {
            return Err(ResumeError::Damaged {
                path: path.to_string(),
                why: format!("{} probes done of a shard of {pairs} pairs", self.done),
            });
        }
        Ok(())
    }

    /// The exclusions the plan was built with.
    ///
    /// # Errors
    /// [`ResumeError::Damaged`] when the entries do not parse or do not
    /// match the recorded digest.
    pub fn plan_exclusions(&self, path: &str) -> Result<Exclusions, ResumeError> {
        let damaged = |why: String| ResumeError::Damaged {
            path: path.to_string(),
            why,
        };
        let set = Exclusions::from_entries(&self.exclusions.entries)
            .map_err(|e: TargetError| damaged(e.to_string()))?;
        if set.digest() != self.exclusions.sha256 {
            return Err(damaged("the entries do not match their SHA-256".into()));
        }
        Ok(set)
    }
}

/// How the exclusions in force now differ from those a plan was built with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExclusionChange {
    /// IPv4 addresses excluded now but not in the plan: skipped from here on.
    pub added_v4: u64,
    /// IPv4 addresses of the plan's exclusions that are no longer excluded:
    /// not in the plan, so this run does not probe them.
    pub released_v4: u64,
    /// True when the IPv6 lines differ.
    pub v6_changed: bool,
}

impl ExclusionChange {
    /// The change from `plan` to `now`.
    pub fn between(plan: &Exclusions, now: &Exclusions) -> ExclusionChange {
        let count = |ranges: &[Range]| ranges.iter().map(|r| (r.1 - r.0) as u64 + 1).sum();
        let minus = |a: &[Range], b: &[Range]| {
            let mut out = a.to_vec();
            for &cut in b {
                out = crate::targets::subtract(out, cut);
            }
            out
        };
        let v6 = |e: &Exclusions| {
            e.entries()
                .into_iter()
                .filter(|l| l.contains(':'))
                .collect::<Vec<_>>()
        };
        ExclusionChange {
            added_v4: count(&minus(now.v4(), plan.v4())),
            released_v4: count(&minus(plan.v4(), now.v4())),
            v6_changed: v6(plan) != v6(now),
        }
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == ExclusionChange::default()
    }
}

impl std::fmt::Display for ExclusionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("exclusions unchanged since the stop");
        }
        write!(
            f,
            "exclusions changed since the stop: {} IPv4 addresses newly excluded (skipped from here on)",
            self.added_v4
        )?;
        if self.released_v4 > 0 {
            write!(
                f,
                ", {} IPv4 addresses no longer excluded (not in this survey's plan: survey them in a new run)",
                self.released_v4
            )?;
        }
        if self.v6_changed {
            f.write_str(", IPv6 lines changed (the current ones apply)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shard_of_a_sweep_names_the_same_run() {
        let state = |shard: &str, seed: u64, mode: &str| ResumeState {
            version: STATE_VERSION,
            targets: vec!["198.18.0.0/24".into()],
            ports: "23,80".into(),
            seed,
            shard: shard.into(),
            mode: mode.into(),
            checks: None,
            exclusions: ExclusionRecord::of(&Exclusions::default()),
            done: 0,
            pending_checks: Vec::new(),
        };
        let id = state("0/3", 7, "connect").run_id();
        assert!(id.starts_with("run-") && id.len() == 20, "{id}");
        assert_eq!(state("2/3", 7, "syn").run_id(), id);
        assert_ne!(state("0/2", 7, "connect").run_id(), id);
        assert_ne!(state("0/3", 8, "connect").run_id(), id);
    }

    use super::*;

    fn state(ex: &Exclusions) -> ResumeState {
        ResumeState {
            version: STATE_VERSION,
            targets: vec!["127.93.0.0/24".into()],
            ports: "8099".into(),
            seed: 1,
            shard: "0/1".into(),
            mode: "connect".into(),
            checks: None,
            exclusions: ExclusionRecord::of(ex),
            done: 17,
            pending_checks: vec![],
        }
    }

    #[test]
    fn the_plan_is_rebuilt_from_recorded_contents() {
        let ex = Exclusions::parse("127.93.9.0/24\n", "opt.conf").unwrap();
        let s = state(&ex);
        let text = serde_json::to_string(&s).unwrap();
        let back = ResumeState::parse(&text, "st.json").unwrap();
        assert_eq!(back, s);
        assert_eq!(back.plan_exclusions("st.json").unwrap(), ex);
        let mut other = s.clone();
        other.ports = "8098".into();
        let e = back.continues(&other, "st.json").unwrap_err();
        assert!(e.to_string().contains("another ports"), "{e}");
        let mut bad = s.clone();
        bad.exclusions.entries.push("127.0.0.0-127.0.0.1".into());
        assert!(matches!(
            bad.plan_exclusions("st.json"),
            Err(ResumeError::Damaged { .. })
        ));
        let old = r#"{"targets":["x"],"exclusions":["opt.conf"],"ports":"1","seed":1,"shard":"0/1","done":3}"#;
        assert!(matches!(
            ResumeState::parse(old, "st.json"),
            Err(ResumeError::OldVersion { .. })
        ));
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["version"] = 999.into();
        assert!(ResumeState::parse(&v.to_string(), "st.json").is_err());
        assert!(s.check_done(17, "st.json").is_ok());
        assert!(s.check_done(16, "st.json").is_err());
    }

    #[test]
    fn changes_are_counted_in_addresses() {
        let plan = Exclusions::parse("127.93.9.0/24\n", "a").unwrap();
        let now = Exclusions::parse("127.93.9.0/24\n127.93.0.0/26\n", "b").unwrap();
        let c = ExclusionChange::between(&plan, &now);
        assert_eq!((c.added_v4, c.released_v4, c.v6_changed), (64, 0, false));
        let c = ExclusionChange::between(&now, &plan);
        assert_eq!((c.added_v4, c.released_v4), (0, 64));
        assert!(ExclusionChange::between(&plan, &plan).is_empty());
    }
}
