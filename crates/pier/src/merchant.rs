//! `pier merchant`: create, list, and set a merchant's webhook, origins and secrets.

use crate::common::{engine_creating, engine_for, Common};
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum MerchantCmd {
    /// Create a merchant and print its credentials (shown once).
    Create {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List merchants.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Set the merchant's webhook URL and body format, and rotate its signing secret (printed
    /// once; see docs/webhooks.md for verification).
    SetWebhook {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: String,
        /// Webhook target (http or https). Requests' notice_url overrides it.
        #[arg(long)]
        url: String,
        /// Body encoding: json or form.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Set the web origins the merchant's checkout pages live on (docs/security/origins.md):
    /// page origins allowed to open a payment window, hosts of m_redirect_url / confirm_url /
    /// notice_url, and the frame-ancestors of the window pages. `--origins ""` clears them.
    SetOrigins {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: String,
        /// Space- or comma-separated origins, e.g. "https://shop.example https://m.shop.example".
        #[arg(long)]
        origins: String,
    },
    /// Give the merchant a new imp_secret (printed once); the old secret and all of the
    /// merchant's access tokens stop working (in a running server within 10 s).
    RotateSecret {
        #[command(flatten)]
        common: Common,
        /// The merchant's imp_code.
        #[arg(long)]
        merchant: String,
    },
    /// Revoke all of the merchant's access tokens (in a running server within 5 s).
    RevokeTokens {
        #[command(flatten)]
        common: Common,
        /// The merchant's imp_code.
        #[arg(long)]
        merchant: String,
    },
}

pub async fn run(cmd: MerchantCmd) -> Result<()> {
    match cmd {
        MerchantCmd::Create { common, name, json } => {
            let engine = engine_creating(&common).await?;
            let c = engine
                .create_merchant(&name, None, None, None, false)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("merchant created: {}\n  imp_code:   {}\n  imp_key:    {}\n  imp_secret: {}  (shown once; keep it safe)", c.name, c.imp_code, c.imp_key, c.imp_secret);
                println!(
                    "add a PG channel: pier channel add --merchant {} --pg jtnet --default",
                    c.imp_code
                );
            }
            Ok(())
        }
        MerchantCmd::List { common } => {
            let engine = engine_for(&common).await?;
            for m in engine.merchants().await? {
                println!(
                    "{}\t{}\t{}{}",
                    m.imp_code,
                    m.imp_key,
                    m.name,
                    if m.is_demo { "\t(demo)" } else { "" }
                );
            }
            Ok(())
        }
        MerchantCmd::SetWebhook {
            common,
            merchant,
            url,
            format,
        } => {
            let engine = engine_for(&common).await?;
            let secret = engine
                .set_webhook(&merchant, Some(url.clone()), &format)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("webhook set for {merchant}: {url} ({format})");
            println!(
                "  signing secret: {secret}  (shown once; the previous secret no longer verifies)"
            );
            Ok(())
        }
        MerchantCmd::SetOrigins {
            common,
            merchant,
            origins,
        } => {
            let engine = engine_for(&common).await?;
            match engine
                .set_allowed_origins(&merchant, &origins)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                Some(list) => println!("allowed origins of {merchant}: {}", list.join(" ")),
                None => println!(
                    "allowed origins of {merchant} cleared: any page may open its payment window"
                ),
            }
            Ok(())
        }
        MerchantCmd::RotateSecret { common, merchant } => {
            let engine = engine_for(&common).await?;
            let secret = engine
                .rotate_secret(&merchant)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("imp_secret rotated for {merchant}; its tokens are revoked");
            println!("  imp_secret: {secret}  (shown once; the previous secret no longer works)");
            Ok(())
        }
        MerchantCmd::RevokeTokens { common, merchant } => {
            let engine = engine_for(&common).await?;
            let n = engine
                .revoke_tokens(&merchant)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {n} access token(s) of {merchant}");
            Ok(())
        }
    }
}
