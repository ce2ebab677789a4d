//! Merchants and channels: creation (CLI and the demo bootstrap) and PG channel listing.

use super::{Engine, Error, Result};
use pier_domain::ids::random_hex;
use pier_store::{Channel, Merchant};
use rand::Rng;

/// A merchant's credentials, shown once at creation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Credentials {
    pub imp_code: String,
    pub imp_key: String,
    pub imp_secret: String,
    pub name: String,
}

/// PG providers Pier can route to. `jtnet` is served by the test PG.
pub const SUPPORTED_PGS: &[&str] = &["jtnet"];

impl Engine {
    pub async fn create_merchant(
        &self,
        name: &str,
        imp_code: Option<String>,
        imp_key: Option<String>,
        imp_secret: Option<String>,
        is_demo: bool,
    ) -> Result<Credentials> {
        let mut rng = rand::thread_rng();
        let imp_code =
            imp_code.unwrap_or_else(|| format!("imp{:08}", rng.gen_range(0..100_000_000u32)));
        let imp_key = imp_key
            .unwrap_or_else(|| format!("{:016}", rng.gen_range(0..10_000_000_000_000_000u64)));
        let imp_secret = imp_secret.unwrap_or_else(|| random_hex(32));
        if imp_secret.len() < 16 {
            return Err(Error::Invalid(
                "imp_secret must be at least 16 characters".into(),
            ));
        }
        let m = Merchant {
            imp_code: imp_code.clone(),
            name: name.to_owned(),
            imp_key: imp_key.clone(),
            secret_hash: self.hash_secret(&imp_secret),
            webhook_url: None,
            webhook_format: "json".into(),
            webhook_secret: Some(format!("whsec_{}", base64_secret())),
            allowed_origins: None,
            is_demo,
            created_at: self.now(),
        };
        self.store.create_merchant(&m).await.map_err(|e| match e {
            pier_store::StoreError::Conflict(_) => {
                Error::Conflict("a merchant with this imp_code or imp_key exists".into())
            }
            other => other.into(),
        })?;
        Ok(Credentials {
            imp_code,
            imp_key,
            imp_secret,
            name: name.to_owned(),
        })
    }

    /// Adds a PG channel. `target` is `inprocess` or a pgsim base URL.
    pub async fn add_channel(
        &self,
        merchant: &str,
        pg: &str,
        mid: Option<String>,
        is_default: bool,
        target: Option<String>,
    ) -> Result<Channel> {
        if !SUPPORTED_PGS.contains(&pg) {
            return Err(Error::Invalid(format!(
                "unsupported pg {pg:?} (supported: {})",
                SUPPORTED_PGS.join(", ")
            )));
        }
        if self.store.get_merchant(merchant).await?.is_none() {
            return Err(Error::NotFound(format!("no merchant {merchant}")));
        }
        let existing = self.store.list_channels(Some(merchant)).await?;
        let target = target.unwrap_or_else(|| "inprocess".into());
        if target != "inprocess"
            && !(target.starts_with("http://") || target.starts_with("https://"))
        {
            return Err(Error::Invalid(
                "target must be 'inprocess' or an http(s) URL of a pgsim".into(),
            ));
        }
        let c = Channel {
            id: format!("ch_{}", random_hex(8)),
            merchant_id: merchant.to_owned(),
            pg_provider: pg.to_owned(),
            mid: mid.unwrap_or_else(|| {
                format!("{pg}_{}", &merchant[merchant.len().saturating_sub(8)..])
            }),
            // The first channel is the default whatever the flag says: there must be one.
            is_default: is_default || existing.is_empty(),
            sandbox: true,
            target,
            created_at: self.now(),
            api_base: None,
            client_key: None,
            secret_sealed: None,
        };
        self.store.add_channel(&c).await.map_err(|e| match e {
            pier_store::StoreError::Conflict(_) => {
                Error::Conflict("this merchant already has a channel with that pg and mid".into())
            }
            other => other.into(),
        })?;
        Ok(c)
    }

    /// On a database with no merchant, creates the demo merchant and its `jtnet` test channel.
    /// Returns its credentials when it was created now.
    /// Every merchant (`pier merchant list`).
    pub async fn merchants(&self) -> Result<Vec<Merchant>> {
        Ok(self.store.list_merchants().await?)
    }

    /// Every channel, or one merchant's (`pier channel list`).
    pub async fn channels(&self, merchant_id: Option<&str>) -> Result<Vec<Channel>> {
        Ok(self.store.list_channels(merchant_id).await?)
    }

    pub async fn ensure_demo(&self) -> Result<Option<Credentials>> {
        if !self.store.list_merchants().await?.is_empty() {
            return Ok(None);
        }
        let d = self.cfg.demo.clone();
        let creds = match self
            .create_merchant("Pier Demo Shop", d.imp_code, d.imp_key, d.imp_secret, true)
            .await
        {
            Ok(c) => c,
            // Another instance created it first.
            Err(Error::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.add_channel(
            &creds.imp_code,
            "jtnet",
            Some("jtnet_demo".into()),
            true,
            None,
        )
        .await?;
        Ok(Some(creds))
    }
}

fn base64_secret() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 24];
    rand::thread_rng().fill(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}
