//! The scheduler's specification, run on tokio's paused clock against in-memory sinks and a
//! real spool in a temporary directory. Every time is in milliseconds of the paused clock since
//! the test began; each test takes a few milliseconds of real time.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use f2b_notify_core::{async_trait, Alert, Digest, Event, EventKind, Sink, SinkError};
use tokio::time::Instant;

use super::*;
use crate::config::Seconds;
use crate::spool::Entry;

/// What an in-memory sink does with its n-th message (counted from 0).
#[derive(Clone)]
enum Act {
    /// Accepts at once.
    Ok,
    /// Accepts after this long.
    Slow(Duration),
    /// Fails so.
    Fail(SinkError),
    /// Never answers.
    Hang,
    /// Panics (test builds unwind, so tokio reports a JoinError).
    Panic,
}

/// One message a sink was given: when (ms), which ids, and whether as a digest.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    at: u64,
    ids: Vec<String>,
    digest: bool,
}

type Script = Arc<dyn Fn(usize) -> Act + Send + Sync>;

/// An in-memory sink that records its calls and acts by script. Clones share the record, so
/// it survives the sink being built again by a new worker.
#[derive(Clone)]
struct Mem {
    name: String,
    t0: Instant,
    min_interval: Duration,
    script: Script,
    calls: Arc<Mutex<Vec<Call>>>,
    /// The alerts it was given, with when (ms).
    alerts: Arc<Mutex<Vec<(u64, Alert)>>>,
}

impl Mem {
    fn new(name: &str, t0: Instant, script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Self {
        Self {
            name: name.to_owned(),
            t0,
            min_interval: Duration::ZERO,
            script: Arc::new(script),
            calls: Arc::default(),
            alerts: Arc::default(),
        }
    }

    fn paced(mut self, min_interval: Duration) -> Self {
        self.min_interval = min_interval;
        self
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// (ms, ids) of every call, the shape most assertions read best in.
    fn sent(&self) -> Vec<(u64, Vec<String>)> {
        self.calls().into_iter().map(|c| (c.at, c.ids)).collect()
    }

    async fn act(&self, ids: Vec<String>, digest: bool) -> Result<(), SinkError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call { at: ms(self.t0), ids, digest });
            calls.len() - 1
        };
        match (self.script)(n) {
            Act::Ok => Ok(()),
            Act::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Act::Fail(e) => Err(e),
            Act::Hang => std::future::pending().await,
            Act::Panic => panic!("in-memory sink `{}` panics on purpose (a test)", self.name),
        }
    }
}

#[async_trait]
impl Sink for Mem {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.act(vec![event.id.clone().unwrap_or_default()], false).await
    }
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.act(digest.events.iter().map(|e| e.id.clone().unwrap_or_default()).collect(), true).await
    }
    fn min_interval(&self) -> Duration {
        self.min_interval
    }
    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.alerts.lock().unwrap().push((ms(self.t0), alert.clone()));
        Ok(())
    }
    fn carries_alerts(&self) -> bool {
        true
    }
}

fn ms(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).unwrap()
}

/// A spool in a temporary directory, the delivery config and the in-memory sinks.
struct Bench {
    _dir: tempfile::TempDir,
    spool: Spool,
    delivery: DeliveryConfig,
    sinks: BTreeMap<String, Mem>,
    t0: Instant,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let delivery = DeliveryConfig { spool: dir.path().join("spool"), ..DeliveryConfig::default() };
        Self { spool: Spool::new(&delivery.spool), _dir: dir, delivery, sinks: BTreeMap::new(), t0: Instant::now() }
    }

    /// Adds a sink scripted by `script`; returns a handle on its record.
    fn sink(&mut self, name: &str, script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Mem {
        self.add(Mem::new(name, self.t0, script))
    }

    fn add(&mut self, mem: Mem) -> Mem {
        self.sinks.insert(mem.name.clone(), mem.clone());
        mem
    }

    fn worker(&self) -> Worker<'static> {
        let sinks = self.sinks.clone();
        Worker::new(
            self.delivery.clone(),
            Box::new(move |name| sinks.get(name).map(|m| Ok(Arc::new(m.clone()) as Arc<dyn Sink>))),
        )
    }

    /// Spools a ban of `ip` for `sinks`, as `notify` does; returns the file's name.
    fn ban(&self, ip: &str, sinks: &[&str]) -> String {
        self.ban_at(ip, sinks, now_epoch())
    }

    fn ban_at(&self, ip: &str, sinks: &[&str], enqueued_at: f64) -> String {
        let mut entry = Entry::new(
            Event::target_event(EventKind::Ban, "sshd", ip, "h"),
            sinks.iter().map(|s| s.to_string()).collect(),
        );
        entry.enqueued_at = enqueued_at;
        let path = self.spool.enqueue(&entry).unwrap();
        path.file_name().unwrap().to_str().unwrap().to_owned()
    }

    fn ms(&self) -> u64 {
        ms(self.t0)
    }

    /// Sleeps (on the paused clock) until `at` ms after the start.
    async fn until(&self, at: u64) {
        tokio::time::sleep_until(self.t0 + Duration::from_millis(at)).await;
    }

    /// The dead letters of `sink`: (ip, reason).
    fn dead(&self, sink: &str) -> Vec<(String, String)> {
        self.spool
            .dead(sink)
            .unwrap()
            .iter()
            .map(|f| (Spool::load(f).unwrap().event.id.unwrap(), Spool::reason_of(f)))
            .collect()
    }

    /// How many events `sink` has not had yet: in its queue, or spooled and not handed out.
    fn pending(&self, sink: &str) -> usize {
        let unrouted = self.spool.unrouted().unwrap();
        let waiting = unrouted.iter().filter(|f| Spool::load(f).unwrap().sinks.iter().any(|s| s == sink)).count();
        self.spool.pending(sink).unwrap().len() + waiting
    }
}

/// Polls `cond` every 10 ms of the paused clock; gives up after an hour of it.
async fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(3600);
    while !cond() {
        assert!(Instant::now() < limit, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `worker` (as `deliver --follow`) while `script` runs, then drops it: a worker that
/// is dropped mid-send is a worker that died (its sends are dropped with it and its marks
/// stay).
async fn with_worker(worker: Worker<'static>, script: impl Future<Output = ()>) {
    let run = worker.run(true);
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => panic!("the worker stopped: {r:?}"),
        () = script => {}
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn backoff_grows_with_jitter_and_stays_capped() {
    let cap = Duration::from_secs(300);
    for attempts in 1..=20 {
        let b = backoff(attempts, cap);
        let expected = BACKOFF_BASE.saturating_mul(1 << (attempts - 1).min(16)).min(cap);
        assert!(b <= cap, "{attempts}: {b:?}");
        assert!(b >= expected.mul_f64(0.8) && b <= expected.mul_f64(1.2), "{attempts}: {b:?} vs {expected:?}");
    }
    assert!(backoff(30, Duration::from_secs(5)) <= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn first_event_after_a_quiet_period_goes_out_alone_and_at_once() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Ok);
    b.ban("192.0.2.1", &["hook"]);
    with_worker(b.worker(), async {
        wait("the first message", || hook.calls().len() == 1).await;
        b.until(10_000).await;
        b.ban("192.0.2.2", &["hook"]);
        wait("the second message", || hook.calls().len() == 2).await;
    })
    .await;
    let calls = hook.calls();
    assert_eq!(calls[0], Call { at: 0, ids: ids(&["192.0.2.1"]), digest: false });
    // Picked up at the next look at the spool, within one poll.
    assert!((10_000..=10_050).contains(&calls[1].at), "{calls:?}");
    assert_eq!((calls[1].ids.clone(), calls[1].digest), (ids(&["192.0.2.2"]), false));
    assert_eq!(b.pending("hook"), 0);
}

#[tokio::test(start_paused = true)]
async fn what_arrives_while_the_sink_is_busy_is_folded_into_one_digest() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Slow(Duration::from_millis(300)));
    b.ban("192.0.2.1", &["hook"]);
    with_worker(b.worker(), async {
        for (at, ip) in [(100, "192.0.2.2"), (150, "192.0.2.3"), (200, "192.0.2.4")] {
            b.until(at).await;
            b.ban(ip, &["hook"]);
        }
        wait("the digest to be delivered", || b.pending("hook") == 0).await;
    })
    .await;
    assert_eq!(
        hook.calls(),
        [
            Call { at: 0, ids: ids(&["192.0.2.1"]), digest: false },
            // The moment the first message is done, everything that came meanwhile, as one.
            Call { at: 300, ids: ids(&["192.0.2.2", "192.0.2.3", "192.0.2.4"]), digest: true },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn min_interval_is_kept_between_messages() {
    let mut b = Bench::new();
    let slack = b.add(Mem::new("slack", b.t0, |_| Act::Ok).paced(Duration::from_secs(1)));
    // The config's min_interval wins over the sink's own.
    b.delivery.min_interval.insert("mail".into(), Seconds(Duration::from_millis(2500)));
    let mail = b.add(Mem::new("mail", b.t0, |_| Act::Ok).paced(Duration::from_secs(1)));
    b.ban("192.0.2.1", &["slack", "mail"]);
    with_worker(b.worker(), async {
        b.until(100).await;
        b.ban("192.0.2.2", &["slack", "mail"]);
        b.until(200).await;
        b.ban("192.0.2.3", &["slack", "mail"]);
        wait("both sinks to catch up", || b.pending("slack") + b.pending("mail") == 0).await;
    })
    .await;
    let both = ids(&["192.0.2.2", "192.0.2.3"]);
    assert_eq!(slack.sent(), [(0, ids(&["192.0.2.1"])), (1000, both.clone())]);
    assert_eq!(mail.sent(), [(0, ids(&["192.0.2.1"])), (2500, both)]);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_from_1_s_doubling_with_jitter_up_to_retry_max() {
    let mut b = Bench::new();
    b.delivery.retry_max = Seconds(Duration::from_secs(5));
    let hook = b.sink("hook", |n| if n < 6 { Act::Fail(SinkError::transient("503")) } else { Act::Ok });
    b.ban("192.0.2.1", &["hook"]);
    with_worker(b.worker(), async {
        wait("delivery after six failures", || b.pending("hook") == 0).await;
    })
    .await;
    let at: Vec<u64> = hook.calls().iter().map(|c| c.at).collect();
    assert_eq!(at.len(), 7, "{at:?}");
    assert_eq!(at[0], 0);
    let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // 1 s, 2 s, 4 s, then capped at retry_max = 5 s; each ±20 %, never above the cap.
    for (gap, base) in gaps.iter().zip([1000u64, 2000, 4000, 5000, 5000, 5000]) {
        assert!(*gap >= base * 8 / 10 && *gap <= (base * 12 / 10).min(5000), "{gaps:?}");
    }
    let state = b.spool.load_state("hook").unwrap();
    assert_eq!((state.attempts, state.last_error, state.delivered), (0, None, 1));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_obeyed_exactly_and_never_shorter_than_min_interval() {
    let mut b = Bench::new();
    let wait_2s = SinkError::retry_after("rate limited", Duration::from_secs(2));
    let slack = b.add(
        Mem::new("slack", b.t0, move |n| if n == 0 { Act::Fail(wait_2s.clone()) } else { Act::Ok })
            .paced(Duration::from_secs(1)),
    );
    let wait_half = SinkError::retry_after("rate limited", Duration::from_millis(500));
    let api = b.add(
        Mem::new("api", b.t0, move |n| if n == 0 { Act::Fail(wait_half.clone()) } else { Act::Ok })
            .paced(Duration::from_secs(1)),
    );
    b.ban("192.0.2.1", &["slack", "api"]);
    with_worker(b.worker(), async {
        wait("both retries", || b.pending("slack") + b.pending("api") == 0).await;
    })
    .await;
    let one = ids(&["192.0.2.1"]);
    // Exactly Retry-After: no backoff on top of it.
    assert_eq!(slack.sent(), [(0, one.clone()), (2000, one.clone())]);
    // A Retry-After shorter than the sink's pace waits for the pace.
    assert_eq!(api.sent(), [(0, one.clone()), (1000, one)]);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_is_capped_and_the_worker_lives() {
    // 2^64-1 s (which overflowed the clock: a panic in every new worker) and 10^9 s (a sink
    // stalled until a restart), through the constructor and around it.
    let absurd = |secs: u64| {
        let built = SinkError::retry_after("slow down", Duration::from_secs(secs));
        let raw = SinkError::Transient { message: "slow down".into(), retry_after: Some(Duration::from_secs(secs)) };
        [built, raw]
    };
    let scripts: Vec<(&str, SinkError)> = absurd(u64::MAX)
        .into_iter()
        .zip(["max", "max_raw"])
        .chain(absurd(1_000_000_000).into_iter().zip(["billion", "billion_raw"]))
        .map(|(e, name)| (name, e))
        .collect();

    // With the default max_age (a day) the cap is RETRY_AFTER_MAX, an hour (not run live
    // here: an hour of the paused clock is 72,000 looks at the spool, seconds of real time).
    let b = Bench::new();
    assert_eq!(b.worker().retry_after_cap(), RETRY_AFTER_MAX);
    assert_eq!(RETRY_AFTER_MAX, Duration::from_secs(3600));

    // A shorter max_age caps it further (waiting past it would only let the events expire):
    // the worker lives, and every sink is tried again exactly at the cap.
    let mut b = Bench::new();
    b.delivery.max_age = Seconds(Duration::from_secs(120));
    let sinks: Vec<Mem> = scripts
        .iter()
        .map(|(name, e)| {
            let e = e.clone();
            b.sink(name, move |n| if n == 0 { Act::Fail(e.clone()) } else { Act::Ok })
        })
        .collect();
    let names: Vec<&str> = scripts.iter().map(|(n, _)| *n).collect();
    b.ban("192.0.2.1", &names);
    with_worker(b.worker(), async {
        b.until(119_999).await;
        assert!(sinks.iter().all(|s| s.calls().len() == 1), "retried before the cap");
        wait("every retry", || names.iter().all(|n| b.pending(n) == 0)).await;
    })
    .await;
    let one = ids(&["192.0.2.1"]);
    for s in &sinks {
        assert_eq!(s.sent(), [(0, one.clone()), (120_000, one.clone())], "{}", s.name);
        assert!(b.dead(&s.name).is_empty(), "{}", s.name);
    }
    let state = b.spool.load_state("max").unwrap();
    assert_eq!((state.attempts, state.delivered), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn events_older_than_max_age_go_to_the_dead_letters_with_a_reason() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Ok);
    b.ban_at("192.0.2.1", &["hook"], now_epoch() - 2.0 * 86_400.0);
    b.ban("192.0.2.2", &["hook"]);
    with_worker(b.worker(), async {
        wait("the fresh event", || b.pending("hook") == 0).await;
    })
    .await;
    assert_eq!(hook.sent(), [(0, ids(&["192.0.2.2"]))]);
    let dead = b.dead("hook");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "192.0.2.1");
    assert!(dead[0].1.starts_with("not delivered within max_age (1day)"), "{dead:?}");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_goes_to_the_dead_letters_and_the_next_event_goes_out() {
    let mut b = Bench::new();
    let api = b.sink("api", |n| if n == 0 { Act::Fail(SinkError::permanent("channel_not_found")) } else { Act::Ok });
    b.ban("192.0.2.1", &["api"]);
    with_worker(b.worker(), async {
        wait("the dead letter", || !b.dead("api").is_empty()).await;
        b.until(1000).await;
        b.ban("192.0.2.2", &["api"]);
        wait("the next event", || api.calls().len() == 2).await;
    })
    .await;
    assert_eq!(b.dead("api"), [("192.0.2.1".to_owned(), "permanent failure: channel_not_found".to_owned())]);
    let sent = api.sent();
    assert_eq!(sent[0], (0, ids(&["192.0.2.1"])));
    assert!((1000..=1050).contains(&sent[1].0) && sent[1].1 == ids(&["192.0.2.2"]), "{sent:?}");
    assert_eq!(b.pending("api"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_broken_sink_never_delays_another_and_a_hung_send_ends_at_the_deadline() {
    let mut b = Bench::new();
    let bad = b.sink("bad", |n| if n == 0 { Act::Hang } else { Act::Ok });
    let good = b.sink("good", |_| Act::Ok);
    b.ban("192.0.2.1", &["bad", "good"]);
    with_worker(b.worker(), async {
        for (at, ip) in [(500, "192.0.2.2"), (20_000, "192.0.2.3")] {
            b.until(at).await;
            b.ban(ip, &["bad", "good"]);
        }
        wait("the hung sink to catch up", || b.pending("bad") == 0).await;
    })
    .await;
    let sent = good.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0], (0, ids(&["192.0.2.1"])));
    assert!((500..=550).contains(&sent[1].0) && (20_000..=20_050).contains(&sent[2].0), "{sent:?}");
    // The hung send counts as a transient failure at the worker's deadline, one that may
    // have been received: the retry comes TIMEOUT_BACKOFF_MIN (30 s) later, not after the
    // first backoff (1 s), and is the same message (a service that got it can tell), then
    // everything that waited.
    let sent = bad.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0], (0, ids(&["192.0.2.1"])));
    assert_eq!(sent[1], (90_000, ids(&["192.0.2.1"])), "{sent:?}");
    assert_eq!(sent[2].1, ids(&["192.0.2.2", "192.0.2.3"]));
    assert!((90_000..=90_050).contains(&sent[2].0), "{sent:?}");
    assert!(b.dead("bad").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_batch_in_flight_when_two_workers_die_goes_to_the_dead_letters_and_other_sinks_go_on() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Hang);
    let api = b.sink("api", |_| Act::Ok);
    let first = b.ban("192.0.2.1", &["hook", "api"]);

    // Worker 1 dies while `hook` holds the first event.
    with_worker(b.worker(), async {
        wait("hook's first send", || hook.calls().len() == 1 && b.pending("api") == 0).await;
    })
    .await;
    let mark = inflight::read(&b.spool, "hook").unwrap().expect("a mark left by the dead worker");
    assert_eq!((mark.files, mark.crashes), (vec![first.clone()], 0));
    assert!(inflight::read(&b.spool, "api").unwrap().is_none());

    // Worker 2 retries exactly that batch, alone, though another event waits; and dies too.
    b.until(1000).await;
    b.ban("192.0.2.2", &["hook", "api"]);
    with_worker(b.worker(), async {
        wait("hook's retry", || hook.calls().len() == 2 && b.pending("api") == 0).await;
    })
    .await;
    assert_eq!(hook.sent()[1], (1000, ids(&["192.0.2.1"])));
    assert_eq!(inflight::read(&b.spool, "hook").unwrap().expect("the retry's mark").crashes, 1);

    // Worker 3 moves it to the dead letters and sends the rest.
    b.until(2000).await;
    b.ban("192.0.2.3", &["hook", "api"]);
    with_worker(b.worker(), async {
        wait("hook's third send", || hook.calls().len() == 3 && b.pending("api") == 0).await;
    })
    .await;
    let dead = b.dead("hook");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "192.0.2.1");
    assert!(dead[0].1.starts_with("crashed the worker twice"), "{dead:?}");
    assert_eq!(hook.sent()[2], (2000, ids(&["192.0.2.2", "192.0.2.3"])));
    assert_eq!(b.pending("hook"), 2);
    assert_eq!(
        api.sent(),
        [(0, ids(&["192.0.2.1"])), (1000, ids(&["192.0.2.2"])), (2000, ids(&["192.0.2.3"]))],
        "the other sink got every event, once, at once"
    );
    let state = b.spool.load_state("hook").unwrap();
    assert!(state.last_error.unwrap().starts_with("crashed the worker twice"));
}

#[tokio::test(start_paused = true)]
async fn a_batch_whose_retry_is_delivered_leaves_no_mark_and_no_dead_letter() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |n| if n == 0 { Act::Hang } else { Act::Ok });
    b.ban("192.0.2.1", &["hook"]);
    with_worker(b.worker(), async {
        wait("hook's first send", || hook.calls().len() == 1).await;
    })
    .await;
    b.until(1000).await;
    b.ban("192.0.2.2", &["hook"]);
    with_worker(b.worker(), async {
        wait("everything delivered", || b.pending("hook") == 0).await;
    })
    .await;
    // The suspect batch alone first, then what waited behind it.
    assert_eq!(hook.sent(), [(0, ids(&["192.0.2.1"])), (1000, ids(&["192.0.2.1"])), (1000, ids(&["192.0.2.2"]))]);
    assert!(inflight::read(&b.spool, "hook").unwrap().is_none());
    assert!(b.dead("hook").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_sink_does_not_wedge_its_lane() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |n| if n < 2 { Act::Panic } else { Act::Ok });
    let api = b.sink("api", |_| Act::Ok);
    b.ban("192.0.2.1", &["hook", "api"]);
    b.ban("192.0.2.2", &["hook"]);
    with_worker(b.worker(), async {
        wait("the panicking batch to be dead", || !b.dead("hook").is_empty()).await;
        b.until(1000).await;
        b.ban("192.0.2.3", &["hook", "api"]);
        wait("the lane to deliver again", || b.pending("hook") + b.pending("api") == 0).await;
    })
    .await;
    let both = ids(&["192.0.2.1", "192.0.2.2"]);
    // A panic counts as a crash: retried alone at once, buried the second time.
    let sent = hook.sent();
    assert_eq!(sent[..2], [(0, both.clone()), (0, both)]);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!((1000..=1050).contains(&sent[2].0) && sent[2].1 == ids(&["192.0.2.3"]), "{sent:?}");
    let dead = b.dead("hook");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead.iter().all(|(_, why)| why.starts_with("crashed the worker twice") && why.contains("panicked")),
        "{dead:?}"
    );
    assert_eq!(api.sent().len(), 2);
    assert!(inflight::read(&b.spool, "hook").unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_exits_after_idle_exit_and_a_second_one_does_nothing() {
    let mut b = Bench::new();
    b.delivery.idle_exit = Seconds(Duration::from_secs(2));
    let hook = b.sink("hook", |_| Act::Ok);
    b.ban("192.0.2.1", &["hook"]);
    let lock = b.spool.try_lock().unwrap().expect("free");
    assert!(!b.worker().run(false).await.unwrap(), "ran although the spool was locked");
    drop(lock);
    assert!(b.worker().run(false).await.unwrap());
    assert_eq!(hook.sent(), [(0, ids(&["192.0.2.1"]))]);
    assert!((2000..=2100).contains(&b.ms()), "exited at {} ms", b.ms());
}

#[test]
fn a_timeout_counts_as_maybe_delivered_and_a_refusal_does_not() {
    for timed_out in
        ["no answer within 10.0 s", "SMTP: no answer in time (read)", "operation timed out", "request_timeout"]
    {
        assert!(maybe_delivered(&SinkError::transient(timed_out)), "{timed_out}");
    }
    for refused in ["cannot connect: connection refused", "HTTP 503", "rate limited"] {
        assert!(!maybe_delivered(&SinkError::transient(refused)), "{refused}");
    }
    assert!(!maybe_delivered(&SinkError::permanent("timed out")), "a permanent failure is not retried at all");
    // Four times the backoff, at least 30 s, at most retry_max (or 30 s when that is less).
    let cap = Duration::from_secs(300);
    assert_eq!(timeout_backoff(1, cap), TIMEOUT_BACKOFF_MIN);
    let b = timeout_backoff(5, cap);
    assert!(b >= Duration::from_millis(51_200) && b <= Duration::from_millis(76_800), "{b:?}");
    assert_eq!(timeout_backoff(20, cap), cap);
    assert_eq!(timeout_backoff(20, Duration::from_secs(5)), TIMEOUT_BACKOFF_MIN);
}

#[tokio::test(start_paused = true)]
async fn after_a_timeout_the_next_try_waits_longer_than_after_a_refusal() {
    let mut b = Bench::new();
    let slow =
        b.sink("slow", |n| if n < 2 { Act::Fail(SinkError::transient("no answer within 10.0 s")) } else { Act::Ok });
    let down = b.sink("down", |n| {
        if n < 2 {
            Act::Fail(SinkError::transient("cannot connect: connection refused"))
        } else {
            Act::Ok
        }
    });
    b.ban("192.0.2.1", &["slow", "down"]);
    with_worker(b.worker(), async {
        wait("both to deliver", || b.pending("slow") + b.pending("down") == 0).await;
    })
    .await;
    let at = |m: &Mem| m.calls().iter().map(|c| c.at).collect::<Vec<u64>>();
    // The slow server may have posted each try: 30 s apart, not 1 s then 2 s.
    assert_eq!(at(&slow), [0, 30_000, 60_000]);
    let down = at(&down);
    assert!(down.len() == 3 && down[1] <= 1200 && down[2] - down[1] <= 2400, "{down:?}");
}

/// Writes `n` bans for `sink` straight into `new/` (without the fsync of each that
/// `notify` does: a thousand fsyncs would be most of the test's time).
fn spool_many(b: &Bench, sink: &str, n: usize) {
    b.spool.ensure().unwrap();
    for i in 0..n {
        let entry = Entry::new(
            Event::target_event(EventKind::Ban, "sshd", format!("198.18.{}.{}", i / 256, i % 256), "h"),
            vec![sink.to_owned()],
        );
        let name = format!("{:020}-1-{i}.json", 1_700_000_000_000_000_000u64 + i as u64);
        std::fs::write(b.spool.new_dir().join(name), serde_json::to_vec(&entry).unwrap()).unwrap();
    }
}

/// Sets a directory's mtime an hour back, as if nothing had changed in it for that long.
fn age(dir: &std::path::Path) {
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(dir).unwrap().set_modified(hour_ago).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_worker_waiting_on_a_backlog_does_not_read_its_queue_again() {
    let mut b = Bench::new();
    let down = b.sink("down", |_| Act::Fail(SinkError::transient("cannot connect: connection refused")));
    spool_many(&b, "down", 1000);
    let listings = || crate::spool::LISTINGS.with(std::cell::Cell::get);
    let mut read_while_waiting = 0;
    with_worker(b.worker(), async {
        wait("the first refusal", || down.calls().len() == 1).await;
        assert_eq!(b.pending("down"), 1000);
        // From here on nothing changes in the spool but the clock.
        for dir in [b.spool.new_dir(), b.spool.sinks_dir(), b.spool.sink_dir("down")] {
            age(&dir);
        }
        let before = listings();
        // Ten minutes of backoff (1 s doubling to retry_max = 300 s): 600 regular looks and
        // nine tries, each taking a batch from the queue as last read.
        b.until(600_000).await;
        read_while_waiting = listings() - before;
    })
    .await;
    // Once, because the mtime the test set is not the one the worker saw; then never.
    assert!(read_while_waiting <= 1, "the queue was read {read_while_waiting} times while waiting");
    let calls = down.calls();
    assert!((8..=10).contains(&calls.len()), "{} tries", calls.len());
    assert!(calls.iter().all(|c| c.ids.len() == 500 && c.ids[0] == "198.18.0.0"), "each try is the oldest batch");
}

#[tokio::test(start_paused = true)]
async fn past_max_pending_the_oldest_waiting_events_go_to_the_dead_letters_not_the_batch_in_flight() {
    let mut b = Bench::new();
    b.delivery.max_pending = 3;
    let hook = b.sink("hook", |n| if n == 0 { Act::Hang } else { Act::Ok });
    b.ban("192.0.2.1", &["hook"]);
    with_worker(b.worker(), async {
        wait("the first send", || hook.calls().len() == 1).await;
        b.until(1000).await;
        for i in 2..=6 {
            b.ban(&format!("192.0.2.{i}"), &["hook"]);
        }
        wait("the retry after the deadline", || b.pending("hook") == 0).await;
    })
    .await;
    let dead = b.dead("hook");
    let buried: Vec<&str> = dead.iter().map(|(ip, _)| ip.as_str()).collect();
    assert_eq!(buried, ["192.0.2.2", "192.0.2.3", "192.0.2.4"]);
    assert!(dead.iter().all(|(_, why)| why.starts_with("spool cap reached: more than 3 event(s) waited")), "{dead:?}");
    // The batch in flight was kept and went out again as it was; then the newest events.
    assert_eq!(hook.sent()[1].1, ids(&["192.0.2.1"]));
    assert_eq!(hook.sent()[2].1, ids(&["192.0.2.5", "192.0.2.6"]));
}

#[tokio::test(start_paused = true)]
async fn a_retried_dead_letter_older_than_max_age_is_delivered() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Ok);
    let old = b.ban_at("192.0.2.1", &["hook"], now_epoch() - 2.0 * 86_400.0);
    b.spool.fan_out(None).unwrap();
    b.spool.bury("hook", &b.spool.pending("hook").unwrap(), "not delivered within max_age (1day)").unwrap();
    assert_eq!(b.spool.retry_dead().unwrap(), 1);
    let queued = b.spool.sink_dir("hook").join(&old);
    assert!(Spool::retried_at(&queued).is_some_and(|t| t > now_epoch() - 60.0));
    with_worker(b.worker(), async {
        wait("the retried event", || b.pending("hook") == 0).await;
    })
    .await;
    assert_eq!(hook.sent(), [(0, ids(&["192.0.2.1"]))]);
    assert!(b.dead("hook").is_empty(), "{:?}", b.dead("hook"));
    // Its stamp went with it.
    let left: Vec<_> = std::fs::read_dir(b.spool.sink_dir("hook")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn dead_letters_older_than_dead_retention_are_deleted_when_a_worker_starts() {
    let mut b = Bench::new();
    b.delivery.dead_retention = Seconds(Duration::from_secs(30 * 86_400));
    let hook = b.sink("hook", |_| Act::Ok);
    b.ban("192.0.2.1", &["api"]);
    b.ban("192.0.2.2", &["api"]);
    b.spool.fan_out(None).unwrap();
    let buried = b.spool.pending("api").unwrap();
    b.spool.bury("api", &buried, "permanent failure: channel_not_found").unwrap();
    let reason = b.spool.dead("api").unwrap()[0].with_extension("json.reason");
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(31 * 86_400);
    std::fs::File::options().write(true).open(&reason).unwrap().set_modified(long_ago).unwrap();
    b.ban("192.0.2.3", &["hook"]);
    with_worker(b.worker(), async {
        wait("the worker to start", || hook.calls().len() == 1).await;
    })
    .await;
    assert_eq!(b.dead("api"), [("192.0.2.2".to_owned(), "permanent failure: channel_not_found".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn an_on_demand_worker_hands_over_to_a_waiting_follow_worker_once_its_sends_end() {
    let mut b = Bench::new();
    b.delivery.idle_exit = Seconds(Duration::from_secs(60));
    let hook = b.sink("hook", |_| Act::Slow(Duration::from_secs(3)));
    b.ban("192.0.2.1", &["hook"]);
    let follower = async {
        b.until(500).await;
        let announced = b.spool.announce_follower().unwrap().expect("no one waits yet");
        b.until(1500).await;
        b.ban("192.0.2.2", &["hook"]);
        announced
    };
    let (ran, announced) = tokio::join!(b.worker().run(false), follower);
    assert!(ran.unwrap());
    // Seen at the check after 500 ms; the send in flight (until 3 s) was finished, no new
    // one was started, and the spool is free for the follower.
    assert_eq!(b.ms(), 3000);
    assert_eq!(hook.sent(), [(0, ids(&["192.0.2.1"]))]);
    assert_eq!(b.pending("hook"), 1);
    assert!(b.spool.try_lock().unwrap().is_some(), "the spool is still held");
    drop(announced);
    assert!(!b.spool.follower_waiting().unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_follow_worker_waits_for_the_spool_instead_of_exiting() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Ok);
    b.ban("192.0.2.1", &["hook"]);
    let mut held = Some(b.spool.try_lock().unwrap().expect("free"));
    with_worker(b.worker(), async {
        b.until(5000).await;
        assert!(hook.calls().is_empty(), "delivered without the spool");
        assert!(b.spool.follower_waiting().unwrap(), "the follower does not say that it waits");
        held.take();
        wait("delivery", || hook.calls().len() == 1).await;
    })
    .await;
    let at = hook.calls()[0].at;
    assert!((5000..=5250).contains(&at), "took the spool at {at} ms");
}

/// A factory for `b`'s in-memory sinks, for a worker whose config changes during a test.
fn factory(sinks: &BTreeMap<String, Mem>) -> SinkFactory<'static> {
    let sinks = sinks.clone();
    Box::new(move |name| sinks.get(name).map(|m| Ok(Arc::new(m.clone()) as Arc<dyn Sink>)))
}

/// A config watch that says nothing until `edited` is set, then hands over `next` once.
fn edit_when(edited: &Arc<std::sync::atomic::AtomicBool>, mut next: Option<Settings<'static>>) -> ConfigWatch<'static> {
    let edited = Arc::clone(edited);
    Box::new(move || if edited.load(std::sync::atomic::Ordering::SeqCst) { next.take().map(Ok) } else { None })
}

#[tokio::test(start_paused = true)]
async fn a_sink_the_config_does_not_name_keeps_its_events_for_an_hour_then_they_go_to_the_dead_letters() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Ok);
    b.ban("192.0.2.1", &["hook", "gone"]);
    with_worker(b.worker(), async {
        wait("the configured sink", || hook.calls().len() == 1).await;
        b.until(60_000).await;
        // Waiting, visibly: `queue` shows the pending event and why.
        assert_eq!((b.pending("gone"), b.dead("gone").len()), (1, 0));
        let state = b.spool.load_state("gone").expect("a state for `queue`");
        let why = state.last_error.unwrap_or_default();
        assert!(why.starts_with("not in the config: its events wait for it until "), "{why}");
        b.until(UNCONFIGURED_GRACE.as_millis() as u64 - 1000).await;
        assert_eq!(b.dead("gone").len(), 0, "buried before the grace period ended");
        wait("the dead letter", || !b.dead("gone").is_empty()).await;
    })
    .await;
    let dead = b.dead("gone");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].1, "sink `gone` is not in the config (waited 1h for it to come back)");
    assert!(b.ms() >= UNCONFIGURED_GRACE.as_millis() as u64, "{} ms", b.ms());
}

#[tokio::test(start_paused = true)]
async fn a_sink_added_to_the_config_mid_storm_gets_every_event_that_waited_for_it() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Ok);
    let old = b.worker();
    let sec = b.sink("sec", |_| Act::Ok);
    let edited = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut worker = old;
    let route: RouteFn<'static> = Box::new(|_| Routed::Sinks(Vec::new()));
    worker.watch_config(edit_when(&edited, Some((b.delivery.clone(), factory(&b.sinks), route))));
    with_worker(worker, async {
        // `notify` already routes by the edited config; the worker still has the old one.
        for (i, at) in [0u64, 100, 200, 300].into_iter().enumerate() {
            b.until(at).await;
            b.ban(&format!("192.0.2.{}", i + 1), &["hook", "sec"]);
        }
        b.until(5000).await;
        assert!(sec.calls().is_empty());
        edited.store(true, std::sync::atomic::Ordering::SeqCst);
        wait("the new sink to catch up", || b.pending("sec") + b.pending("hook") == 0).await;
    })
    .await;
    let sent: Vec<String> = sec.calls().into_iter().flat_map(|c| c.ids).collect();
    assert_eq!(sent, ids(&["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]));
    // At the next look after the edit.
    assert!((5000..=6000).contains(&sec.calls()[0].at), "{:?}", sec.calls());
    assert_eq!(hook.calls().iter().map(|c| c.ids.len()).sum::<usize>(), 4);
    assert!(b.dead("sec").is_empty() && b.dead("hook").is_empty());
    // What the old config said while it waited is gone with it.
    assert_eq!(b.spool.load_state("sec").and_then(|s| s.last_error), None);
}

#[tokio::test(start_paused = true)]
async fn while_no_config_loads_nothing_is_judged_and_unrouted_events_wait_then_go_where_it_routes_them() {
    let mut b = Bench::new();
    let hook = b.sink("hook", |_| Act::Ok);
    // Routed before the config broke: its sink is unknown to a worker that has no config.
    b.ban("192.0.2.1", &["hook"]);
    // Spooled by `notify` while the config did not load.
    let event = Event::target_event(EventKind::Ban, "sshd", "192.0.2.2", "h");
    b.spool.enqueue(&Entry::unrouted(event, "config.toml: unknown field `sinkz`".into())).unwrap();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut worker = Worker::new(b.delivery.clone(), Box::new(|_| None));
    let route: RouteFn<'static> = Box::new(|e| {
        assert_eq!(e.id.as_deref(), Some("192.0.2.2"));
        Routed::Sinks(vec!["hook".to_owned()])
    });
    let mut next = Some((b.delivery.clone(), factory(&b.sinks), route));
    let (broken2, fixed2) = (Arc::clone(&broken), Arc::clone(&fixed));
    worker.watch_config(Box::new(move || {
        if broken2.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Some(Err("config.toml: unknown field `sinkz`".to_owned()));
        }
        if fixed2.load(std::sync::atomic::Ordering::SeqCst) {
            return next.take().map(Ok);
        }
        None
    }));
    with_worker(worker, async {
        // Broken for longer than the grace period: still nothing dead, nothing sent.
        b.until(2 * UNCONFIGURED_GRACE.as_millis() as u64).await;
        assert!(hook.calls().is_empty());
        assert!(b.dead("hook").is_empty());
        assert_eq!(b.spool.unrouted_reasons().unwrap(), ["config.toml: unknown field `sinkz`"]);
        let why = b.spool.load_state("hook").and_then(|s| s.last_error).unwrap_or_default();
        assert!(why.contains("the config does not load: config.toml: unknown field `sinkz`"), "{why}");
        fixed.store(true, std::sync::atomic::Ordering::SeqCst);
        wait("both events", || hook.calls().iter().map(|c| c.ids.len()).sum::<usize>() == 2).await;
    })
    .await;
    assert!(b.spool.unrouted().unwrap().is_empty());
    assert!(b.dead("hook").is_empty());
}

impl Mem {
    fn alerts(&self) -> Vec<(u64, Alert)> {
        self.alerts.lock().unwrap().clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_failing_for_alert_after_is_told_once_to_the_other_alert_sinks_and_its_recovery_once() {
    let mut b = Bench::new();
    b.delivery.alert = vec!["ops".into(), "api".into()];
    b.delivery.alert_after = Seconds(Duration::from_secs(10));
    b.delivery.retry_max = Seconds(Duration::from_secs(5));
    let t0 = b.t0;
    // Answers 503 for the first 25 s, then takes everything.
    let api = b.sink("api", move |_| {
        if ms(t0) < 25_000 {
            Act::Fail(SinkError::transient("HTTP 503: upstream down"))
        } else {
            Act::Ok
        }
    });
    let ops = b.sink("ops", |_| Act::Ok);
    b.ban("192.0.2.1", &["api"]);
    with_worker(b.worker(), async {
        wait("the recovery", || ops.alerts().len() == 2).await;
        b.until(120_000).await;
    })
    .await;
    let alerts = ops.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let (at, failing) = &alerts[0];
    // Failing since the first try at 0 ms: told at the first look after 10 s, not before.
    assert!((10_000..=11_000).contains(at), "{at}");
    assert!(failing.subject.contains("sink `api` failing since"), "{failing:?}");
    assert!(failing.text.contains("Last error: HTTP 503: upstream down"), "{failing:?}");
    assert!(failing.text.contains("1 event(s) waiting for it."), "{failing:?}");
    assert!(!failing.recovered);
    let (at, recovered) = &alerts[1];
    assert!(*at >= 25_000, "{at}");
    assert!(recovered.subject.contains("sink `api` recovered") && recovered.recovered, "{recovered:?}");
    // Never told about itself, though it is an alert sink too.
    assert!(api.alerts().is_empty());
    assert_eq!(b.pending("api"), 0);
}

#[tokio::test(start_paused = true)]
async fn events_given_up_are_told_at_once_then_at_most_once_per_alert_after() {
    let mut b = Bench::new();
    b.delivery.alert = vec!["ops".into()];
    b.delivery.alert_after = Seconds(Duration::from_secs(10));
    b.sink("api", |_| Act::Fail(SinkError::permanent("invalid_token: the token is not valid")));
    let ops = b.sink("ops", |_| Act::Ok);
    b.ban("192.0.2.1", &["api"]);
    with_worker(b.worker(), async {
        for (at, ip) in [(1000, "192.0.2.2"), (2000, "192.0.2.3"), (3000, "192.0.2.4")] {
            b.until(at).await;
            b.ban(ip, &["api"]);
        }
        b.until(60_000).await;
    })
    .await;
    let alerts = ops.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert!(alerts[0].0 <= 100, "{alerts:?}");
    assert!(
        alerts[0].1.text.contains("1 event(s) moved to the dead letters: permanent failure: invalid_token"),
        "{alerts:?}"
    );
    // The three given up since are one alert, once `alert_after` has passed.
    assert!((10_000..=11_000).contains(&alerts[1].0), "{alerts:?}");
    assert!(alerts[1].1.text.contains("3 event(s) moved to the dead letters"), "{alerts:?}");
    assert_eq!(b.dead("api").len(), 4);
}

/// One post of a sink that converses: when (ms), which ids, the message it replied to or
/// edited, and the message it answered with.
#[derive(Debug, Clone, PartialEq)]
struct Said {
    at: u64,
    ids: Vec<String>,
    reply_to: Option<String>,
    update: Option<String>,
}

/// An in-memory sink that answers message references, like the Slack Web API: a new
/// message gets `mN`, an edit keeps the edited message's reference. Its n-th call fails when
/// `fail` says so (the call is recorded either way).
#[derive(Clone)]
struct Talk {
    t0: Instant,
    said: Arc<Mutex<Vec<Said>>>,
    fail: Arc<dyn Fn(usize) -> Option<SinkError> + Send + Sync>,
}

impl Talk {
    fn new(t0: Instant, fail: impl Fn(usize) -> Option<SinkError> + Send + Sync + 'static) -> Self {
        Self { t0, said: Arc::default(), fail: Arc::new(fail) }
    }

    fn said(&self) -> Vec<Said> {
        self.said.lock().unwrap().clone()
    }

    fn record(
        &self,
        ids: Vec<String>,
        reply_to: Option<&MessageRef>,
        update: Option<&MessageRef>,
    ) -> Result<Option<MessageRef>, SinkError> {
        let mut said = self.said.lock().unwrap();
        let n = said.len();
        said.push(Said {
            at: ms(self.t0),
            ids,
            reply_to: reply_to.map(|r| r.as_str().to_owned()),
            update: update.map(|r| r.as_str().to_owned()),
        });
        if let Some(e) = (self.fail)(n) {
            return Err(e);
        }
        Ok(Some(update.cloned().unwrap_or_else(|| MessageRef::new(format!("m{n}")).unwrap())))
    }
}

#[async_trait]
impl Sink for Talk {
    fn name(&self) -> &str {
        "talk"
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn send(&self, _: &Event) -> Result<(), SinkError> {
        unreachable!("the worker posts")
    }
    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        self.record(vec![event.id.clone().unwrap_or_default()], reply_to, None)
    }
    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        self.record(digest.events.iter().map(|e| e.id.clone().unwrap_or_default()).collect(), None, update)
    }
    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
}

fn talking_worker(b: &Bench, talk: &Talk) -> Worker<'static> {
    let talk = talk.clone();
    Worker::new(
        b.delivery.clone(),
        Box::new(move |name| (name == "talk").then(|| Ok(Arc::new(talk.clone()) as Arc<dyn Sink>))),
    )
}

fn unban(b: &Bench, ip: &str) {
    let entry = Entry::new(Event::target_event(EventKind::Unban, "sshd", ip, "h"), vec!["talk".into()]);
    b.spool.enqueue(&entry).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_storm_is_one_message_edited_at_the_pace_and_an_unban_replies_to_its_ban() {
    let b = Bench::new();
    let talk = Talk::new(b.t0, |_| None);
    b.ban("192.0.2.1", &["talk"]);
    with_worker(talking_worker(&b, &talk), async {
        wait("the first ban", || talk.said().len() == 1).await;
        b.until(100).await;
        b.ban("192.0.2.2", &["talk"]);
        b.ban("192.0.2.3", &["talk"]);
        wait("the first edit", || talk.said().len() == 2).await;
        b.until(1_100).await;
        b.ban("192.0.2.4", &["talk"]);
        wait("the second edit", || talk.said().len() == 3).await;
        // Long after the storm: the unban replies to its ban's message.
        b.until(60_000).await;
        unban(&b, "192.0.2.3");
        wait("the unban", || talk.said().len() == 4).await;
        // And a ban after the storm is a new message.
        b.until(120_000).await;
        b.ban("198.51.100.1", &["talk"]);
        wait("the new ban", || talk.said().len() == 5).await;
    })
    .await;
    let said = talk.said();
    let s = |at: u64, list: &[&str], reply_to: Option<&str>, update: Option<&str>| Said {
        at,
        ids: ids(list),
        reply_to: reply_to.map(Into::into),
        update: update.map(Into::into),
    };
    assert_eq!(said[0], s(0, &["192.0.2.1"], None, None));
    // Each edit holds the whole storm so far, one pacing interval after the last message.
    assert_eq!(said[1], s(1_000, &["192.0.2.1", "192.0.2.2", "192.0.2.3"], None, Some("m0")));
    assert_eq!(said[2], s(2_000, &["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"], None, Some("m0")));
    assert_eq!((said[3].ids.clone(), said[3].reply_to.as_deref()), (ids(&["192.0.2.3"]), Some("m0")));
    assert_eq!((said[4].reply_to.clone(), said[4].update.clone()), (None, None));
}

#[tokio::test(start_paused = true)]
async fn an_edit_whose_answer_was_lost_is_retried_as_the_same_edit_even_after_the_storm_gap() {
    let b = Bench::new();
    // The first edit times out: the service may have it, so the retry waits 30 s, past the
    // storm gap, and must edit the same message again rather than post the storm anew.
    let talk = Talk::new(b.t0, |n| (n == 1).then(|| SinkError::transient("no answer within 10.0 s")));
    b.ban("192.0.2.1", &["talk"]);
    with_worker(talking_worker(&b, &talk), async {
        wait("the first ban", || talk.said().len() == 1).await;
        b.until(100).await;
        b.ban("192.0.2.2", &["talk"]);
        wait("the retried edit", || talk.said().len() == 3).await;
    })
    .await;
    let said = talk.said();
    assert_eq!(said[1].update.as_deref(), Some("m0"));
    assert!(said[2].at >= 30_000, "{said:?}");
    assert_eq!((said[2].ids.clone(), said[2].update.as_deref()), (ids(&["192.0.2.1", "192.0.2.2"]), Some("m0")));
}
