//! Shutdown stops and joins every task the server spawned (issue #21): the jobs, the
//! listeners, and the attempts the engine detached from requests, then the store's own
//! (its writers, and on PostgreSQL its batched readers). `shutdown` returning is the join; the
//! counts of live tasks say nothing was left behind.

use crate::common::*;

#[tokio::test]
async fn shutdown_joins_every_task_it_spawned() {
    let t = TestPier::start().await;
    let token = t.token().await;
    // A payment: its PG call and record run in a task detached from the request.
    t.pay(&token, "shutdown-1", 1000).await;
    let tasks = t.pier.engine.tasks();
    assert!(
        tasks.live() > 0,
        "the listener and the jobs run as the server's tasks"
    );
    let store = t.pier.store().clone();
    assert!(
        store.live_tasks() > 0,
        "the store's writer runs as its task"
    );
    let TestPier { pier, others, .. } = t;
    // The test PG's journal tasks too (2 on PostgreSQL, where its journal is shared).
    let testpg: Vec<_> = std::iter::once(&pier)
        .chain(&others)
        .map(|p| p.testpg.clone())
        .collect();
    pier.shutdown().await;
    for p in others {
        p.shutdown().await;
    }
    assert_eq!(tasks.live(), 0, "a task outlived shutdown");
    assert_eq!(store.live_tasks(), 0, "a store task outlived shutdown");
    for pg in testpg {
        assert_eq!(
            pg.journal_tasks_live(),
            0,
            "a test PG task outlived shutdown"
        );
    }
}
