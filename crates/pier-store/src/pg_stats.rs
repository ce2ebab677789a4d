//! Plan stability on PostgreSQL. The hot statements are prepared and their generic plans cached
//! per connection; a plan built while a table was empty or never analyzed (a new database) keeps
//! scanning the whole table as it grows until statistics change. With autovacuum on, PostgreSQL
//! re-analyzes by itself; with it off (seen on a test machine: `GET /payments/{imp_uid}` fell
//! from 20,900/s to 1,100/s after ~78,000 payments until a manual `ANALYZE`) nobody does. So:
//!
//! * at start-up (and `pier migrate`), every table of ours changed since its last analysis is
//!   analyzed (`analyze_changed`); a table never written keeps "never analyzed", which the
//!   planner reads as "assume 10 pages", better for a table about to grow than "0 rows";
//! * when autovacuum is off, Pier says so and does autovacuum's analyze part for its own tables
//!   (`analyze_loop`), with autovacuum's default thresholds.
//!
//! An `ANALYZE` changes the statistics, which invalidates the cached plans that depend on them.

use crate::owner::Owner;
use std::time::Duration;
use tokio::sync::watch;

/// autovacuum_analyze_threshold's default: rows changed before any analysis.
const ANALYZE_THRESHOLD: i64 = 50;
/// autovacuum_analyze_scale_factor's default, in percent of the table's rows.
const ANALYZE_SCALE_PERCENT: i64 = 10;
/// How often the stand-in for autovacuum looks (autovacuum_naptime's default is 60 s).
const NAPTIME: Duration = Duration::from_secs(60);

/// Analyzes our tables that changed enough since their last analysis (`threshold`: rows changed
/// at least; plus `ANALYZE_SCALE_PERCENT` of the table). Returns the tables analyzed.
pub(crate) async fn analyze_changed(
    pool: &sqlx::PgPool,
    threshold: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::TEXT FROM pg_stat_user_tables WHERE schemaname = current_schema() \
         AND n_mod_since_analyze >= $1 + n_live_tup * $2 / 100 ORDER BY relname",
    )
    .bind(threshold)
    .bind(ANALYZE_SCALE_PERCENT)
    .fetch_all(pool)
    .await?;
    for t in &tables {
        sqlx::query(&format!("ANALYZE \"{}\"", t.replace('"', "\"\"")))
            .execute(pool)
            .await?;
    }
    Ok(tables)
}

/// Whether the server's autovacuum is on (`None`: could not tell).
pub(crate) async fn autovacuum_on(pool: &sqlx::PgPool) -> Option<bool> {
    let v: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await
        .ok()?;
    Some(v == "on")
}

/// At start: analyze what changed (1 row is enough: nothing of ours should be planned on
/// statistics older than its data), and stand in for autovacuum's analyses when it is off.
/// The loop is one of the store's tasks (`owner`), stopped at its shutdown.
pub(crate) async fn at_start(pool: &sqlx::PgPool, owner: &Owner) {
    match analyze_changed(pool, 1).await {
        Ok(t) if !t.is_empty() => tracing::info!(tables = t.join(","), "analyzed at start"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not analyze the tables at start"),
    }
    if autovacuum_on(pool).await == Some(false) {
        tracing::warn!(
            "PostgreSQL's autovacuum is off: Pier analyzes its own tables every {} s instead, \
             but nothing vacuums them (dead rows accumulate); turn autovacuum on",
            NAPTIME.as_secs()
        );
        owner.spawn("pg-analyze", analyze_loop(pool.clone(), owner.stopping()));
    }
}

/// Ends when the store shuts down (or is dropped).
async fn analyze_loop(pool: sqlx::PgPool, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(NAPTIME) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = analyze_changed(&pool, ANALYZE_THRESHOLD).await {
            tracing::warn!(error = %e, "analyzing Pier's tables");
        }
    }
}
