//! `pier channel`: add, list, rotate the secret of, and remove PG channels.

use crate::common::{engine_for, Common};
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ChannelCmd {
    /// Add a PG channel to a merchant.
    Add {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        pg: String,
        #[arg(long)]
        mid: Option<String>,
        #[arg(long)]
        default: bool,
        /// `inprocess` (default) or the base URL of a `pier pgsim`.
        #[arg(long)]
        target: Option<String>,
        /// `--pg tosspayments`: the secret key (`test_sk_…`/`live_sk_…`). Prefer
        /// `--secret-key-stdin` or PIER_TOSS_SECRET_KEY so it stays out of shell history.
        #[arg(long, env = "PIER_TOSS_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        /// Read the secret key from the first line of standard input.
        #[arg(long, conflicts_with = "secret_key")]
        secret_key_stdin: bool,
        /// `--pg tosspayments`: the client key (`test_ck_…`/`live_ck_…`, public).
        #[arg(long)]
        client_key: Option<String>,
        /// `--pg tosspayments`: the API base (default https://api.tosspayments.com); set by the
        /// operator only, so it may name loopback (the Toss simulator).
        #[arg(long)]
        api_base: Option<String>,
    },
    /// List channels.
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Replace a channel's PG secret key (`tosspayments`), read from the first line of standard
    /// input so it never appears in argv, shell history or `ps`. Running servers pick it up
    /// at their next call through the channel.
    RotateSecret {
        #[command(flatten)]
        common: Common,
        /// The channel's id (`pier channel list`, first column).
        #[arg(long)]
        channel: String,
    },
    /// Remove a channel. Refused while it is its merchant's default, while billing keys issued
    /// through it exist, or while payments on it are in flight, awaiting a deposit or paid.
    Remove {
        #[command(flatten)]
        common: Common,
        /// The channel's id (`pier channel list`, first column).
        #[arg(long)]
        channel: String,
    },
}

pub async fn run(cmd: ChannelCmd) -> Result<()> {
    match cmd {
        ChannelCmd::Add {
            common,
            merchant,
            pg,
            mid,
            default,
            target,
            secret_key,
            secret_key_stdin,
            client_key,
            api_base,
        } => {
            let engine = engine_for(&common).await?;
            let c = if pg == pier_server::engine::channels::TOSS {
                let secret_key = if secret_key_stdin {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_owned()
                } else {
                    secret_key.ok_or_else(|| {
                        anyhow::anyhow!("--pg tosspayments needs --secret-key-stdin (or --secret-key / PIER_TOSS_SECRET_KEY)")
                    })?
                };
                let client_key = client_key
                    .ok_or_else(|| anyhow::anyhow!("--pg tosspayments needs --client-key"))?;
                anyhow::ensure!(target.is_none(), "--target is for test PG channels; Toss uses --api-base");
                engine
                    .add_toss_channel(pier_server::engine::channels::TossChannel {
                        merchant,
                        secret_key,
                        client_key,
                        api_base,
                        mid,
                        is_default: default,
                    })
                    .await
            } else {
                anyhow::ensure!(
                    secret_key.is_none() && !secret_key_stdin && client_key.is_none() && api_base.is_none(),
                    "--secret-key, --client-key and --api-base are for --pg tosspayments"
                );
                engine.add_channel(&merchant, &pg, mid, default, target).await
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&c)?);
            Ok(())
        }
        ChannelCmd::RotateSecret { common, channel } => {
            let engine = engine_for(&common).await?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let secret_key = line.trim();
            anyhow::ensure!(
                !secret_key.is_empty(),
                "give the new secret key on the first line of standard input"
            );
            let c = engine
                .rotate_channel_secret(&channel, secret_key)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "secret key of channel {} ({}.{}, merchant {}) replaced",
                c.id, c.pg_provider, c.mid, c.merchant_id
            );
            Ok(())
        }
        ChannelCmd::Remove { common, channel } => {
            let engine = engine_for(&common).await?;
            let c = engine
                .remove_channel(&channel)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "channel {} ({}.{}, merchant {}) removed",
                c.id, c.pg_provider, c.mid, c.merchant_id
            );
            Ok(())
        }
        ChannelCmd::List { common, merchant } => {
            let engine = engine_for(&common).await?;
            for c in engine.channels(merchant.as_deref()).await? {
                // The secret key itself is never printed (it is sealed in the database).
                let creds = match (&c.api_base, &c.client_key, &c.secret_sealed) {
                    (None, None, None) => String::new(),
                    (base, ck, sk) => format!(
                        "\tapi_base: {}\tclient_key: {}\tsecret: {}",
                        base.as_deref().unwrap_or("-"),
                        ck.as_deref().unwrap_or("-"),
                        if sk.is_some() { "set" } else { "missing" }
                    ),
                };
                println!(
                    "{}\t{}\t{}.{}\t{}{}{}",
                    c.id,
                    c.merchant_id,
                    c.pg_provider,
                    c.mid,
                    c.target,
                    if c.is_default { "\tdefault" } else { "" },
                    creds
                );
            }
            Ok(())
        }
    }
}
