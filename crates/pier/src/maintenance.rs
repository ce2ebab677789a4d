//! The commands that look after a setup: `migrate`, `backup`, `reconcile`, `doctor` and
//! `pgsim-notify-secret`.

use crate::common::{engine_for, Common};
use crate::serve::ServeArgs;
use crate::{backup, doctor};
use anyhow::Result;
use std::path::Path;

/// `pier migrate`: run the database migrations and exit.
pub async fn migrate(c: &Common) -> Result<()> {
    let url = c.database_url()?;
    pier_store::connect(&url, true).await?;
    println!("migrations applied to {url}");
    Ok(())
}

/// `pier backup`: a consistent copy of the SQLite database.
pub async fn backup(common: &Common, to: &Path) -> Result<()> {
    let url = common.existing_database_url()?;
    let r = backup::backup(&url, to).await?;
    println!(
        "backup written to {} ({} bytes, {} merchants, {} payments)",
        to.display(),
        r.bytes,
        r.merchants,
        r.payments
    );
    println!("  the server key is not in the copy: keep it with the backup (docs/OPERATIONS.md)");
    Ok(())
}

/// `pier reconcile`: one reconciliation pass now, and the attempts that need an operator.
pub async fn reconcile(common: &Common, json: bool) -> Result<()> {
    let engine = engine_for(common).await?;
    let report = engine
        .reconcile_pass()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stuck = engine
        .stuck_everywhere(pier_server::engine::reconcile::STUCK_AFTER_ATTEMPTS, 1000)
        .await?;
    if json {
        let stuck: Vec<_> = stuck
            .iter()
            .map(|p| serde_json::json!({"imp_uid": p.imp_uid, "merchant_id": p.merchant_id, "merchant_uid": p.merchant_uid, "amount": p.amount, "reconcile_attempts": p.reconcile_attempts}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"report": report, "needs_operator": stuck})
        );
    } else {
        println!("{report:?}");
        for p in &stuck {
            println!(
                "NEEDS OPERATOR\t{}\t{}\t{}\t{} KRW\t{} looks",
                p.imp_uid, p.merchant_id, p.merchant_uid, p.amount, p.reconcile_attempts
            );
        }
    }
    Ok(())
}

/// `pier doctor`: whether the setup `pier serve` would use has no problem (each is printed).
pub async fn doctor(a: &ServeArgs) -> Result<bool> {
    let input = doctor::Input {
        database_url: a.common.database_url.clone(),
        data_dir: a.common.data_dir.clone(),
        server_key: a.common.server_key.clone(),
        listen: a.listen,
        public_url: a.public_url.clone(),
    };
    doctor::run(&input).await
}

/// `pier pgsim-notify-secret`: the secret a pgsim sends with its deposit notifications.
pub fn pgsim_notify_secret(c: &Common) -> Result<()> {
    println!(
        "{}",
        pier_server::http::vbanks::pgsim_notify_secret(&c.server_key_with(false)?)
    );
    Ok(())
}
