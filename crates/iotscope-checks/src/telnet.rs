//! Telnet login as a screen model: what the device shows is judged only
//! in answer to what we sent. The greeting (before any input) can show a
//! login or password prompt, or, once it has settled, a shell with no
//! login at all; the reply to a user name can ask for a password; only the
//! reply to a **password** can prove a login (a shell prompt or a
//! post-login banner) or a refusal (failure words). Prompt characters in
//! banners and legal notices, and failure words in a MOTD ("There were 3
//! failed login attempts since ...", pam_lastlog), never decide anything:
//! the last line of the screen does (thc-hydra PR #1078, Exscript #41).
//!
//! Devices handled: option negotiation (every option refused, RFC 854/855
//! with subnegotiation skipped), password-only consoles (Cisco "line vty"
//! `User Access Verification` / `Password:`; the user name is never sent
//! and each password is tried once, thc-hydra PR #1053), re-prompts of
//! `Password:` on one connection (thc-hydra PR #675), consoles silent
//! until Enter, prompts in other languages and legacy encodings (GBK,
//! Big5, Shift_JIS, EUC, CP1251, KOI8-R, Latin-1: matched on the raw
//! bytes and on a lossy text), greetings and prompts that come seconds
//! late, lockouts. After a login the connection is closed at once: nothing
//! is typed, not even `exit`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::dict::Pair;
use crate::{Attempt, CheckSettings};

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;

/// The most bytes kept of one screen; a device that sends more without a
/// prompt is judged on what it sent.
const MAX_SCREEN: usize = 16 * 1024;

/// What the device shows after our last input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// "login:", "Username:", "Benutzername:", "用户名：" and the like.
    LoginPrompt,
    /// "Password:", "Kennwort:", "密码：" and the like.
    PasswordPrompt,
    /// A shell prompt or a post-login banner.
    Shell,
    /// "Login incorrect", "Access denied"... with no prompt after it.
    Incorrect,
    /// "account locked", "too many attempts"...
    Locked,
}

/// What was sent last, which decides what the screen can prove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Nothing yet (or only a CR LF to wake the console).
    Greeting,
    /// A user name.
    AfterUser,
    /// A password.
    AfterPassword,
}

/// How long the device has been quiet since its last byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quiet {
    /// Bytes are still coming.
    Arriving,
    /// Quiet for a moment (the settle time): a prompt at the end is the
    /// device waiting for us, not a line of a banner still being sent.
    Settled,
    /// Quiet for a whole read timeout, or the connection closed: the
    /// screen is final.
    Final,
}

/// Telnet's network virtual terminal (RFC 854): data bytes out of a byte
/// stream, commands removed, and every option refused (DO → WONT, WILL →
/// DONT, RFC 855). Commands split across reads are kept for the next one;
/// subnegotiations (IAC SB ... IAC SE) are skipped whole.
#[derive(Default, Debug)]
pub struct Nvt {
    pending: Vec<u8>,
    in_sb: bool,
}

impl Nvt {
    /// Feeds received bytes: data goes to `data` (NUL dropped), answers to
    /// the device's option requests to `reply`.
    pub fn feed(&mut self, input: &[u8], data: &mut Vec<u8>, reply: &mut Vec<u8>) {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(input);
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            if self.in_sb {
                if b == IAC {
                    match buf.get(i + 1) {
                        None => break,
                        Some(&SE) => self.in_sb = false,
                        Some(_) => {}
                    }
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if b != IAC {
                if b != 0 {
                    data.push(b);
                }
                i += 1;
                continue;
            }
            let Some(&cmd) = buf.get(i + 1) else { break };
            match cmd {
                251..=254 => {
                    let Some(&opt) = buf.get(i + 2) else { break };
                    match cmd {
                        253 => reply.extend_from_slice(&[IAC, 252, opt]), // DO -> WONT
                        251 => reply.extend_from_slice(&[IAC, 254, opt]), // WILL -> DONT
                        _ => {}
                    }
                    i += 3;
                }
                SB => {
                    self.in_sb = true;
                    i += 2;
                }
                IAC => {
                    data.push(IAC);
                    i += 2;
                }
                _ => i += 2,
            }
        }
        if i < buf.len() {
            self.pending = buf[i..].to_vec();
        }
    }
}

/// Words that name the user-name prompt, lower case, in the languages of
/// common device firmware.
const LOGIN_WORDS: &[&str] = &[
    "login",
    "username",
    "user name",
    "user",
    "benutzername",
    "benutzer",
    "anmeldename",
    "nom d'utilisateur",
    "utilisateur",
    "identifiant",
    "usuario",
    "usuário",
    "utente",
    "gebruikersnaam",
    "gebruiker",
    "имя пользователя",
    "пользователь",
    "логин",
    "用户名",
    "用户",
    "帳號",
    "账号",
    "帐号",
    "使用者名稱",
    "登录",
    "登入",
    "ユーザー名",
    "ユーザ名",
    "ログイン",
    "사용자",
    "아이디",
    "kullanıcı",
    "użytkownik",
];

/// Words that name the password prompt.
const PASSWORD_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passcode",
    "kennwort",
    "passwort",
    "mot de passe",
    "contraseña",
    "contrasena",
    "clave",
    "senha",
    "wachtwoord",
    "пароль",
    "密码",
    "密碼",
    "口令",
    "パスワード",
    "비밀번호",
    "암호",
    "şifre",
    "parola",
    "hasło",
    "heslo",
    "jelszó",
    "salasana",
    "lösenord",
    "adgangskode",
];

/// The same words in legacy encodings, as raw bytes (devices that predate
/// UTF-8 still print them): GBK/GB2312, Big5, Shift_JIS, EUC-JP, EUC-KR,
/// CP1251 and KOI8-R.
const LOGIN_BYTES: &[&[u8]] = &[
    b"\xd3\xc3\xbb\xa7",                 // 用户 (GBK)
    b"\xd5\xca\xba\xc5",                 // 帐号 (GBK)
    b"\xd5\xcb\xba\xc5",                 // 账号 (GBK)
    b"\xb5\xc7\xc2\xbc",                 // 登录 (GBK)
    b"\xb1\x62\xb8\xb9",                 // 帳號 (Big5)
    b"\xb5\x6e\xa4\x4a",                 // 登入 (Big5)
    b"\x83\x8d\x83\x4f\x83\x43\x83\x93", // ログイン (Shift_JIS)
    b"\x83\x86\x81\x5b\x83\x55",         // ユーザ (Shift_JIS)
    b"\xa5\xed\xa5\xb0\xa5\xa4\xa5\xf3", // ログイン (EUC-JP)
    b"\xbb\xe7\xbf\xeb\xc0\xda",         // 사용자 (EUC-KR)
    b"\xbe\xc6\xc0\xcc\xb5\xf0",         // 아이디 (EUC-KR)
    b"\xeb\xee\xe3\xe8\xed",             // логин (CP1251)
    b"\xcc\xcf\xc7\xc9\xce",             // логин (KOI8-R)
    b"\xe8\xec\xff",                     // имя (CP1251)
];

/// Password words in legacy encodings.
const PASSWORD_BYTES: &[&[u8]] = &[
    b"\xc3\xdc\xc2\xeb",                         // 密码 (GBK)
    b"\xbf\xda\xc1\xee",                         // 口令 (GBK)
    b"\xb1\x4b\xbd\x58",                         // 密碼 (Big5)
    b"\x83\x70\x83\x58\x83\x8f\x81\x5b\x83\x68", // パスワード (Shift_JIS)
    b"\xa5\xd1\xa5\xb9\xa5\xef\xa1\xbc\xa5\xc9", // パスワード (EUC-JP)
    b"\xba\xf1\xb9\xd0\xb9\xf8\xc8\xa3",         // 비밀번호 (EUC-KR)
    b"\xe0\xf0\xee\xeb\xfc",                     // -ароль (CP1251, either case of П)
    b"\xc1\xd2\xcf\xcc\xd8",                     // -ароль (KOI8-R)
];

/// Full-width colons that end prompts in CJK firmware: UTF-8, GBK/EUC,
/// Big5, Shift_JIS.
const WIDE_COLONS: &[&[u8]] = &[b"\xef\xbc\x9a", b"\xa3\xba", b"\xa1\x47", b"\x81\x46"];

/// Words that, in the reply to a password, mean it was refused.
const FAILURE_WORDS: &[&str] = &[
    "incorrect",
    "failed",
    "failure",
    "denied",
    "invalid",
    "bad password",
    "wrong",
    "not allowed",
    "authentication error",
    "login error",
    "falsch",
    "ungültig",
    "fehlgeschlagen",
    "incorrecto",
    "erroné",
    "échec",
    "errada",
    "неверн",
    "ошибка",
    "错误",
    "失败",
    "錯誤",
    "失敗",
    "違います",
];

/// Failure words in legacy encodings.
const FAILURE_BYTES: &[&[u8]] = &[
    b"\xb4\xed\xce\xf3", // 错误 (GBK)
    b"\xca\xa7\xb0\xdc", // 失败 (GBK)
    b"\xbf\xf9\xbb\x7e", // 錯誤 (Big5)
];

/// Words that mean the device stopped taking logins.
const LOCKOUT_WORDS: &[&str] = &[
    "locked",
    "too many",
    "try again later",
    "temporarily disabled",
    "temporarily blocked",
    "gesperrt",
    "bloqué",
    "bloqueado",
    "заблокирован",
    "锁定",
];

/// Words of a banner that only follows a login (when no prompt came).
const POST_LOGIN_WORDS: &[&str] = &[
    "built-in shell",
    "last login",
    "enter 'help'",
    "type 'help'",
    "enter \"help\"",
    "type \"help\"",
];

/// The screen's text in the two ways firmware writes it: UTF-8 (invalid
/// bytes replaced) and Latin-1 (every byte a character), both lower case.
fn texts(bytes: &[u8]) -> [String; 2] {
    [
        String::from_utf8_lossy(bytes).to_lowercase(),
        bytes
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .to_lowercase(),
    ]
}

fn has_word(bytes: &[u8], words: &[&str], legacy: &[&[u8]]) -> bool {
    texts(bytes)
        .iter()
        .any(|t| words.iter().any(|w| t.contains(w)))
        || legacy
            .iter()
            .any(|w| bytes.windows(w.len()).any(|x| x == *w))
}

/// True when `text` (any encoding) names a password: "Password",
/// "Kennwort", "密码"... (for prompts of other protocols, such as SSH
/// keyboard-interactive).
pub fn names_password(text: &[u8]) -> bool {
    has_word(text, PASSWORD_WORDS, PASSWORD_BYTES)
}

/// True when `text` names a user or login.
pub fn names_user(text: &[u8]) -> bool {
    has_word(text, LOGIN_WORDS, LOGIN_BYTES)
}

/// The last line with something on it, trailing blanks removed.
fn last_line(bytes: &[u8]) -> &[u8] {
    let line = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .rfind(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .unwrap_or(&[]);
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &line[..end]
}

/// A login or password prompt: a last line that ends with a colon (ASCII
/// or full-width) after a prompt word.
fn prompt_of(last: &[u8]) -> Option<Screen> {
    let head = if let Some(h) = last.strip_suffix(b":") {
        h
    } else {
        WIDE_COLONS.iter().find_map(|c| last.strip_suffix(*c))?
    };
    // The words right before the colon: "Password for root:", "Enter
    // login:", "Mot de passe :", not a sentence that happens to end in one.
    let head = &head[head.len().saturating_sub(48)..];
    if has_word(head, PASSWORD_WORDS, PASSWORD_BYTES) {
        Some(Screen::PasswordPrompt)
    } else if has_word(head, LOGIN_WORDS, LOGIN_BYTES) {
        Some(Screen::LoginPrompt)
    } else {
        None
    }
}

/// A shell prompt: a short last line ending in `#`, `$`, `>` or `%`
/// (BusyBox `~ # `, Cisco `Router>`, Huawei `WAP>`) that is not banner
/// decoration (`#####`, `<<< WARNING >>>`, `# Authorized use only #`).
fn is_shell_prompt(last: &[u8]) -> bool {
    let text = String::from_utf8_lossy(last);
    let t = text.trim();
    let Some(end) = t.chars().last() else {
        return false;
    };
    if !matches!(end, '#' | '$' | '>' | '%') || t.chars().count() > 80 {
        return false;
    }
    let before = t[..t.len() - 1].trim_end();
    // A bare "#" or "$" is BusyBox's and many vendors' whole prompt.
    if before.is_empty() {
        return true;
    }
    // Doubled ("##", ">>") or framing ("# ... #", "<... >") is decoration.
    if before.ends_with(end) || t.len() > 1 && t.starts_with(end) {
        return false;
    }
    if end == '>' && t.starts_with('<') {
        return false;
    }
    // Something besides symbols: "~ #" and "/ #" count, "=====>" does not.
    before
        .chars()
        .any(|c| c.is_alphanumeric() || matches!(c, '~' | '/' | ']' | ')' | '@' | ':'))
}

/// Judges the bytes received since our last input. `None`: not
/// conclusive yet (keep reading), or, when `quiet` is `Final`, nothing a
/// verdict can rest on.
///
/// Rules (the last line decides; words elsewhere only when no prompt
/// came):
/// - a login or password prompt at the end is that prompt at once; after
///   a password it is a refusal (the device asks again), or a lockout if
///   the reply also says so;
/// - a shell prompt at the end counts once the screen has settled, and
///   only in the greeting (no login at all) or after our input;
/// - failure, lockout and post-login words count only after our input and
///   only on a final screen with no prompt;
/// - a greeting that says only "too many users" on a final screen is a
///   lockout.
pub fn classify(bytes: &[u8], stage: Stage, quiet: Quiet) -> Option<Screen> {
    let last = last_line(bytes);
    if let Some(prompt) = prompt_of(last) {
        if stage == Stage::AfterPassword && has_word(bytes, LOCKOUT_WORDS, &[]) {
            return Some(Screen::Locked);
        }
        // A password asked again may be followed at once by a goodbye
        // (Cisco: "Password:" then "% Bad passwords" and a hang-up): it
        // counts once the screen has settled, or the next password would
        // go into a closing connection and be lost unjudged.
        if stage == Stage::AfterPassword
            && prompt == Screen::PasswordPrompt
            && quiet < Quiet::Settled
        {
            return None;
        }
        return Some(prompt);
    }
    if quiet >= Quiet::Settled && is_shell_prompt(last) {
        return Some(Screen::Shell);
    }
    if quiet < Quiet::Final {
        return None;
    }
    if has_word(bytes, LOCKOUT_WORDS, &[]) {
        return Some(Screen::Locked);
    }
    if stage == Stage::Greeting {
        return None;
    }
    // A banner only a login shows outweighs failure words, which a MOTD
    // carries ("There were 3 failed login attempts").
    if stage == Stage::AfterPassword && has_word(bytes, POST_LOGIN_WORDS, &[]) {
        return Some(Screen::Shell);
    }
    if has_word(bytes, FAILURE_WORDS, FAILURE_BYTES) {
        return Some(Screen::Incorrect);
    }
    None
}

/// How the device asks for a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A user name, then a password.
    UserAndPassword,
    /// A password only (the first prompt is `Password:`).
    PasswordOnly,
}

/// One telnet connection and the screen since our last input.
struct Session {
    stream: TcpStream,
    nvt: Nvt,
    screen: Vec<u8>,
    read_timeout: Duration,
    mode: Mode,
    /// The prompt the device is waiting at, and for which user when it
    /// re-asks a password.
    at: Screen,
    user: Option<String>,
    closed: bool,
}

impl Session {
    async fn open(addr: SocketAddr, s: &CheckSettings) -> std::io::Result<Session> {
        let stream = tokio::time::timeout(s.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
        Ok(Session {
            stream,
            nvt: Nvt::default(),
            screen: Vec::new(),
            read_timeout: s.read_timeout,
            mode: Mode::UserAndPassword,
            at: Screen::LoginPrompt,
            user: None,
            closed: false,
        })
    }

    /// Reads until the screen is conclusive for `stage`, or final. `poke`:
    /// a console that shows nothing until someone presses Enter (serial
    /// console servers, some DVRs) gets one CR LF after a quiet read
    /// timeout, as people and nmap's telnet-brute send.
    ///
    /// The settle time (an eighth of the read timeout, 150-750 ms) lets a
    /// banner finish before a `#` at its end is taken for a prompt; a
    /// device that answers seconds late is met by the read timeout; and an
    /// absolute deadline of three read timeouts ends a screen that a
    /// device trickles a byte at a time (ZGrab2 issue #163).
    async fn read_screen(&mut self, stage: Stage, mut poke: bool) -> Option<Screen> {
        let settle =
            (self.read_timeout / 8).clamp(Duration::from_millis(150), Duration::from_millis(750));
        let deadline = Instant::now() + self.read_timeout * 3;
        let mut last_byte = Instant::now();
        let mut buf = [0u8; 2048];
        loop {
            let now = Instant::now();
            let quiet_for = now.saturating_duration_since(last_byte);
            let quiet = if self.closed
                || quiet_for >= self.read_timeout
                || now >= deadline
                || self.screen.len() >= MAX_SCREEN
            {
                Quiet::Final
            } else if quiet_for >= settle {
                Quiet::Settled
            } else {
                Quiet::Arriving
            };
            if let Some(s) = classify(&self.screen, stage, quiet) {
                return Some(s);
            }
            if quiet == Quiet::Final {
                if poke
                    && !self.closed
                    && now < deadline
                    && self.screen.iter().all(u8::is_ascii_whitespace)
                {
                    poke = false;
                    self.stream.write_all(b"\r\n").await.ok()?;
                    last_byte = Instant::now();
                    continue;
                }
                return None;
            }
            let wait = if quiet == Quiet::Arriving {
                settle - quiet_for
            } else {
                self.read_timeout - quiet_for
            }
            .min(deadline - now);
            match tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
                Err(_) => {}
                Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
                Ok(Ok(n)) => {
                    let (mut data, mut reply) = (Vec::new(), Vec::new());
                    self.nvt.feed(&buf[..n], &mut data, &mut reply);
                    if !reply.is_empty() && self.stream.write_all(&reply).await.is_err() {
                        self.closed = true;
                    }
                    if !data.is_empty() {
                        let room = MAX_SCREEN.saturating_sub(self.screen.len());
                        self.screen.extend_from_slice(&data[..data.len().min(room)]);
                        last_byte = Instant::now();
                    }
                }
            }
        }
    }

    /// True when a kept connection still waits at its prompt: whatever the
    /// device sent after the prompt is read first, without waiting. A
    /// console that re-prompts and then hangs up ("Password: " then "%
    /// Bad passwords", Cisco) would otherwise get our next pair into a
    /// closed connection and its goodbye read as the answer: a pair lost
    /// unjudged.
    async fn still_waiting(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::ZERO, self.stream.read(&mut buf)).await {
                Err(_) => break, // nothing more: still waiting
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(n)) => {
                    let (mut data, mut reply) = (Vec::new(), Vec::new());
                    self.nvt.feed(&buf[..n], &mut data, &mut reply);
                    self.screen.extend_from_slice(&data);
                    if self.screen.len() > MAX_SCREEN {
                        return false;
                    }
                }
            }
        }
        prompt_of(last_line(&self.screen)) == Some(self.at)
    }

    async fn send_line(&mut self, line: &str) -> Option<()> {
        self.screen.clear();
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .ok()
    }

    /// The end of the screen, as text for evidence.
    fn tail(&self) -> String {
        tail(&String::from_utf8_lossy(&self.screen))
    }
}

/// Tries `pair` on the session (opening one when needed); the session is
/// kept for the next pair while the device keeps prompting.
async fn try_pair(
    addr: SocketAddr,
    session: &mut Option<Session>,
    pair: &Pair,
    queue: &crate::PairQueue,
    s: &CheckSettings,
    password_only: &mut bool,
) -> Attempt {
    // A device that re-asks the password of another user than this pair's
    // needs a fresh connection for it.
    if let Some(sess) = session {
        if sess.mode == Mode::UserAndPassword
            && sess.at == Screen::PasswordPrompt
            && sess.user.as_deref() != Some(pair.user.as_str())
            || !sess.still_waiting().await
        {
            *session = None;
        }
    }
    if session.is_none() {
        let Ok(mut fresh) = Session::open(addr, s).await else {
            return Attempt::Unreachable;
        };
        match fresh.read_screen(Stage::Greeting, true).await {
            Some(Screen::LoginPrompt) => fresh.at = Screen::LoginPrompt,
            Some(Screen::PasswordPrompt) => {
                fresh.mode = Mode::PasswordOnly;
                fresh.at = Screen::PasswordPrompt;
            }
            Some(Screen::Shell) => {
                return Attempt::Success {
                    no_password: true,
                    evidence: format!("a shell without any login: {}", fresh.tail()),
                }
            }
            Some(Screen::Locked) => return Attempt::Locked(fresh.tail()),
            _ => return Attempt::Unreachable,
        }
        *session = Some(fresh);
    }
    let sess = session.as_mut().expect("session");
    *password_only = sess.mode == Mode::PasswordOnly;
    if sess.mode == Mode::PasswordOnly && !queue.first_try_of_password(&pair.password) {
        return Attempt::Skipped;
    }
    if sess.at == Screen::LoginPrompt {
        let first = match queue.user_turn(&pair.user).await {
            crate::UserTurn::Go { first } => first,
            crate::UserTurn::Stop => return Attempt::Skipped,
        };
        if sess.send_line(&pair.user).await.is_none() {
            if first {
                queue.user_settled(&pair.user, false);
            }
            *session = None;
            return Attempt::Retry;
        }
        sess.user = Some(pair.user.clone());
        let reply = sess.read_screen(Stage::AfterUser, false).await;
        if first {
            queue.user_settled(&pair.user, reply == Some(Screen::PasswordPrompt));
        }
        match reply {
            Some(Screen::PasswordPrompt) => {}
            Some(Screen::Shell) => {
                let evidence = format!("a shell after the user name alone: {}", sess.tail());
                *session = None; // close: nothing after a login
                return Attempt::Success {
                    no_password: true,
                    evidence,
                };
            }
            Some(Screen::LoginPrompt) => return Attempt::Failed,
            Some(Screen::Locked) => {
                let evidence = sess.tail();
                *session = None;
                return Attempt::Locked(evidence);
            }
            Some(Screen::Incorrect) => {
                *session = None;
                return Attempt::Failed;
            }
            // Silence or a hang-up after a user name judged nothing.
            None => {
                *session = None;
                return Attempt::Retry;
            }
        }
    }
    if sess.send_line(&pair.password).await.is_none() {
        if sess.mode == Mode::PasswordOnly {
            queue.forget_password(&pair.password); // not tried: try it again
        }
        *session = None;
        return Attempt::Retry;
    }
    let reply = sess.read_screen(Stage::AfterPassword, false).await;
    match reply {
        Some(Screen::Shell) => {
            let evidence = if sess.mode == Mode::PasswordOnly {
                format!(
                    "a password-only login (no user name asked): {}",
                    sess.tail()
                )
            } else {
                sess.tail()
            };
            *session = None; // close: nothing after a login
            Attempt::Success {
                no_password: false,
                evidence,
            }
        }
        Some(Screen::Locked) => {
            let evidence = sess.tail();
            *session = None;
            Attempt::Locked(evidence)
        }
        // Asked again on the same connection: refused, and ready for the
        // next try.
        Some(prompt @ (Screen::LoginPrompt | Screen::PasswordPrompt)) => {
            sess.at = prompt;
            Attempt::Failed
        }
        // Refused with no prompt after it; a connection is cheaper than a
        // wait for a prompt that may not come.
        Some(Screen::Incorrect) => {
            *session = None;
            Attempt::Failed
        }
        // Silence or a hang-up after a password: a refusal (devices close
        // after a wrong password); a login would have shown something.
        None => {
            *session = None;
            Attempt::Failed
        }
    }
}

fn tail(text: &str) -> String {
    let t = text.trim();
    let start = t.len().saturating_sub(200);
    let start = (start..=t.len())
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(t.len());
    t[start..].to_string()
}

/// The telnet credential check: a login worker's loop over its pairs.
pub struct TelnetLogin;

impl crate::LoginWorker for TelnetLogin {
    fn name(&self) -> &'static str {
        "telnet"
    }

    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        queue: &'a crate::PairQueue,
        s: &'a CheckSettings,
    ) -> crate::WorkerFuture<'a> {
        Box::pin(async move {
            let mut session: Option<Session> = None;
            let mut retries = 0;
            let mut password_only = false;
            while let Some(pair) = queue.next() {
                let mut outcome =
                    try_pair(addr, &mut session, &pair, queue, s, &mut password_only).await;
                // A dropped connection before the answer: one more go.
                while outcome == Attempt::Retry && retries < 3 {
                    retries += 1;
                    outcome =
                        try_pair(addr, &mut session, &pair, queue, s, &mut password_only).await;
                }
                // A password-only device: the pair is its password alone.
                let judged = if matches!(
                    outcome,
                    Attempt::Success {
                        no_password: false,
                        ..
                    }
                ) && password_only
                {
                    Pair {
                        user: String::new(),
                        password: pair.password.clone(),
                    }
                } else {
                    pair.clone()
                };
                if queue.report(&judged, outcome) {
                    break;
                }
                tokio::time::sleep(queue.backoff()).await;
            }
            drop(session);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Quiet::*;
    use Stage::*;

    fn c(text: &[u8], stage: Stage, quiet: Quiet) -> Option<Screen> {
        classify(text, stage, quiet)
    }

    #[test]
    fn prompts_decide_at_once() {
        assert_eq!(
            c(b"\r\nHG532e login: ", Greeting, Arriving),
            Some(Screen::LoginPrompt)
        );
        assert_eq!(
            c(b"Welcome to HiLinux.\r\n(none) login: ", Greeting, Arriving),
            Some(Screen::LoginPrompt)
        );
        assert_eq!(
            c(b"Username: ", Greeting, Arriving),
            Some(Screen::LoginPrompt)
        );
        assert_eq!(
            c(b"root\r\nPassword: ", AfterUser, Arriving),
            Some(Screen::PasswordPrompt)
        );
        assert_eq!(
            c(
                b"\r\n\r\nUser Access Verification\r\n\r\nPassword: ",
                Greeting,
                Arriving
            ),
            Some(Screen::PasswordPrompt)
        );
        assert_eq!(c(b"\r\n", Greeting, Final), None);
        // A password asked again after a wrong one waits for the screen to
        // settle: a goodbye may follow it.
        assert_eq!(c(b"\r\nPassword: ", AfterPassword, Arriving), None);
        assert_eq!(
            c(b"\r\nPassword: ", AfterPassword, Settled),
            Some(Screen::PasswordPrompt)
        );
        assert_eq!(
            c(
                b"\r\nPassword: \r\n% Bad passwords\r\n",
                AfterPassword,
                Final
            ),
            Some(Screen::Incorrect)
        );
    }

    #[test]
    fn prompts_in_other_languages_and_encodings() {
        for (text, want) in [
            ("Benutzername: ", Screen::LoginPrompt),
            ("Kennwort:", Screen::PasswordPrompt),
            ("Mot de passe : ", Screen::PasswordPrompt),
            ("Contraseña:", Screen::PasswordPrompt),
            ("Пароль: ", Screen::PasswordPrompt),
            ("用户名：", Screen::LoginPrompt),
            ("密码：", Screen::PasswordPrompt),
            ("パスワード:", Screen::PasswordPrompt),
        ] {
            assert_eq!(c(text.as_bytes(), Greeting, Arriving), Some(want), "{text}");
        }
        // The same in legacy encodings, raw.
        let gbk_user = b"\xd3\xc3\xbb\xa7\xc3\xfb\xa3\xba"; // 用户名： (GBK)
        let gbk_pass = b"\xc3\xdc\xc2\xeb\xa3\xba "; // 密码： (GBK)
        let big5_pass = b"\xb1\x4b\xbd\x58:"; // 密碼: (Big5)
        let sjis_pass = b"\x83\x70\x83\x58\x83\x8f\x81\x5b\x83\x68\x81\x46"; // パスワード： (Shift_JIS)
        let cp1251_pass = b"\xcf\xe0\xf0\xee\xeb\xfc: "; // Пароль: (CP1251)
        let koi8_pass = b"\xf0\xc1\xd2\xcf\xcc\xd8:"; // Пароль: (KOI8-R)
        let latin1_pass = b"Contrase\xf1a: "; // Contraseña: (Latin-1)
        assert_eq!(c(gbk_user, Greeting, Arriving), Some(Screen::LoginPrompt));
        for raw in [
            &gbk_pass[..],
            big5_pass,
            sjis_pass,
            cp1251_pass,
            koi8_pass,
            latin1_pass,
        ] {
            assert_eq!(
                c(raw, AfterUser, Arriving),
                Some(Screen::PasswordPrompt),
                "{raw:x?}"
            );
        }
    }

    #[test]
    fn banners_are_not_shells() {
        // A prompt character inside a banner or legal notice proves nothing,
        // and a prompt needs the screen to settle.
        for banner in [
            &b"\r\n##########################\r\n"[..],
            b"# Authorized access only #\r\n",
            b"<<<<< WARNING >>>>>\r\n",
            b"*** Unauthorized access is prohibited ***\r\n=====>",
            b"\r\nBusyBox v1.01 (2010.03.31-10:05+0000) Built-in shell (msh)\r\n",
        ] {
            assert_eq!(c(banner, Greeting, Settled), None, "{banner:?}");
        }
        assert_eq!(c(b"\r\nRouter>", Greeting, Arriving), None);
        assert_eq!(c(b"\r\nRouter>", Greeting, Settled), Some(Screen::Shell));
        assert_eq!(c(b"\r\n~ # ", Greeting, Settled), Some(Screen::Shell));
        assert_eq!(c(b"\r\n# ", AfterPassword, Settled), Some(Screen::Shell));
        assert_eq!(c(b"\r\nATP>", AfterPassword, Settled), Some(Screen::Shell));
    }

    #[test]
    fn failure_words_count_only_in_the_reply_to_a_password() {
        let legal = b"\r\nWARNING: unauthorized access is denied; failed logins are recorded.\r\n";
        assert_eq!(c(legal, Greeting, Final), None);
        let motd =
            b"\r\nLast failed login: Mon Nov 30 09:12:44 UTC 2026 from 10.0.0.9 on pts/0\r\n\
There were 3 failed login attempts since the last successful login.\r\n\r\n\
BusyBox v1.19.4 (2015-03-11 10:02:21 CST) built-in shell (ash)\r\n\
Enter 'help' for a list of built-in commands.\r\n\r\n~ # ";
        assert_eq!(c(motd, AfterPassword, Settled), Some(Screen::Shell));
        // While the MOTD is arriving and no prompt came, nothing is decided.
        let half = &motd[..motd.len() - 6];
        assert_eq!(c(half, AfterPassword, Settled), None);
        assert_eq!(c(b"\r\nLogin incorrect\r\n", AfterPassword, Settled), None);
        assert_eq!(
            c(b"\r\nLogin incorrect\r\n", AfterPassword, Final),
            Some(Screen::Incorrect)
        );
        assert_eq!(
            c(
                b"\r\nLogin incorrect\r\ndvr login: ",
                AfterPassword,
                Arriving
            ),
            Some(Screen::LoginPrompt)
        );
        assert_eq!(
            c(
                b"\r\nLogin incorrect (account locked)\r\n",
                AfterPassword,
                Final
            ),
            Some(Screen::Locked)
        );
        assert_eq!(
            c(
                b"\r\nToo many failed attempts\r\nlogin: ",
                AfterPassword,
                Arriving
            ),
            Some(Screen::Locked)
        );
        // A MOTD with failure words and a post-login banner whose prompt
        // never came: a login, once final.
        assert_eq!(c(half, AfterPassword, Final), Some(Screen::Shell));
        // A post-login banner with no prompt is a login, once final.
        assert_eq!(
            c(
                b"\r\nBusyBox v1.19.4 built-in shell (ash)\r\n",
                AfterPassword,
                Final
            ),
            Some(Screen::Shell)
        );
        assert_eq!(
            c(
                b"\r\nBusyBox v1.19.4 built-in shell (ash)\r\n",
                AfterUser,
                Final
            ),
            None
        );
    }

    #[test]
    fn the_nvt_refuses_options_and_keeps_split_commands() {
        let mut nvt = Nvt::default();
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        // DO ECHO split after IAC DO; a subnegotiation split in its middle.
        nvt.feed(&[IAC, 253], &mut data, &mut reply);
        assert!(reply.is_empty() && data.is_empty());
        nvt.feed(&[1, b'a', IAC, SB, 24, 1], &mut data, &mut reply);
        nvt.feed(
            &[IAC, SE, b'b', 0, IAC, IAC, IAC, 251, 3],
            &mut data,
            &mut reply,
        );
        assert_eq!(data, b"ab\xff");
        assert_eq!(reply, [IAC, 252, 1, IAC, 254, 3]);
    }
}
