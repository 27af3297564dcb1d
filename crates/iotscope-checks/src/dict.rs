//! The dictionary of ID/password pairs: the Mirai scanner's built-in list
//! (the 62 entries of its 2016 source, 61 distinct), replaced or extended
//! by `user:password` files.

/// The built-in list, as the project keeps it (`data/mirai-creds.txt`).
pub const MIRAI_CREDENTIALS: &str = include_str!("../../../data/mirai-creds.txt");

/// One ID/password pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pair {
    /// Login name.
    pub user: String,
    /// Password (may be empty).
    pub password: String,
}

/// A line that is not `user:password`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}, line {line}: expected user:password, found {text:?}")]
pub struct DictError {
    /// File name or "the built-in list".
    pub source_name: String,
    /// 1-based line number.
    pub line: usize,
    /// The line.
    pub text: String,
}

/// Parses `user:password` lines (`#` comments, blank lines skipped; the
/// first colon splits, so passwords may hold colons). Duplicates are kept
/// once, in first-seen order: the order is the order of attempts.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<Pair>, DictError> {
    let mut out: Vec<Pair> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((user, password)) = line.split_once(':') else {
            return Err(DictError {
                source_name: source_name.to_string(),
                line: i + 1,
                text: line.to_string(),
            });
        };
        let pair = Pair {
            user: user.to_string(),
            password: password.to_string(),
        };
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    Ok(out)
}

/// The built-in list.
pub fn builtin() -> Vec<Pair> {
    parse(MIRAI_CREDENTIALS, "the built-in list").expect("the built-in list parses")
}

/// `base` followed by the pairs of `extra` it does not hold yet.
pub fn extend(mut base: Vec<Pair>, extra: Vec<Pair>) -> Vec<Pair> {
    for p in extra {
        if !base.contains(&p) {
            base.push(p);
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_list_is_mirais() {
        let b = builtin();
        assert_eq!(b.len(), 61, "62 entries, guest:12345 twice");
        assert_eq!(
            b[0],
            Pair {
                user: "root".into(),
                password: "xc3511".into()
            }
        );
        assert!(b.iter().any(|p| p.user == "root" && p.password.is_empty()));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse("# c\nadmin:admin\nnocolon\n", "my.txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "my.txt, line 3: expected user:password, found \"nocolon\""
        );
        let p = parse("a:b:c\n", "x").unwrap();
        assert_eq!(p[0].password, "b:c");
        let ext = extend(builtin(), parse("admin:admin\nnew:pair\n", "x").unwrap());
        assert_eq!(ext.len(), 62);
    }
}
