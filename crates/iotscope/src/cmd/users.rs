//! `iotscope users`: dashboard accounts (operators and ISPs) and API tokens.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use iotscope_store::{SessionRecord, Store, UserRecord};

#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// Add an account (or replace its password and role, ending its sessions).
    Add {
        /// Login name.
        name: String,
        /// operator (sees everything) or isp (sees only its ISP's addresses).
        #[arg(long, value_parser = ["operator", "isp"])]
        role: String,
        /// For --role isp: the ISP's name as in the config's [[isp]] table.
        #[arg(long)]
        isp: Option<String>,
        /// Read the password from the first line of standard input (default:
        /// make a random one and print it).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// List the accounts.
    List {
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Remove an account and its sessions and tokens.
    Remove {
        name: String,
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Make an API token for an account (printed once; only its hash is kept).
    Token {
        name: String,
        /// How long it works.
        #[arg(long, default_value = "90d")]
        valid: humantime::Duration,
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

/// The store, created and migrated if need be: `users` sets a store up (an
/// operator's first command on a new store may be `users add` or even
/// `users list`), so it may make one.
fn open(db: Option<PathBuf>, cfg: &crate::config::Config) -> anyhow::Result<super::StoreBox> {
    let db = db
        .or_else(|| cfg.store.db.clone())
        .unwrap_or_else(|| PathBuf::from("iotscope.db"));
    super::open_store(&db)
}

/// Adds (or replaces) an account; returns the password when it was made here.
pub fn add_user(
    store: &mut dyn Store,
    name: &str,
    role: &str,
    isp: Option<String>,
    password: Option<String>,
    cfg: &crate::config::Config,
) -> anyhow::Result<Option<String>> {
    anyhow::ensure!(
        !name.is_empty() && name.len() <= 64 && !name.contains(char::is_whitespace),
        "account name {name:?}: 1 to 64 characters, no spaces"
    );
    // The account keeps the ISP's id (given as the id or the name).
    let table = iotscope_alerts::IspTable::new(cfg.isp.clone())?;
    let isp = match (role, &isp) {
        ("isp", None) => {
            anyhow::bail!("--role isp needs --isp ID (an ISP of the config's [[isp]] table)")
        }
        ("isp", Some(i)) => Some(
            table
                .by_key(i)
                .with_context(|| {
                    format!(
                        "ISP {i:?} is not in the config's [[isp]] table (give --config FILE; ids: {})",
                        table
                            .isps()
                            .iter()
                            .map(|x| x.id())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?
                .id()
                .to_string(),
        ),
        ("operator", Some(_)) => anyhow::bail!("an operator sees every ISP: drop --isp"),
        _ => None,
    };
    let made = password.is_none();
    let password = password.unwrap_or_else(|| iotscope_web::new_token()[..20].to_string());
    anyhow::ensure!(
        password.len() >= 10,
        "the password needs at least 10 characters"
    );
    store.put_user(&UserRecord {
        name: name.to_string(),
        password_hash: iotscope_web::hash_password(&password),
        role: role.to_string(),
        isp,
        created: iotscope_store::now_rfc3339(),
    })?;
    Ok(made.then_some(password))
}

pub fn run(c: UsersCommand, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    match c {
        UsersCommand::Add {
            name,
            role,
            isp,
            password_stdin,
            db,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                Some(line.trim_end_matches(['\r', '\n']).to_string())
            } else {
                None
            };
            let mut store = open(db, cfg)?;
            match add_user(store.as_mut(), &name, &role, isp, password, cfg)? {
                Some(p) => println!("{name} {p}"),
                None => eprintln!("iotscope users: {name} saved"),
            }
        }
        UsersCommand::List { db } => {
            let store = open(db, cfg)?;
            for u in store.users()? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.name,
                    u.role,
                    u.isp.as_deref().unwrap_or("-"),
                    u.created
                );
            }
        }
        UsersCommand::Remove { name, db } => {
            let mut store = open(db, cfg)?;
            anyhow::ensure!(store.delete_user(&name)?, "no account {name:?}");
            eprintln!("iotscope users: {name} removed");
        }
        UsersCommand::Token { name, valid, db } => {
            let mut store = open(db, cfg)?;
            anyhow::ensure!(
                store.users()?.iter().any(|u| u.name == name),
                "no account {name:?} (add it with `iotscope users add`)"
            );
            let token = iotscope_web::new_token();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as i64;
            store.put_session(
                &SessionRecord {
                    token_hash: iotscope_web::token_hash(&token),
                    user: name,
                    kind: "token".into(),
                    csrf: String::new(),
                    created: iotscope_store::now_rfc3339(),
                    expires_ns: now + valid.as_nanos() as i64,
                },
                now,
            )?;
            println!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
