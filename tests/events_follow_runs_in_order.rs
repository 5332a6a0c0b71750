//! Live events: a run's events arrive in order and its stream always ends with its terminal
//! event — also for a subscriber that came late or lagged — and a slow subscriber never
//! slows the registry.
#[path = "support/helpers.rs"]
mod support;

use runwarden::ractor::{Actor, ActorProcessingErr, ActorRef};
use runwarden::{EventFilter, EventItem, Progress, RunEvent, RunSpec, RunStatus, Runwarden};
use support::{Gate, Started, start, within};

fn status_of(item: &EventItem) -> Option<RunStatus> {
    match item {
        EventItem::Event(e) => e.status(),
        EventItem::Lagged(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stream_shows_every_step_in_order_then_ends() {
    let rw = start(Runwarden::builder().max_concurrent(1)).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let blocker = rw
        .submit(RunSpec::new("blocker"), started.held(&gate, 0))
        .expect("submit");
    started.expect(1).await;
    let id = rw
        .submit(RunSpec::new("watched"), |ctx| async move {
            for i in 1..=3 {
                ctx.report(Progress::items(i, 3));
                tokio::task::yield_now().await;
            }
            Err::<(), _>(runwarden::JobError::msg("last step failed"))
        })
        .expect("submit");
    let mut events = rw.events(EventFilter::Run(id)).await.expect("subscribe");
    gate.open();

    let mut items = Vec::new();
    while let Some(item) = within("the next event", events.next()).await {
        items.push(item);
    }
    let statuses: Vec<_> = items.iter().filter_map(status_of).collect();
    assert_eq!(
        statuses,
        vec![RunStatus::Queued, RunStatus::Running, RunStatus::Failed]
    );
    // Progress events sit between Running and the end, never after it.
    let last = items.last().expect("events");
    assert!(matches!(last, EventItem::Event(e) if e.is_terminal()));
    let progress_positions: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i, EventItem::Event(RunEvent::Progress { .. })))
        .map(|(n, _)| n)
        .collect();
    assert!(!progress_positions.is_empty(), "{items:?}");
    assert!(
        progress_positions
            .iter()
            .all(|p| *p > 1 && *p < items.len() - 1)
    );
    within("blocker", rw.wait(blocker)).await.expect("wait");
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A subscriber that arrives after the run ended gets the final state at once, then the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_still_gets_the_terminal_event() {
    let rw = start(Runwarden::builder()).await;
    let id = rw
        .submit(RunSpec::new("quick"), |_| async { Ok(()) })
        .expect("submit");
    within("run", rw.wait(id)).await.expect("wait");
    let mut events = rw.events(EventFilter::Run(id)).await.expect("subscribe");
    let first = within("event", events.next()).await.expect("one event");
    assert_eq!(status_of(&first), Some(RunStatus::Completed));
    assert_eq!(within("end", events.next()).await, None);
    assert!(matches!(
        rw.events(EventFilter::Run(runwarden::RunId::new())).await,
        Err(runwarden::Error::NotFound(_))
    ));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A subscriber that never reads does not hold anything up; when it reads, it is told how many
// events it missed, and a run stream that lagged past its run's end still gets the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_lags_without_slowing_the_registry() {
    let rw = start(Runwarden::builder().event_buffer(16)).await;
    let gate = Gate::new();
    let g = gate.clone();
    let watched = rw
        .submit(RunSpec::new("watched"), move |_| async move {
            g.wait().await;
            Ok(())
        })
        .expect("submit");
    let mut all = rw.events(EventFilter::All).await.expect("subscribe");
    let mut one = rw
        .events(EventFilter::Run(watched))
        .await
        .expect("subscribe");
    // 2,000 runs go through while neither subscriber reads.
    let ids: Vec<_> = (0..2000)
        .map(|_| {
            rw.submit(RunSpec::new("noise"), |_| async { Ok(()) })
                .expect("submit")
        })
        .collect();
    for id in ids {
        within("noise", rw.wait(id)).await.expect("wait");
    }
    gate.open();
    within("watched", rw.wait(watched)).await.expect("wait");

    let mut lagged = 0;
    while lagged == 0 {
        match within("event", all.next()).await.expect("stream open") {
            EventItem::Lagged(n) => lagged = n,
            EventItem::Event(_) => {}
        }
    }
    assert!(lagged > 1000, "missed {lagged}");

    let mut last = None;
    while let Some(item) = within("event", one.next()).await {
        last = Some(item);
    }
    let last = last.expect("some event");
    assert_eq!(status_of(&last), Some(RunStatus::Completed), "{last:?}");
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Label filters only pass the label's runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_stream_only_sees_its_label() {
    let rw = start(Runwarden::builder()).await;
    let mut media = rw
        .events(EventFilter::Label("media".into()))
        .await
        .expect("subscribe");
    let other = rw
        .submit(RunSpec::new("other"), |_| async { Ok(()) })
        .expect("submit");
    within("other", rw.wait(other)).await.expect("wait");
    let id = rw
        .submit(RunSpec::new("media"), |_| async { Ok(()) })
        .expect("submit");
    let mut seen = Vec::new();
    while seen.last() != Some(&RunStatus::Completed) {
        let item = within("event", media.next()).await.expect("open");
        if let EventItem::Event(e) = item {
            assert_eq!(e.run_id(), id, "an event of another label got through");
            seen.extend(e.status());
        }
    }
    assert_eq!(
        seen,
        vec![RunStatus::Queued, RunStatus::Running, RunStatus::Completed]
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

/// An application actor that records the run events it receives.
struct Recorder;

impl Actor for Recorder {
    type Msg = RecorderMsg;
    type State = tokio::sync::mpsc::UnboundedSender<RunEvent>;
    type Arguments = tokio::sync::mpsc::UnboundedSender<RunEvent>;

    async fn pre_start(
        &self,
        _: ActorRef<RecorderMsg>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle(
        &self,
        _: ActorRef<RecorderMsg>,
        RecorderMsg(e): RecorderMsg,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = tx.send(e);
        Ok(())
    }
}

struct RecorderMsg(RunEvent);

// Actors subscribe through the registry's ractor output port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_receives_events_through_the_output_port() {
    let rw = start(Runwarden::builder()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (recorder, _) = Actor::spawn(None, Recorder, tx).await.expect("recorder");
    let port = rw.event_port().await.expect("port");
    port.subscribe(recorder.clone(), |e| Some(RecorderMsg(e)));
    let id = rw
        .submit(RunSpec::new("seen"), |_| async { Ok(()) })
        .expect("submit");
    let mut statuses = Vec::new();
    while statuses.last() != Some(&RunStatus::Completed) {
        let e = within("an event at the actor", rx.recv())
            .await
            .expect("open");
        assert_eq!(e.run_id(), id);
        statuses.extend(e.status());
    }
    assert_eq!(
        statuses,
        vec![RunStatus::Queued, RunStatus::Running, RunStatus::Completed]
    );
    recorder.stop(None);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
