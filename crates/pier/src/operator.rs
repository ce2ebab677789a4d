//! `pier operator create`: a person who signs in to the merchant console (docs/console.md).

use crate::common::{engine_for, Common};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::io::{BufRead, Read};

/// Longest line read as a password (the engine refuses more than 256 bytes anyway; this only
/// bounds what is read from stdin).
const MAX_LINE_BYTES: u64 = 4096;

#[derive(Subcommand)]
pub enum OperatorCmd {
    /// Create a console operator of a merchant; prints the operator id. The password is read
    /// as one line of standard input (at least 12 characters).
    Create {
        #[command(flatten)]
        common: Common,
        /// The merchant's imp_code.
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        email: String,
        /// viewer: reads; operator: also refunds and redelivers webhooks; admin: also settings.
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// Read the password from standard input (required: a password never goes in argv).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

pub async fn run(cmd: OperatorCmd) -> Result<()> {
    match cmd {
        OperatorCmd::Create {
            common,
            merchant,
            email,
            role,
            password_stdin: _,
        } => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .take(MAX_LINE_BYTES)
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("no password on standard input");
            }
            let engine = engine_for(&common).await?;
            let id = engine
                .create_operator(&merchant, &email, &role, password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{id}");
            Ok(())
        }
    }
}
