//! The `pier` binary: `serve`, `merchant`, `channel`, `migrate`, `pgsim`, `reconcile`.
//!
//! Every command that touches the database opens it with the same URL and server key as the
//! server, so they work against a running server's database.
//!
//! This file holds the command line (`Cli`) and runs the command; each command lives in its
//! module: `serve`, `merchant`, `channel`, `operator`, `pgsim`, `tosssim`, and `maintenance`
//! (`migrate`, `backup`, `reconcile`, `doctor`, `pgsim-notify-secret`). `common` opens what they
//! share: the data dir, the server key, the database.

mod backup;
mod channel;
mod cli_config;
mod common;
mod doctor;
mod logging;
mod maintenance;
mod merchant;
mod operator;
mod pgsim;
mod serve;
mod tosssim;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use common::Common;
use serve::ServeArgs;
use std::path::PathBuf;

/// mimalloc: the allocator matters on the request path (glibc malloc/free were ~8 % of a
/// lookup's profile); see docs/ARCHITECTURE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pier",
    version = env!("PIER_VERSION"),
    about = "Pier: a self-hosted payment gateway that speaks the i'mport (PortOne V1) API"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log format: `text` (coloured only on a terminal) or `json` (one object per line).
    /// Filter with `RUST_LOG` (default `info,sqlx=warn`).
    #[arg(
        long,
        global = true,
        env = "PIER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve(ServeArgs),
    /// Run database migrations and exit.
    Migrate(Common),
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        cmd: merchant::MerchantCmd,
    },
    /// Manage console operators (docs/console.md).
    Operator {
        #[command(subcommand)]
        cmd: operator::OperatorCmd,
    },
    /// Manage PG channels.
    Channel {
        #[command(subcommand)]
        cmd: channel::ChannelCmd,
    },
    /// Run the test PG as a separate process (with fault injection), or drive a running one.
    Pgsim(pgsim::PgsimArgs),
    /// Run the Toss Payments simulator (`tosspayments` channels' `--api-base` in development).
    Tosssim(tosssim::TosssimArgs),
    /// Print the secret a pgsim must send (`x-pgsim-secret`) with its deposit notifications to
    /// `POST /pg/pgsim/notify` of a Pier with this server key.
    PgsimNotifySecret(Common),
    /// Run one reconciliation pass now: settle every payment attempt whose PG outcome is
    /// unknown (or left in flight by a crash), then print what it did and the attempts that
    /// still need an operator.
    Reconcile {
        #[command(flatten)]
        common: Common,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the SQLite database consistently while Pier runs (PostgreSQL: use pg_dump; see
    /// docs/OPERATIONS.md). The server key is not in the copy: keep it with the backup.
    Backup {
        #[command(flatten)]
        common: Common,
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Check a setup (the settings `pier serve` would use) and name each problem with its fix.
    Doctor(ServeArgs),
    /// Show configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the effective configuration of `pier serve` (same flags, environment and config
    /// file), with the source of each value; secrets redacted.
    Print(ServeArgs),
}

/// Errors print as one line on stderr (the cause chain joined by `: `), never with a
/// backtrace, whatever `RUST_BACKTRACE` says; the exit status is 1 (2 for usage errors).
fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    common::restrict_umask();
    let parsed = match cli_config::parse(Cli::command(), std::env::args_os().collect()) {
        Ok(p) => p,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<clap::Error>() {
                if !ce.use_stderr()
                    || ce.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                {
                    // --help, --version
                    let _ = ce.print();
                    return if ce.use_stderr() {
                        ExitCode::from(2)
                    } else {
                        ExitCode::SUCCESS
                    };
                }
                eprintln!(
                    "error: {}",
                    cli_config::first_line(&ce.render().to_string())
                );
                return ExitCode::from(2);
            }
            eprintln!("error: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&parsed.matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", cli_config::first_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let server = matches!(cli.cmd, Cmd::Serve(_) | Cmd::Pgsim(_) | Cmd::Tosssim(_));
    logging::init(cli.log_format, !server);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, &parsed)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace(['\n', '\r'], " ")
}

async fn run(cli: Cli, parsed: &cli_config::Parsed) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let done: Result<()> = match cli.cmd {
        Cmd::Serve(a) => serve::serve(a).await,
        Cmd::Pgsim(a) => pgsim::run(a).await,
        Cmd::Tosssim(a) => tosssim::run(a, serve::shutdown_signal()).await,
        Cmd::Operator { cmd } => operator::run(cmd).await,
        Cmd::PgsimNotifySecret(c) => maintenance::pgsim_notify_secret(&c),
        Cmd::Backup { common, to } => maintenance::backup(&common, &to).await,
        Cmd::Doctor(a) => {
            if !maintenance::doctor(&a).await? {
                return Ok(ExitCode::FAILURE);
            }
            Ok(())
        }
        Cmd::Config {
            cmd: ConfigCmd::Print(_),
        } => {
            print!("{}", cli_config::render(&Cli::command(), parsed));
            Ok(())
        }
        Cmd::Migrate(c) => maintenance::migrate(&c).await,
        Cmd::Merchant { cmd } => merchant::run(cmd).await,
        Cmd::Reconcile { common, json } => maintenance::reconcile(&common, json).await,
        Cmd::Channel { cmd } => channel::run(cmd).await,
    };
    done?;
    Ok(ExitCode::SUCCESS)
}
