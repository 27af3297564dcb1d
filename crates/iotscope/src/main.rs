//! The `iotscope` binary: parses the command line and wires the library
//! crates together. Logic worth testing on its own lives in the libraries.

mod args;
mod cmd;
mod config;
mod files;
mod output;
mod sys;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// IoT security observatory: darknet telescope, surveys, alerts.
#[derive(Parser, Debug)]
#[command(name = "iotscope", version, about, propagate_version = true)]
struct Cli {
    /// Settings file (TOML); flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read darknet traffic and report what arrives.
    #[command(subcommand)]
    Telescope(cmd::telescope::TelescopeCommand),
    /// The store itself: `store copy` moves a whole store between SQLite and PostgreSQL.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
    /// Live darknet sensor: capture on an interface, commit each closed bucket to the store.
    Sensor(Box<cmd::sensor::SensorArgs>),
    /// Detection over the telescope's buckets: run the detectors, list their alerts.
    #[command(subcommand)]
    Detect(cmd::detect::DetectCommand),
    /// IoT secure gateway: an nftables table (C&C sets, DNS, inbound, MUD allowlists, quarantine).
    #[command(subcommand)]
    Gateway(cmd::gateway::GatewayCommand),
    /// Telnet and SSH honeypot posing as IoT devices: records logins, commands and the loaders' downloads.
    Honeypot(Box<cmd::honeypot::HoneypotArgs>),
    /// The testbed: emulated IoT devices (`lab`), generated darknet captures (`lab darknet`).
    Lab(cmd::lab::LabArgs),
    /// Sweep authorised address ranges for IoT services, grab banners, run checks
    /// (`survey status`: a sharded run's progress).
    #[command(args_conflicts_with_subcommands = true)]
    Survey(Box<cmd::survey::SurveyArgs>),
    /// Self-check of one device on your own network, in plain words (ja/en).
    Check(Box<cmd::check::CheckArgs>),
    /// Alerts for ISPs: build from findings and infected hosts, list, export per ISP.
    #[command(subcommand)]
    Alerts(cmd::alerts::AlertsCommand),
    /// CSAF 2.0 advisories for manufacturers from the findings.
    #[command(subcommand)]
    Advisories(cmd::advisories::AdvisoriesCommand),
    /// Address to AS from the configured tables: lookup, bench.
    #[command(subcommand)]
    Enrich(cmd::enrich::EnrichCommand),
    /// C&C blocklists: import abuse.ch feeds, export plain, nftables or RPZ.
    #[command(subcommand)]
    Blocklist(cmd::blocklist::BlocklistCommand),
    /// Anonymised sharing: keygen, anonymize (stdin), export (from the store).
    #[command(subcommand)]
    Share(cmd::share::ShareCommand),
    /// The dashboard and JSON API (world map, time series, findings, alerts, /check).
    Serve(cmd::serve::ServeArgs),
    /// Dashboard accounts (operators, ISPs) and API tokens.
    #[command(subcommand)]
    Users(cmd::users::UsersCommand),
    /// List what the survey checks found (from the store).
    Findings(cmd::findings::FindingsArgs),
    /// Run the main job on embedded defaults: sample darknet capture, telescope, report.
    Demo(cmd::demo::DemoArgs),
}

/// Exit codes: 0 success, 2 usage or input error (documented in the README).
fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = cli.config.clone();
    let result = config::Config::load(cli.config.as_deref()).and_then(|cfg| match cli.command {
        Command::Telescope(c) => cmd::telescope::run(c, &cfg),
        Command::Lab(c) => cmd::lab::run(c),
        Command::Sensor(a) => cmd::sensor::run(*a, &cfg, config_path.as_deref()),
        Command::Honeypot(a) => cmd::honeypot::run(*a, &cfg),
        Command::Detect(c) => cmd::detect::run(c, &cfg),
        Command::Gateway(c) => cmd::gateway::run(c, &cfg),
        Command::Demo(a) => cmd::demo::run(a, &cfg),
        Command::Survey(a) => cmd::survey::run(*a, &cfg),
        Command::Findings(a) => cmd::findings::run(a, &cfg),
        Command::Check(a) => cmd::check::run(*a, &cfg),
        Command::Share(c) => cmd::share::run(c),
        Command::Blocklist(c) => cmd::blocklist::run(c),
        Command::Alerts(c) => cmd::alerts::run(c, &cfg),
        Command::Enrich(c) => cmd::enrich::run(c, &cfg),
        Command::Advisories(c) => cmd::advisories::run(c),
        Command::Serve(a) => cmd::serve::run(a, &cfg),
        Command::Users(c) => cmd::users::run(c, &cfg),
        Command::Store(c) => cmd::store::run(c, &cfg),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("iotscope: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
