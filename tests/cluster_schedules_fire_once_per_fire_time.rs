//! The cluster's schedules are fired by the leader: one run per fire time for the whole
//! cluster, whichever node leads and when leadership moves; a fire while the last run is
//! still going is skipped (overlap `Skip`), a fire later than its deadline is missed
//! (missed `Skip`). Time passing is simulated by making a schedule due in the table.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{BoxedJob, CronSchedule, Json, MissedFires, OnInterrupt, Overlap, Timestamp};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{ClusterError, ClusterKinds, NewRun, Node, NodeConfig, ScheduleInfo};

fn kinds() -> ClusterKinds {
    ClusterKinds::new()
        .register("tick", OnInterrupt::Rerun, |_| {
            Ok(BoxedJob::new(|_| async { Ok(Json::from("tock")) }))
        })
        .register("hold", OnInterrupt::Rerun, |_| {
            Ok(BoxedJob::new(|ctx| async move {
                ctx.cancelled().await;
                Ok(Json::Null)
            }))
        })
}

async fn node(pg: &TempPostgres, name: &str) -> Node {
    let mut config = NodeConfig::new(pg.url(), name);
    config.concurrency = 4;
    config.heartbeat = Duration::from_millis(100);
    config.fence_after = Duration::from_millis(500);
    config.dead_after = Duration::from_millis(1_000);
    config.poll = Duration::from_millis(50);
    Node::start(config, kinds()).await.expect("a node")
}

async fn schedule(node: &Node, name: &str) -> ScheduleInfo {
    node.schedules()
        .await
        .expect("schedules")
        .into_iter()
        .find(|s| s.name == name)
        .expect("the schedule")
}

/// Waits until `name` has `fires` fires, `skipped` skips and `missed` misses, and is not due.
async fn settles(node: &Node, name: &str, want: (u64, u64, u64)) -> ScheduleInfo {
    support::within("the schedule settles", async {
        loop {
            let s = schedule(node, name).await;
            let due = s.next_at.is_some_and(|t| t <= std::time::SystemTime::now());
            if (s.fires, s.skipped, s.missed) == want && !due {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_fire_time_whoever_leads() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let mut nodes = vec![
        node(&pg, "a").await,
        node(&pg, "b").await,
        node(&pg, "c").await,
    ];
    let (sql, conn) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let due_now = |name: &'static str, ago_ms: i64| {
        let sql = &sql;
        async move {
            sql.execute(
                "UPDATE rw_schedules SET next_at = now() - $2::bigint * interval '1 millisecond'
                 WHERE name = $1",
                &[&name, &ago_ms],
            )
            .await
            .expect("make it due");
        }
    };

    match nodes[0]
        .schedule(
            "x",
            CronSchedule::new("0 2 * * *", "UTC").expect("cron"),
            NewRun::new("nope"),
        )
        .await
    {
        Err(ClusterError::UnknownKind(k)) => assert_eq!(k, "nope"),
        other => panic!("{other:?}"),
    }
    let nightly = CronSchedule::new("0 2 * * *", "UTC")
        .expect("cron")
        .overlap(Overlap::Allow);
    nodes[1]
        .schedule("nightly", nightly.clone(), NewRun::new("tick"))
        .await
        .expect("schedule");
    let first = schedule(&nodes[2], "nightly").await;
    assert_eq!(first.fires, 0);
    let expected_next = nightly
        .next_after(Timestamp::now())
        .map(Timestamp::to_system_time);
    assert_eq!(
        first.next_at, expected_next,
        "the first fire is the next 02:00 UTC"
    );

    let mut leaders = std::collections::HashSet::new();
    for fire in 1..=6u64 {
        due_now("nightly", 0).await;
        let s = settles(&nodes[0], "nightly", (fire, 0, 0)).await;
        assert_eq!(s.next_at, expected_next, "after fire {fire}");
        if fire == 3 {
            // Hand leadership over: the leader leaves; another takes the lease.
            let mut leader = None;
            for (i, n) in nodes.iter().enumerate() {
                if n.info().await.expect("info").leader {
                    leader = Some(i);
                }
            }
            let i = leader.expect("a leader");
            leaders.insert(nodes[i].info().await.expect("info").id);
            nodes
                .remove(i)
                .drain(Duration::from_secs(5))
                .await
                .expect("drain");
        }
    }
    for n in &nodes {
        let info = n.info().await.expect("info");
        if info.scheduled > 0 {
            leaders.insert(info.id);
        }
    }
    assert_eq!(leaders.len(), 2, "leadership did not move: {leaders:?}");
    let runs = sql
        .query(
            "SELECT count(*), count(DISTINCT idempotency_key) FROM rw_runs WHERE label = 'nightly'",
            &[],
        )
        .await
        .expect("count");
    let (n, keys): (i64, i64) = (runs[0].get(0), runs[0].get(1));
    assert_eq!((n, keys), (6, 6), "one run per fire time");
    let last = schedule(&nodes[0], "nightly").await;
    let run = support::within(
        "the last fire's run ends",
        nodes[0].wait(last.last_run_id.expect("a run")),
    )
    .await
    .expect("wait");
    assert_eq!(run.result, Some(serde_json::json!("tock")));

    // Overlap Skip: a fire while the last run still runs submits nothing.
    let busy = CronSchedule::new("0 2 * * *", "UTC").expect("cron");
    nodes[0]
        .schedule("busy", busy, NewRun::new("hold"))
        .await
        .expect("schedule");
    due_now("busy", 0).await;
    let s = settles(&nodes[0], "busy", (1, 0, 0)).await;
    let held = s.last_run_id.expect("a run");
    due_now("busy", 0).await;
    settles(&nodes[0], "busy", (1, 1, 0)).await;
    nodes[0].cancel(held).await.expect("cancel");

    // Missed Skip: a fire two minutes late (the deadline is a minute) runs nothing.
    let late = CronSchedule::new("0 2 * * *", "UTC")
        .expect("cron")
        .missed(MissedFires::Skip);
    nodes[0]
        .schedule("late", late.clone(), NewRun::new("tick"))
        .await
        .expect("schedule");
    due_now("late", 120_000).await;
    settles(&nodes[0], "late", (0, 0, 1)).await;
    // RunOnce: the same lateness runs once.
    nodes[0]
        .schedule(
            "late",
            late.missed(MissedFires::RunOnce),
            NewRun::new("tick"),
        )
        .await
        .expect("schedule");
    due_now("late", 120_000).await;
    settles(&nodes[0], "late", (1, 0, 1)).await;

    assert!(nodes[0].unschedule("late").await.expect("unschedule"));
    assert!(!nodes[0].unschedule("late").await.expect("unschedule"));
    for n in &nodes {
        n.drain(Duration::from_secs(5)).await.expect("drain");
    }
}
