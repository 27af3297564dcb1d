//! HTTP authentication as the RFCs define it, sans-IO: every challenge of
//! every `WWW-Authenticate` header (RFC 7235 §4.1: a 401 may carry several,
//! in several headers or comma-separated in one), the choice of the one we
//! can answer (Digest, then Basic, beside Negotiate, NTLM or Bearer), the
//! Digest response for MD5, MD5-sess, SHA-256 and SHA-256-sess with qop
//! `auth` or `auth-int` (RFC 7616), Basic (RFC 7617), and the judgement of
//! the answer: success is a 2xx whose challenge is gone, not a redirect to
//! a login or error page and not a 200 page that says the login failed.

use md5::{Digest as _, Md5};
use sha2::{Digest as _, Sha256};

use crate::dict::Pair;

/// One challenge: a scheme (lower-cased) and its parameters (names
/// lower-cased, values unquoted), or a token68.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// "basic", "digest", "negotiate", ...
    pub scheme: String,
    /// auth-params in order.
    pub params: Vec<(String, String)>,
    /// A token68 instead of parameters (Negotiate's blob).
    pub token68: Option<String>,
}

impl Challenge {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits on commas outside quoted strings.
fn split_items(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in header.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&header[start..]);
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Every challenge of every `WWW-Authenticate` header value, in order
/// (RFC 7235 §2.1 and §4.1). A comma-separated item that starts with a
/// token not followed by `=` opens a challenge; `name=value` items are its
/// parameters. Hostile input gives fewer challenges, never a panic.
pub fn parse_challenges<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    for header in headers {
        for item in split_items(header) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (first, rest) = match item.find([' ', '\t']) {
                Some(i) => (&item[..i], item[i..].trim()),
                None => (item, ""),
            };
            let param = |text: &str| -> Option<(String, String)> {
                let (n, v) = text.split_once('=')?;
                let n = n.trim();
                is_token(n).then(|| (n.to_ascii_lowercase(), unquote(v)))
            };
            if is_token(first) && !first.contains('=') {
                // A scheme, alone, with a token68, or with its first param.
                let mut ch = Challenge {
                    scheme: first.to_ascii_lowercase(),
                    params: Vec::new(),
                    token68: None,
                };
                // token68 (RFC 7235 §2.1): base64-ish characters, then only
                // '=' padding; anything else is the first auth-param.
                let body = rest.trim_end_matches('=');
                let token68 = !body.is_empty()
                    && body
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c));
                if token68 {
                    ch.token68 = Some(rest.to_string());
                } else if let Some(p) = param(rest) {
                    ch.params.push(p);
                }
                out.push(ch);
            } else if let (Some(p), Some(last)) = (param(item), out.last_mut()) {
                last.params.push(p);
            }
        }
    }
    out
}

/// The Digest algorithms we answer (RFC 7616 §3.3 and §6.1).
fn digest_algorithm(ch: &Challenge) -> Option<(&'static str, bool)> {
    let a = ch.param("algorithm").unwrap_or("MD5").to_ascii_uppercase();
    match a.as_str() {
        "MD5" => Some(("MD5", false)),
        "MD5-SESS" => Some(("MD5", true)),
        "SHA-256" => Some(("SHA-256", false)),
        "SHA-256-SESS" => Some(("SHA-256", true)),
        _ => None,
    }
}

/// The qop we answer with: `auth` when offered, else `auth-int`, else none
/// (RFC 2069 style) when the challenge names no qop.
fn digest_qop(ch: &Challenge) -> Option<Option<&'static str>> {
    match ch.param("qop") {
        None => Some(None),
        Some(q) => {
            let offered: Vec<&str> = q.split(',').map(str::trim).collect();
            if offered.contains(&"auth") {
                Some(Some("auth"))
            } else if offered.contains(&"auth-int") {
                Some(Some("auth-int"))
            } else {
                None
            }
        }
    }
}

/// The challenge we can answer: the first Digest one with an algorithm
/// and qop we support (servers list their preferred first, RFC 7616 §3.7),
/// else Basic; None when only other schemes are offered.
pub fn choose(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .find(|c| c.scheme == "digest" && digest_algorithm(c).is_some() && digest_qop(c).is_some())
        .or_else(|| challenges.iter().find(|c| c.scheme == "basic"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn h(algorithm: &str, text: &str) -> String {
    if algorithm == "SHA-256" {
        hex(&Sha256::digest(text.as_bytes()))
    } else {
        hex(&Md5::digest(text.as_bytes()))
    }
}

/// The `Authorization` value answering `ch` with `pair` for `method uri`
/// (RFC 7617 Basic, or RFC 7616 Digest with the challenge's algorithm and
/// qop; `cnonce` and `nc` as given; `body` is the request body, for
/// `auth-int`). None for a challenge [`choose`] would not pick.
pub fn authorization(
    ch: &Challenge,
    pair: &Pair,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
    body: &[u8],
) -> Option<String> {
    if ch.scheme == "basic" {
        return Some(format!(
            "Basic {}",
            crate::http::base64(format!("{}:{}", pair.user, pair.password).as_bytes())
        ));
    }
    if ch.scheme != "digest" {
        return None;
    }
    let (alg, sess) = digest_algorithm(ch)?;
    let qop = digest_qop(ch)?;
    let realm = ch.param("realm").unwrap_or("");
    let nonce = ch.param("nonce").unwrap_or("");
    let nc = format!("{nc:08x}");
    let mut ha1 = h(alg, &format!("{}:{realm}:{}", pair.user, pair.password));
    if sess {
        ha1 = h(alg, &format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = match qop {
        Some("auth-int") => {
            let body_hash = if alg == "SHA-256" {
                hex(&Sha256::digest(body))
            } else {
                hex(&Md5::digest(body))
            };
            h(alg, &format!("{method}:{uri}:{body_hash}"))
        }
        _ => h(alg, &format!("{method}:{uri}")),
    };
    let response = match qop {
        Some(q) => h(alg, &format!("{ha1}:{nonce}:{nc}:{cnonce}:{q}:{ha2}")),
        None => h(alg, &format!("{ha1}:{nonce}:{ha2}")),
    };
    let algorithm = ch.param("algorithm").unwrap_or("MD5");
    // RFC 7616 section 3.4.4: a server that asks `userhash=true` gets
    // H(user:realm); a user name that is not ASCII goes as `username*`
    // (RFC 8187 UTF-8 percent-encoding); others as a quoted string.
    let userhash = ch
        .param("userhash")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let username = if userhash {
        format!(
            "username=\"{}\", userhash=true",
            h(alg, &format!("{}:{realm}", pair.user))
        )
    } else if pair.user.is_ascii() && !pair.user.bytes().any(|b| b.is_ascii_control()) {
        format!(
            "username=\"{}\"",
            pair.user.replace('\\', "\\\\").replace('"', "\\\"")
        )
    } else {
        let encoded: String = pair
            .user
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("username*=UTF-8''{encoded}")
    };
    let mut v = format!(
        "Digest {username}, realm=\"{realm}\", uri=\"{uri}\", algorithm={algorithm}, nonce=\"{nonce}\", response=\"{response}\""
    );
    if let Some(q) = qop {
        v.push_str(&format!(", qop={q}, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = ch.param("opaque") {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    Some(v)
}

/// Words of a page that says the login failed (firmware that answers a
/// wrong password with 200 and an error page).
const FAILURE_WORDS: &[&str] = &[
    "login failed",
    "login error",
    "invalid password",
    "invalid username",
    "incorrect password",
    "wrong password",
    "authentication failed",
    "access denied",
    "unauthorized",
];

/// Words of a redirect target that is a login or error page.
const LOGIN_PATH_WORDS: &[&str] = &[
    "login", "logon", "signin", "auth", "error", "fail", "denied",
];

/// Whether an answer to an Authorization proves the pair worked (RFC 7235
/// §3.1: 401 means the credentials were refused): a 2xx whose challenge is
/// gone and whose page does not say the login failed, or a redirect that
/// does not lead to a login or error page. A 401, 403, a redirect to
/// `/login?error=1`, or a 200 "Login failed" page is not.
pub fn login_worked(code: u16, www_authenticate: bool, location: Option<&str>, body: &str) -> bool {
    match code {
        200..=299 => {
            let lower = body.to_ascii_lowercase();
            !www_authenticate && !FAILURE_WORDS.iter().any(|w| lower.contains(w))
        }
        300..=399 => {
            let to = location.unwrap_or("").to_ascii_lowercase();
            !to.is_empty() && !LOGIN_PATH_WORDS.iter().any(|w| to.contains(w))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(u: &str, p: &str) -> Pair {
        Pair {
            user: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn every_challenge_of_every_header_is_read() {
        let c = parse_challenges(["Negotiate", "Basic realm=\"Camera\""]);
        assert_eq!(c.len(), 2);
        assert_eq!(choose(&c).unwrap().scheme, "basic");
        let c = parse_challenges(["Negotiate, Basic realm=\"Camera, front\", charset=\"UTF-8\""]);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[1].param("realm"), Some("Camera, front"));
        assert_eq!(c[1].param("charset"), Some("UTF-8"));
        let c = parse_challenges([
            "NTLM",
            "Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXag==",
            "Bearer realm=\"x\"",
        ]);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[1].token68.as_deref(),
            Some("YIIBhgYGKwYBBQUCoIIBejCCAXag==")
        );
        assert_eq!(choose(&c), None);
        // RFC 7616 §3.7: one challenge per algorithm, SHA-256 first.
        let c = parse_challenges([
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, nonce=\"7ypf\", opaque=\"FQhe\"",
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=MD5, nonce=\"7ypf\", opaque=\"FQhe\"",
        ]);
        assert_eq!(c.len(), 2);
        assert_eq!(choose(&c).unwrap().param("algorithm"), Some("SHA-256"));
        // Unknown algorithms are passed over for the next challenge.
        let c = parse_challenges([
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256",
            "Basic realm=\"r\"",
        ]);
        assert_eq!(choose(&c).unwrap().scheme, "basic");
        for junk in [
            "",
            ",,,",
            "=",
            "\"",
            "Digest realm=\"unterminated",
            "Basic realm=\\\"x\\\"",
        ] {
            let _ = parse_challenges([junk]);
        }
    }

    /// RFC 7616 §3.9.1: Mufasa / "Circle of Life", MD5 and SHA-256.
    #[test]
    fn digest_matches_rfc_7616_vectors() {
        let header = |alg: &str| {
            format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        let p = pair("Mufasa", "Circle of Life");
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, want) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let c = parse_challenges([header(alg).as_str()]);
            let a = authorization(&c[0], &p, "GET", "/dir/index.html", 1, cnonce, b"").unwrap();
            assert!(a.contains(&format!("response=\"{want}\"")), "{alg}: {a}");
            assert!(a.contains("qop=auth, nc=00000001"), "{a}");
        }
    }

    /// RFC 7616 section 3.4.4: `userhash=true` sends H(user:realm); a
    /// user name beyond ASCII goes as `username*` (RFC 8187); quotes and
    /// backslashes are escaped, not dropped.
    #[test]
    fn digest_user_names_as_rfc_7616_sends_them() {
        let ch = |extra: &str| {
            parse_challenges([format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth\", algorithm=SHA-256, nonce=\"n\"{extra}"
            )
            .as_str()])
        };
        let a = authorization(
            &ch(", userhash=true")[0],
            &pair("Mufasa", "x"),
            "GET",
            "/",
            1,
            "c",
            b"",
        )
        .unwrap();
        assert!(
            a.contains("username=\"a947aad205e80e429958a387394944c6b496301e79f89d35a4cc23b6ee12b5b6\", userhash=true"),
            "{a}"
        );
        let a = authorization(
            &ch("")[0],
            &pair("J\u{e4}s\u{f8}n Doe", "x"),
            "GET",
            "/",
            1,
            "c",
            b"",
        )
        .unwrap();
        assert!(a.contains("username*=UTF-8''J%C3%A4s%C3%B8n%20Doe"), "{a}");
        let a = authorization(&ch("")[0], &pair("a\"b\\c", "x"), "GET", "/", 1, "c", b"").unwrap();
        assert!(a.contains(r#"username="a\"b\\c""#), "{a}");
    }

    /// RFC 2617 §3.5 (MD5, qop=auth), and the -sess and auth-int forms
    /// computed by their definitions.
    #[test]
    fn digest_sess_and_auth_int_follow_their_definitions() {
        let p = pair("Mufasa", "Circle Of Life");
        let c = parse_challenges(["Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""]);
        let a = authorization(&c[0], &p, "GET", "/dir/index.html", 1, "0a4f113b", b"").unwrap();
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        let md5 = |t: &str| hex(&Md5::digest(t.as_bytes()));
        let c = parse_challenges([
            "Digest realm=\"IPC\", qop=\"auth\", algorithm=MD5-sess, nonce=\"abc\"",
        ]);
        let a = authorization(&c[0], &pair("admin", "admin"), "GET", "/", 1, "cn", b"").unwrap();
        let ha1 = md5(&format!("{}:abc:cn", md5("admin:IPC:admin")));
        let want = md5(&format!("{ha1}:abc:00000001:cn:auth:{}", md5("GET:/")));
        assert!(a.contains(&format!("response=\"{want}\"")), "{a}");
        let c = parse_challenges(["Digest realm=\"IPC\", qop=\"auth-int\", nonce=\"abc\""]);
        let a = authorization(&c[0], &pair("admin", "admin"), "GET", "/", 1, "cn", b"").unwrap();
        let ha2 = md5(&format!("GET:/:{}", md5("")));
        let want = md5(&format!(
            "{}:abc:00000001:cn:auth-int:{ha2}",
            md5("admin:IPC:admin")
        ));
        assert!(
            a.contains(&format!("response=\"{want}\"")) && a.contains("qop=auth-int"),
            "{a}"
        );
    }

    /// Issue 12: a "302 to /login?error=1" was reported as a login.
    #[test]
    fn only_a_real_answer_counts_as_a_login() {
        assert!(login_worked(200, false, None, "<title>Camera Live</title>"));
        assert!(
            !login_worked(200, true, None, "ok"),
            "challenge still there"
        );
        assert!(!login_worked(
            200,
            false,
            None,
            "<p>Login failed: wrong password</p>"
        ));
        assert!(!login_worked(302, false, Some("/login?error=1"), ""));
        assert!(!login_worked(303, false, Some("/index.htm?auth=fail"), ""));
        assert!(!login_worked(302, false, None, ""));
        assert!(login_worked(302, false, Some("/main.html"), ""));
        assert!(!login_worked(401, false, None, ""));
        assert!(!login_worked(403, false, None, ""));
    }
}
