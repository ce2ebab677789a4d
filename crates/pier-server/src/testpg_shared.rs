//! The in-process test PG on PostgreSQL: its journal lives in Pier's database
//! (`testpg_journal`), so that every instance on one database runs the same test PG
//! (pier-pg `testpg::shared` explains how; docs/ARCHITECTURE.md why).

use crate::config::Config;
use async_trait::async_trait;
use pier_domain::Clock;
use pier_pg::testpg::{Engine, EngineConfig, JournalOp, JournalRow, SharedJournal};
use pier_store::Store;
use std::sync::Arc;

/// pier-pg's journal interface on Pier's store.
pub struct StoreJournal(pub Arc<dyn Store>);

#[async_trait]
impl SharedJournal for StoreJournal {
    async fn append(&self, origin: &str, ops: &[JournalOp]) -> Result<Vec<bool>, String> {
        let ops: Vec<pier_store::JournalAppend> = ops
            .iter()
            .map(|o| (o.read_point, o.entries.clone()))
            .collect();
        self.0
            .testpg_append(origin, &ops)
            .await
            .map_err(|e| e.to_string())
    }

    async fn read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> Result<Vec<JournalRow>, String> {
        let rows = self
            .0
            .testpg_read_after(after, limit, skip_bodies_of)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|(seq, origin, body)| JournalRow { seq, origin, body })
            .collect())
    }

    async fn prune(&self, sessions_upto: i64, limit: i64) -> Result<u64, String> {
        self.0
            .testpg_prune(sessions_upto, limit)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Starts the test PG on the shared journal (a configured journal file is not used then).
pub async fn start(
    pg_cfg: EngineConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    cfg: &Config,
) -> anyhow::Result<Engine> {
    if let Some(j) = &cfg.testpg_journal {
        tracing::warn!(
            path = %j.display(),
            "on PostgreSQL the test PG journals to the database; the journal file is not used"
        );
    }
    Engine::new_shared(pg_cfg, clock, Arc::new(StoreJournal(store)))
        .await
        .map_err(|e| anyhow::anyhow!("starting the test PG: {e}"))
}
