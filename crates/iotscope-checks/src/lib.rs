//! Survey checks: default credentials over telnet, SSH and HTTP Basic/Digest,
//! open control panels (read-only), device identification by rules, and
//! typed findings with evidence and advice.
//!
//! Never more than a login: after a successful login the connection is
//! closed without a further byte; panels are looked at with GET and HEAD
//! only and no form is ever submitted. The lab's audit log proves both in
//! the tests.
//!
//! [`dict`] holds the ID/password pairs, [`telnet`], [`ssh`] and [`http`] the login
//! workers behind [`LoginWorker`], [`rules`] identification, [`findings`]
//! the finding kinds and their advice, [`run`] puts them together per host.

pub mod auth;
pub mod dict;
pub mod findings;
pub mod http;
pub mod rules;
pub mod run;
pub mod ssh;
pub mod telnet;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use dict::Pair;

/// Limits of the credential checks.
#[derive(Clone, Debug)]
pub struct CheckSettings {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// How long to wait for a prompt or an answer (slow devices wait
    /// seconds after a failure, as BusyBox does).
    pub read_timeout: Duration,
    /// Most login attempts per service.
    pub max_attempts: usize,
    /// Connections at once per service (per-host pacing).
    pub per_host: usize,
    /// HTTP User-Agent.
    pub user_agent: String,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(6),
            max_attempts: 100,
            per_host: 3,
            user_agent: "iotscope-checks/0.1".into(),
        }
    }
}

/// The outcome of one login attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Logged in (and closed at once).
    Success {
        /// No password was asked for.
        no_password: bool,
        /// What the device showed.
        evidence: String,
    },
    /// Rejected.
    Failed,
    /// The device says the account is locked or attempts are too many.
    Locked(String),
    /// The connection dropped before an answer: try the pair again.
    Retry,
    /// No connection or no prompt.
    Unreachable,
    /// The service asks for a login we cannot answer (why): the check ends
    /// without a verdict.
    Unsupported(String),
    /// Not tried: the pair's password was already tried on this
    /// password-only service (its user name is never sent).
    Skipped,
}

/// The result of a credential check of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginResult {
    /// A pair worked.
    Success {
        /// The pair.
        pair: Pair,
        /// No password was asked for.
        no_password: bool,
        /// What the device showed.
        evidence: String,
        /// Attempts made before and including it.
        attempts: usize,
    },
    /// The device locked us out.
    Locked {
        /// Attempts made.
        attempts: usize,
        /// What it said.
        evidence: String,
    },
    /// Every pair failed.
    Exhausted {
        /// Attempts made.
        attempts: usize,
    },
    /// The service stopped answering.
    Unreachable {
        /// Attempts made.
        attempts: usize,
    },
    /// The service asks for a login we cannot answer: no verdict.
    Incomplete {
        /// Attempts made.
        attempts: usize,
        /// Why.
        reason: String,
    },
    /// The control pair, which no device ships, logged in: the service
    /// takes any ID and password (a honeypot or a broken device). No
    /// dictionary pair was tried.
    AcceptsAny {
        /// The control pair.
        pair: Pair,
        /// What the device showed.
        evidence: String,
    },
}

/// A service's whole credential check ends after this many read timeouts.
pub const SERVICE_DEADLINE_READS: u32 = 30;

/// Unjudged attempts in a row (no connection, a hang-up before the
/// answer) after which a service's check ends as unreachable. Generous:
/// a busy device or a loaded scanner is slow to accept, not gone.
pub const MAX_UNJUDGED: usize = 6;

/// Hands pairs to a service's workers in dictionary order and records
/// what they found; once a pair works or the device locks, no worker gets
/// another pair (first success ends the service's check).
pub struct PairQueue {
    state: Mutex<QueueState>,
}

struct QueueState {
    pairs: Vec<Pair>,
    next: usize,
    attempts: usize,
    result: Option<LoginResult>,
    unreachable: usize,
    hangups: usize,
    passwords: std::collections::HashSet<String>,
    users: std::collections::HashMap<String, UserProbe>,
}

/// What is known of a user name on a service, for [`PairQueue::user_turn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UserProbe {
    /// A worker has sent it and awaits the reply.
    Probing,
    /// It was answered with a password prompt: no login without one.
    AsksPassword,
}

/// A worker's turn to send a user name ([`PairQueue::user_turn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserTurn {
    /// Send it; `first`: this worker sends it first and must say what the
    /// reply was ([`PairQueue::user_settled`]).
    Go {
        /// The first sending of this user name.
        first: bool,
    },
    /// The check has ended meanwhile: send nothing.
    Stop,
}

impl PairQueue {
    /// A queue over `pairs`, at most `max` of them.
    pub fn new(mut pairs: Vec<Pair>, max: usize) -> PairQueue {
        pairs.truncate(max);
        PairQueue {
            state: Mutex::new(QueueState {
                pairs,
                next: 0,
                attempts: 0,
                result: None,
                unreachable: 0,
                hangups: 0,
                passwords: Default::default(),
                users: Default::default(),
            }),
        }
    }

    /// The next pair to try, or `None` when done.
    pub fn next(&self) -> Option<Pair> {
        let mut st = self.state.lock().expect("queue");
        if st.result.is_some() || st.next >= st.pairs.len() {
            return None;
        }
        st.next += 1;
        Some(st.pairs[st.next - 1].clone())
    }

    /// True the first time a password is asked for by any worker of this
    /// service: a password-only device is tried once per password however
    /// many dictionary pairs share it.
    pub fn first_try_of_password(&self, password: &str) -> bool {
        let mut st = self.state.lock().expect("queue");
        st.passwords.insert(password.to_string())
    }

    /// Gives back a password claimed with
    /// [`PairQueue::first_try_of_password`] that could not be sent.
    pub fn forget_password(&self, password: &str) {
        self.state.lock().expect("queue").passwords.remove(password);
    }

    /// Waits for this worker's turn to send `user`. The first sending of a
    /// user name goes alone: a device on which the name alone opens a
    /// shell (no password) would otherwise be logged into by every
    /// parallel worker at once. Once the name is known to ask for a
    /// password, every worker may send it. `Stop` when the check ended
    /// while waiting.
    pub async fn user_turn(&self, user: &str) -> UserTurn {
        loop {
            {
                let mut st = self.state.lock().expect("queue");
                if st.result.is_some() {
                    return UserTurn::Stop;
                }
                match st.users.get(user) {
                    None => {
                        st.users.insert(user.to_string(), UserProbe::Probing);
                        return UserTurn::Go { first: true };
                    }
                    Some(UserProbe::AsksPassword) => return UserTurn::Go { first: false },
                    Some(UserProbe::Probing) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What the first sending of `user` showed: `asks_password` when a
    /// password prompt followed. Otherwise the next worker may probe it.
    pub fn user_settled(&self, user: &str, asks_password: bool) {
        let mut st = self.state.lock().expect("queue");
        if asks_password {
            st.users.insert(user.to_string(), UserProbe::AsksPassword);
        } else {
            st.users.remove(user);
        }
    }

    /// Records an attempt; true when the worker should stop. After an
    /// unjudged attempt the worker should wait a little before the next
    /// connection ([`PairQueue::backoff`]).
    pub fn report(&self, pair: &Pair, outcome: Attempt) -> bool {
        let mut st = self.state.lock().expect("queue");
        if !matches!(
            outcome,
            Attempt::Unreachable | Attempt::Retry | Attempt::Skipped
        ) {
            st.attempts += 1;
        }
        let attempts = st.attempts;
        match outcome {
            Attempt::Success {
                no_password,
                evidence,
            } => {
                if !matches!(st.result, Some(LoginResult::Success { .. })) {
                    st.result = Some(LoginResult::Success {
                        pair: pair.clone(),
                        no_password,
                        evidence,
                        attempts,
                    });
                }
                true
            }
            Attempt::Locked(evidence) => {
                if st.result.is_none() {
                    st.result = Some(LoginResult::Locked { attempts, evidence });
                }
                true
            }
            Attempt::Unsupported(reason) => {
                if st.result.is_none() {
                    st.result = Some(LoginResult::Incomplete {
                        attempts: attempts.saturating_sub(1),
                        reason,
                    });
                }
                true
            }
            Attempt::Failed => {
                st.unreachable = 0;
                false
            }
            Attempt::Skipped => false,
            Attempt::Retry | Attempt::Unreachable => {
                // The pair was not judged: give it back. A hang-up after some
                // tries is normal (servers cap tries per connection), so only
                // failed connections in a row end the check as unreachable;
                // hang-ups are bounded in total so no loop runs forever.
                if matches!(outcome, Attempt::Unreachable) {
                    st.unreachable += 1;
                } else {
                    st.hangups += 1;
                }
                if st.unreachable >= MAX_UNJUDGED || st.hangups > 2 * st.pairs.len() + 10 {
                    if st.result.is_none() {
                        st.result = Some(LoginResult::Unreachable { attempts });
                    }
                    return true;
                }
                if let Some(i) = st.pairs.iter().position(|p| p == pair) {
                    if i < st.next {
                        let p = st.pairs.remove(i);
                        st.next -= 1;
                        let at = st.next;
                        st.pairs.insert(at, p);
                    }
                }
                false
            }
        }
    }

    /// How long to wait before the next connection: 0 while attempts are
    /// judged, growing with unjudged ones in a row.
    pub fn backoff(&self) -> Duration {
        let st = self.state.lock().expect("queue");
        Duration::from_millis(250 * st.unreachable as u64)
    }

    /// Attempts judged so far (for a check cut short).
    pub fn finish_attempts(&self) -> usize {
        self.state.lock().expect("queue").attempts
    }

    /// The result so far (every worker done: the check's result).
    pub fn outcome(&self) -> LoginResult {
        let st = self.state.lock().expect("queue");
        st.result.clone().unwrap_or(LoginResult::Exhausted {
            attempts: st.attempts,
        })
    }

    /// The check's result once every worker is done.
    pub fn finish(self) -> LoginResult {
        let st = self.state.into_inner().expect("queue");
        st.result.unwrap_or(LoginResult::Exhausted {
            attempts: st.attempts,
        })
    }
}

/// The boxed future of a worker.
pub type WorkerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One login protocol: a worker takes pairs from the queue until it is
/// empty or says stop. Several workers of one service run at once, up to
/// `CheckSettings::per_host`.
pub trait LoginWorker: Send + Sync {
    /// The protocol ("telnet", "http").
    fn name(&self) -> &'static str;
    /// Works through the queue against `addr`.
    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        queue: &'a PairQueue,
        s: &'a CheckSettings,
    ) -> WorkerFuture<'a>;
}

/// Runs `worker` against `addr` with `pairs`: the whole credential check of
/// one service.
pub async fn check_logins(
    worker: &dyn LoginWorker,
    addr: SocketAddr,
    pairs: Vec<Pair>,
    s: &CheckSettings,
) -> LoginResult {
    // The control attempt, alone and first: a pair that cannot be right.
    // A service that takes it takes anything, so a dictionary success would
    // prove nothing (and with parallel workers each would log in): report
    // that once, with no further login. It costs one failed attempt of the
    // lockout budget.
    let control = PairQueue::new(vec![control_pair()], 1);
    let queue = PairQueue::new(pairs, s.max_attempts.saturating_sub(1));
    let alone = CheckSettings {
        per_host: 1,
        ..s.clone()
    };
    let check = async {
        worker.run(addr, &control, &alone).await;
        match control.outcome() {
            LoginResult::Exhausted { .. } => {}
            LoginResult::Success {
                pair,
                no_password: false,
                evidence,
                ..
            } => return Some(LoginResult::AcceptsAny { pair, evidence }),
            // No password asked at all, a lockout or silence: that is the
            // answer.
            other => return Some(other),
        }
        let workers: Vec<WorkerFuture<'_>> = (0..s.per_host.max(1))
            .map(|_| worker.run(addr, &queue, s))
            .collect();
        futures_join_all(workers).await;
        None
    };
    // An absolute deadline for the service's whole check, the control
    // attempt included: per-read timeouts only fire after silence, and a
    // device that trickles bytes, or hangs up after every prompt, must not
    // hold the run (ZGrab2 issue #163: "a timeout for the entire
    // session"). Thirty read timeouts cover the whole dictionary on the
    // slowest honest device.
    let deadline = SERVICE_DEADLINE_READS * s.read_timeout;
    match tokio::time::timeout(deadline, check).await {
        Err(_) => {
            let attempts = control.finish_attempts() + queue.finish_attempts();
            return LoginResult::Incomplete {
                attempts,
                reason: format!(
                    "no verdict within the service's deadline of {} s ({attempts} attempts judged)",
                    deadline.as_secs()
                ),
            };
        }
        Ok(Some(early)) => return early,
        Ok(None) => {}
    }
    // The control attempt counts among the service's attempts.
    match queue.finish() {
        LoginResult::Success {
            pair,
            no_password,
            evidence,
            attempts,
        } => LoginResult::Success {
            pair,
            no_password,
            evidence,
            attempts: attempts + 1,
        },
        LoginResult::Locked { attempts, evidence } => LoginResult::Locked {
            attempts: attempts + 1,
            evidence,
        },
        LoginResult::Exhausted { attempts } => LoginResult::Exhausted {
            attempts: attempts + 1,
        },
        LoginResult::Unreachable { attempts } => LoginResult::Unreachable {
            attempts: attempts + 1,
        },
        other => other,
    }
}

/// A pair no device ships: a user and a password of 16 random hex digits
/// each (random per call; [`std::collections::hash_map::RandomState`] is
/// seeded from the system's randomness).
pub fn control_pair() -> Pair {
    use std::hash::{BuildHasher, Hasher};
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        format!("{:016x}", h.finish())
    };
    Pair {
        user: format!("iotscope-{}", word(1)),
        password: word(2),
    }
}

/// A boxed future of any output.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Awaits every future and returns their outputs in order.
pub async fn join_all<'a, T: Send + 'a>(futs: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    type Slot<'a, T> = (Option<BoxFuture<'a, T>>, Option<T>);
    let mut slots: Vec<Slot<'a, T>> = futs.into_iter().map(|f| (Some(f), None)).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, out) in slots.iter_mut() {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(
                slots
                    .iter_mut()
                    .map(|(_, o)| o.take().expect("output"))
                    .collect(),
            )
        }
    })
    .await
}

/// Awaits every future (a tiny join_all: the crate does not pull in
/// `futures` for one function).
async fn futures_join_all(futs: Vec<WorkerFuture<'_>>) {
    let mut set = Vec::new();
    for f in futs {
        set.push(f);
    }
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(u: &str, pw: &str) -> Pair {
        Pair {
            user: u.into(),
            password: pw.into(),
        }
    }

    #[tokio::test]
    async fn a_user_name_is_first_sent_by_one_worker_alone() {
        let q = std::sync::Arc::new(PairQueue::new(vec![p("root", "1"), p("root", "2")], 10));
        assert_eq!(q.user_turn("root").await, UserTurn::Go { first: true });
        // A second worker waits while the first awaits the reply...
        let q2 = q.clone();
        let waiting = tokio::spawn(async move { q2.user_turn("root").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // ...and goes once the name is known to ask for a password.
        q.user_settled("root", true);
        assert_eq!(waiting.await.unwrap(), UserTurn::Go { first: false });
        // A name that opened a shell ends the check: a waiting worker sends
        // nothing.
        assert_eq!(q.user_turn("admin").await, UserTurn::Go { first: true });
        let q3 = q.clone();
        let waiting = tokio::spawn(async move { q3.user_turn("admin").await });
        let pair = q.next().unwrap();
        q.report(
            &pair,
            Attempt::Success {
                no_password: true,
                evidence: String::new(),
            },
        );
        assert_eq!(waiting.await.unwrap(), UserTurn::Stop);
    }

    #[test]
    fn the_first_success_ends_the_queue() {
        let q = PairQueue::new(vec![p("a", "1"), p("b", "2"), p("c", "3")], 10);
        let first = q.next().unwrap();
        assert!(!q.report(&first, Attempt::Failed));
        let second = q.next().unwrap();
        assert!(q.report(
            &second,
            Attempt::Success {
                no_password: false,
                evidence: "#".into()
            }
        ));
        assert_eq!(q.next(), None);
        match q.finish() {
            LoginResult::Success { pair, attempts, .. } => {
                assert_eq!((pair, attempts), (p("b", "2"), 2))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dropped_pair_is_tried_again_and_caps_hold() {
        let q = PairQueue::new(vec![p("a", "1"), p("b", "2"), p("c", "3")], 2);
        let a = q.next().unwrap();
        assert!(!q.report(&a, Attempt::Retry));
        assert_eq!(q.next().unwrap(), a, "given back");
        assert!(!q.report(&a, Attempt::Failed));
        let b = q.next().unwrap();
        assert!(!q.report(&b, Attempt::Failed));
        assert_eq!(q.next(), None, "capped at 2");
        assert_eq!(q.finish(), LoginResult::Exhausted { attempts: 2 });
    }

    /// A device that judges pairs by `accepts`, counting logins.
    struct Fake {
        accepts: fn(&Pair) -> bool,
        logins: std::sync::atomic::AtomicUsize,
        tries: std::sync::atomic::AtomicUsize,
    }

    impl LoginWorker for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run<'a>(
            &'a self,
            _: SocketAddr,
            q: &'a PairQueue,
            _: &'a CheckSettings,
        ) -> WorkerFuture<'a> {
            Box::pin(async move {
                while let Some(pair) = q.next() {
                    self.tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let outcome = if (self.accepts)(&pair) {
                        self.logins
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        Attempt::Success {
                            no_password: false,
                            evidence: "# ".into(),
                        }
                    } else {
                        Attempt::Failed
                    };
                    // Let the other workers run, as real I/O would.
                    tokio::task::yield_now().await;
                    if q.report(&pair, outcome) {
                        break;
                    }
                }
            })
        }
    }

    /// Issue 12: a device that accepts any password was reported as having
    /// a default credential (a different pair each run), and parallel
    /// workers each logged in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_that_takes_anything_is_found_with_one_login() {
        let pairs = vec![p("root", "xc3511"), p("admin", "admin"), p("root", "vizxv")];
        let s = CheckSettings {
            per_host: 3,
            ..Default::default()
        };
        let addr: SocketAddr = "127.0.0.1:23".parse().unwrap();
        let any = Fake {
            accepts: |_| true,
            logins: 0.into(),
            tries: 0.into(),
        };
        match check_logins(&any, addr, pairs.clone(), &s).await {
            LoginResult::AcceptsAny { pair, .. } => assert!(pair.user.starts_with("iotscope-")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            any.logins.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one login"
        );
        // A device with one default pair: found, with the control counted.
        let one = Fake {
            accepts: |p| p.user == "root" && p.password == "vizxv",
            logins: 0.into(),
            tries: 0.into(),
        };
        match check_logins(&one, addr, pairs.clone(), &s).await {
            LoginResult::Success { pair, .. } => assert_eq!(pair, p("root", "vizxv")),
            other => panic!("{other:?}"),
        }
        let none = Fake {
            accepts: |_| false,
            logins: 0.into(),
            tries: 0.into(),
        };
        assert_eq!(
            check_logins(&none, addr, pairs, &s).await,
            LoginResult::Exhausted { attempts: 4 }
        );
        assert_ne!(control_pair(), control_pair(), "random per call");
    }

    /// A worker that never reaches a verdict (a device trickling bytes).
    /// A worker whose attempts hang; `control_too`: the control attempt
    /// as well (a device that trickles bytes from its first screen).
    struct Stuck {
        control_too: bool,
    }

    impl LoginWorker for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }
        fn run<'a>(
            &'a self,
            _: SocketAddr,
            q: &'a PairQueue,
            _: &'a CheckSettings,
        ) -> WorkerFuture<'a> {
            Box::pin(async move {
                while let Some(pair) = q.next() {
                    // The control attempt fails; every later one hangs.
                    if pair.user.starts_with("iotscope-") && !self.control_too {
                        q.report(&pair, Attempt::Failed);
                    } else {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                }
            })
        }
    }

    /// Issue 12, item 5: a service's check has an absolute deadline.
    #[tokio::test]
    async fn a_service_that_never_answers_ends_at_its_deadline() {
        let s = CheckSettings {
            read_timeout: Duration::from_millis(10),
            ..Default::default()
        };
        for control_too in [false, true] {
            let started = std::time::Instant::now();
            let r = check_logins(
                &Stuck { control_too },
                "127.0.0.1:23".parse().unwrap(),
                vec![p("root", "x")],
                &s,
            )
            .await;
            assert!(matches!(r, LoginResult::Incomplete { .. }), "{r:?}");
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
}
