//! Ban and unban as one conversation, and a storm as one message that keeps counting.
//!
//! A sink that can reply to and edit its messages (Slack's Web API, Discord, Telegram,
//! Matrix) returns a [`MessageRef`] for what it posted ([`Sink::post`](f2b_notify_core::Sink)).
//! Per sink, the worker keeps:
//!
//! - **threads**: the message of each ban, by jail and banned id, until the ban has ended
//!   (its ban time and a day more; [`MAX_THREADS`] at most, the soonest to end dropped
//!   first). The unban of that id is posted as a reply to it (during a storm it goes into
//!   the storm's message instead, so that a reply does not split the storm). They are kept in the spool's
//!   state (`state/NAME.threads.json`, written before the delivered events leave the queue),
//!   so that an unban after a worker restart still finds its ban.
//! - **the storm**: the last message while messages follow each other closely (within
//!   [`storm_gap`]). The next batch is not posted as a new message: that message is edited to
//!   hold every event of the storm so far, so that a storm of 500 bans is one message whose
//!   count keeps rising, not one message per pacing interval. An edit is a message for
//!   pacing (the lane waits `min_interval` after it as after any send). The storm lives in
//!   memory: after a restart the next batch starts a new message.
//!
//! An edit does not notify anybody: the first message of a storm does, and the storm's
//! message then shows how far it went.

use std::collections::BTreeMap;
use std::time::Duration;

use f2b_notify_core::{Event, EventKind, MessageRef};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::spool::{now_epoch, Spool};

/// The most ban messages one sink remembers; past it those whose bans end soonest go.
pub const MAX_THREADS: usize = 20_000;
/// How long past the end of its ban time a ban's message is kept: Fail2Ban's unban may come
/// late (a busy server, `bantime.increment` prolonging a ban) and a restored ban's clock runs
/// from its restart.
const THREAD_GRACE: f64 = 86_400.0;
/// How long a ban's message is kept when its ban time is unknown or permanent (an unban by
/// hand may still come): a year, within [`MAX_THREADS`].
const THREAD_KEEP_PERMANENT: f64 = 365.0 * 86_400.0;
/// The largest threads file read back: [`MAX_THREADS`] entries of a few hundred bytes each,
/// with room to spare. A larger one is not ours to trust.
const MAX_THREADS_FILE: u64 = 32 << 20;
/// The most events one storm message holds; past it the next batch starts a new message
/// (every sink lists addresses only up to its own limits anyway).
pub const STORM_MAX_EVENTS: usize = 10_000;

/// How soon after the last message the next batch must come to be part of the same storm:
/// 10 s, or three pacing intervals when those are longer (Matrix's 5 s).
pub fn storm_gap(min_interval: Duration) -> Duration {
    Duration::from_secs(10).max(min_interval * 3)
}

/// One ban's message.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Thread {
    jail: String,
    id: String,
    message: MessageRef,
    /// Epoch seconds after which it is forgotten.
    until: f64,
}

/// The message a storm is being counted in.
#[derive(Debug, Clone)]
struct Storm {
    message: MessageRef,
    events: Vec<Event>,
    last: Instant,
}

/// How a batch is to be posted, decided before its send starts.
#[derive(Debug, Clone)]
pub enum Plan {
    /// One event as its own message, replying to its ban's message when known.
    One { reply_to: Option<MessageRef> },
    /// A digest: the storm's events so far (`base`) and the batch, editing the storm's
    /// message when there is one.
    Digest { update: Option<MessageRef>, base: Vec<Event> },
}

impl Plan {
    /// The events the message holds: the storm's so far and the batch.
    pub fn events(&self, batch: Vec<Event>) -> Vec<Event> {
        match self {
            Plan::One { .. } => batch,
            Plan::Digest { base, .. } => {
                let mut all = base.clone();
                all.extend(batch);
                all
            }
        }
    }
}

/// A send in flight: its plan and its batch, for [`Conversation::delivered`].
#[derive(Debug)]
pub struct Sending {
    pub plan: Plan,
    pub batch: Vec<Event>,
}

/// One sink's threads and storm.
#[derive(Debug, Default)]
pub struct Conversation {
    threads: BTreeMap<(String, String), Thread>,
    storm: Option<Storm>,
    /// Threads changed since they were saved.
    dirty: bool,
}

impl Conversation {
    /// The threads `sink` left in `spool`'s state, those whose bans have ended dropped. A
    /// file that does not read is no thread (it only costs replies).
    pub fn load(spool: &Spool, sink: &str) -> Self {
        let mut c = Self::default();
        let bytes = match spool.load_threads(sink, MAX_THREADS_FILE) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return c,
            Err(e) => {
                tracing::warn!("sink `{sink}`: its ban messages (threads) cannot be read ({e}); starting afresh");
                return c;
            }
        };
        // Entry by entry: one that does not read (a reference that is not one line, say) is
        // left out, not every thread with it.
        match serde_json::from_slice::<Vec<serde_json::Value>>(&bytes) {
            Ok(entries) => {
                let now = now_epoch();
                let threads = entries.into_iter().filter_map(|v| serde_json::from_value::<Thread>(v).ok());
                for mut t in threads.filter(|t| t.until > now) {
                    // Nothing is kept longer than a permanent ban's message would be.
                    t.until = t.until.min(now + THREAD_KEEP_PERMANENT);
                    c.threads.insert((t.jail.clone(), t.id.clone()), t);
                }
                c.bound();
            }
            Err(e) => tracing::warn!("sink `{sink}`: its ban messages (threads) do not read ({e}); starting afresh"),
        }
        c
    }

    /// Saves the threads when they changed. Durable: the unban of a ban posted just before
    /// a crash must find it.
    pub fn save(&mut self, spool: &Spool, sink: &str) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let now = now_epoch();
        self.threads.retain(|_, t| t.until > now);
        let list: Vec<&Thread> = self.threads.values().collect();
        let body = serde_json::to_vec(&list).map_err(std::io::Error::other)?;
        spool.save_threads(sink, &body)?;
        self.dirty = false;
        Ok(())
    }

    /// How to post `batch` now: an unban alone replies to its ban; while a storm is open
    /// its message is edited to hold the batch too; else one event is one message and
    /// several are a new digest.
    pub fn plan(&self, batch: &[Event], now: Instant, min_interval: Duration) -> Plan {
        // While a storm lasts everything goes into its message, an unban too: a reply in
        // between would end the storm's one message (and a sink that cannot reply would post
        // it in the channel).
        let open = self.storm.as_ref().filter(|s| {
            now.saturating_duration_since(s.last) <= storm_gap(min_interval)
                && s.events.len() + batch.len() <= STORM_MAX_EVENTS
        });
        if let Some(storm) = open {
            return Plan::Digest { update: Some(storm.message.clone()), base: storm.events.clone() };
        }
        match batch {
            [event] if event.kind == EventKind::Unban => {
                Plan::One { reply_to: self.thread_of(event).map(|t| t.message.clone()) }
            }
            [_] => Plan::One { reply_to: None },
            _ => Plan::Digest { update: None, base: Vec::new() },
        }
    }

    /// Records what a delivered send posted: the message of each ban in it, the storm it
    /// opened or continued, the thread an unban reply ended. A sink that returned no message
    /// ends the storm (it cannot edit). A send that failed is not recorded: the storm stays
    /// as it was and the same batch is tried again on the same message.
    pub fn delivered(&mut self, sending: Sending, posted: Option<MessageRef>, now: Instant) {
        let Sending { plan, batch } = sending;
        let Some(message) = posted else {
            self.storm = None;
            return;
        };
        for event in &batch {
            match event.kind {
                EventKind::Ban => self.remember(event, &message),
                EventKind::Unban => {
                    if self.threads.remove(&key(event)).is_some() {
                        self.dirty = true;
                    }
                }
                EventKind::Start | EventKind::Stop => {}
            }
        }
        match plan {
            // A reply (an unban after its storm) is no place to count a storm in; an unban
            // never opens one.
            Plan::One { .. } if batch.iter().all(|e| e.kind == EventKind::Unban) => self.storm = None,
            plan => {
                let events = plan.events(batch);
                self.storm = Some(Storm { message, events, last: now });
            }
        }
        self.bound();
    }

    fn thread_of(&self, event: &Event) -> Option<&Thread> {
        self.threads.get(&key(event))
    }

    fn remember(&mut self, event: &Event, message: &MessageRef) {
        let start = event.time.filter(|t| t.is_finite() && *t > 0.0).unwrap_or_else(now_epoch);
        let until = match event.bantime {
            Some(secs) if secs >= 0 => start + secs as f64 + THREAD_GRACE,
            _ => now_epoch() + THREAD_KEEP_PERMANENT,
        };
        let thread = Thread {
            jail: event.jail.clone(),
            id: event.id.clone().unwrap_or_default(),
            message: message.clone(),
            until,
        };
        self.threads.insert(key(event), thread);
        self.dirty = true;
    }

    /// At most [`MAX_THREADS`]: those that end soonest go first.
    fn bound(&mut self) {
        if self.threads.len() <= MAX_THREADS {
            return;
        }
        let mut by_end: Vec<(f64, (String, String))> = self.threads.iter().map(|(k, t)| (t.until, k.clone())).collect();
        by_end.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, k) in by_end.into_iter().take(self.threads.len() - MAX_THREADS) {
            self.threads.remove(&k);
        }
        self.dirty = true;
    }

    #[cfg(test)]
    fn threads(&self) -> usize {
        self.threads.len()
    }
}

fn key(event: &Event) -> (String, String) {
    (event.jail.clone(), event.id.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(ip: &str) -> Event {
        let mut e = Event::target_event(EventKind::Ban, "sshd", ip, "h");
        e.time = Some(now_epoch());
        e.bantime = Some(600);
        e
    }

    fn unban(ip: &str) -> Event {
        Event::target_event(EventKind::Unban, "sshd", ip, "h")
    }

    fn msg(s: &str) -> MessageRef {
        MessageRef::new(s).unwrap()
    }

    fn send(c: &mut Conversation, batch: Vec<Event>, now: Instant, posted: Option<&str>) -> Plan {
        let plan = c.plan(&batch, now, Duration::from_secs(1));
        c.delivered(Sending { plan: plan.clone(), batch }, posted.map(msg), now);
        plan
    }

    #[tokio::test(start_paused = true)]
    async fn an_unban_replies_to_its_ban_and_ends_the_thread() {
        let mut c = Conversation::default();
        let t0 = Instant::now();
        send(&mut c, vec![ban("192.0.2.1")], t0, Some("C1:1.0"));
        let later = t0 + Duration::from_secs(600);
        let plan = c.plan(&[unban("192.0.2.1")], later, Duration::from_secs(1));
        assert!(matches!(&plan, Plan::One { reply_to: Some(m) } if m.as_str() == "C1:1.0"), "{plan:?}");
        c.delivered(Sending { plan, batch: vec![unban("192.0.2.1")] }, Some(msg("C1:2.0")), later);
        assert_eq!(c.threads(), 0);
        // An unban whose ban is unknown is a message of its own.
        assert!(matches!(c.plan(&[unban("192.0.2.9")], later, Duration::from_secs(1)), Plan::One { reply_to: None }));
        // The same id in another jail is another conversation.
        send(&mut c, vec![ban("192.0.2.1")], later, Some("C1:3.0"));
        let mut other = unban("192.0.2.1");
        other.jail = "nginx".into();
        let quiet = later + storm_gap(Duration::from_secs(1)) * 2;
        assert!(matches!(c.plan(&[other], quiet, Duration::from_secs(1)), Plan::One { reply_to: None }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_is_one_message_edited_while_batches_follow_closely() {
        let mut c = Conversation::default();
        let t0 = Instant::now();
        // The first ban goes alone; the batches that follow within the gap edit its message.
        assert!(matches!(send(&mut c, vec![ban("192.0.2.1")], t0, Some("C1:1.0")), Plan::One { reply_to: None }));
        let batch: Vec<Event> = (2..=40).map(|i| ban(&format!("192.0.2.{i}"))).collect();
        let t1 = t0 + Duration::from_secs(1);
        match send(&mut c, batch, t1, Some("C1:1.0")) {
            Plan::Digest { update: Some(m), base } => {
                assert_eq!(m.as_str(), "C1:1.0");
                assert_eq!(base.len(), 1);
            }
            p => panic!("{p:?}"),
        }
        let t2 = t1 + Duration::from_secs(1);
        let plan = send(&mut c, vec![ban("192.0.2.41")], t2, Some("C1:1.0"));
        let Plan::Digest { update: Some(_), base } = &plan else { panic!("{plan:?}") };
        assert_eq!(base.len(), 40, "every event of the storm so far");
        assert_eq!(plan.events(vec![ban("192.0.2.42")]).len(), 41);
        // After the storm, the unban of any of its bans replies in the storm's message.
        let after = t2 + storm_gap(Duration::from_secs(1)) * 2;
        let plan = c.plan(&[unban("192.0.2.30")], after, Duration::from_secs(1));
        assert!(matches!(&plan, Plan::One { reply_to: Some(m) } if m.as_str() == "C1:1.0"));
        // Past the gap, a new message.
        let t3 = t2 + storm_gap(Duration::from_secs(1)) + Duration::from_millis(1);
        assert!(matches!(c.plan(&[ban("198.51.100.1")], t3, Duration::from_secs(1)), Plan::One { reply_to: None }));
        let two = vec![ban("198.51.100.1"), ban("198.51.100.2")];
        assert!(matches!(c.plan(&two, t3, Duration::from_secs(1)), Plan::Digest { update: None, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_that_cannot_edit_opens_no_storm() {
        let mut c = Conversation::default();
        let t0 = Instant::now();
        send(&mut c, vec![ban("192.0.2.1")], t0, None);
        let two = vec![ban("192.0.2.2"), ban("192.0.2.3")];
        assert!(matches!(c.plan(&two, t0, Duration::from_secs(1)), Plan::Digest { update: None, .. }));
        assert_eq!(c.threads(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_storm_starts_a_new_message() {
        let mut c = Conversation::default();
        let t0 = Instant::now();
        let big: Vec<Event> =
            (0..STORM_MAX_EVENTS).map(|i| ban(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))).collect();
        send(&mut c, big, t0, Some("C1:1.0"));
        assert!(matches!(c.plan(&[ban("192.0.2.1")], t0, Duration::from_secs(1)), Plan::One { reply_to: None }));
    }

    #[test]
    fn threads_are_bounded_and_expire() {
        let mut c = Conversation::default();
        for i in 0..(MAX_THREADS + 10) {
            let mut e = ban(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
            e.bantime = Some(i as i64);
            c.remember(&e, &msg("C1:1.0"));
        }
        c.bound();
        assert_eq!(c.threads(), MAX_THREADS);
        // The ones that end soonest went.
        assert!(c.thread_of(&unban("10.0.0.0")).is_none());
        assert!(c.thread_of(&unban("10.0.0.9")).is_none());
        assert!(c.thread_of(&unban("10.0.0.10")).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_unban_during_a_storm_goes_into_the_storms_message() {
        let mut c = Conversation::default();
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        send(&mut c, vec![ban("192.0.2.1")], t0, Some("m0"));
        send(&mut c, vec![ban("192.0.2.2"), ban("192.0.2.3")], t0 + i, Some("m0"));
        // The unban of a ban of the storm: folded into the storm, not a reply that ends it.
        let plan = send(&mut c, vec![unban("192.0.2.1")], t0 + 2 * i, Some("m0"));
        assert!(matches!(&plan, Plan::Digest { update: Some(m), .. } if m.as_str() == "m0"), "{plan:?}");
        let plan = c.plan(&[ban("192.0.2.4")], t0 + 3 * i, i);
        assert!(
            matches!(&plan, Plan::Digest { update: Some(m), base } if m.as_str() == "m0" && base.len() == 4),
            "{plan:?}"
        );
        // An unban alone after a quiet time opens no storm.
        let later = t0 + Duration::from_secs(600);
        send(&mut c, vec![unban("192.0.2.9")], later, Some("m9"));
        assert!(matches!(c.plan(&[ban("192.0.2.5")], later + i, i), Plan::One { reply_to: None }));
    }

    #[test]
    fn a_threads_file_that_is_not_a_regular_file_or_too_odd_is_no_thread() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        spool.ensure().unwrap();
        std::fs::create_dir_all(dir.path().join("spool/state")).unwrap();
        // A FIFO in its place: read without waiting for a writer.
        let fifo = dir.path().join("spool/state/ops.threads.json");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = Spool::new(dir.path().join("spool"));
        std::thread::spawn(move || {
            let _ = tx.send(Conversation::load(&s2, "ops").threads());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(0), "a FIFO blocks the worker");
        std::fs::remove_file(&fifo).unwrap();
        // A hostile reference (not one line, huge) is left out, the good entry kept, and no
        // end is later than a year.
        let long = "x".repeat(100_000);
        let body = format!(
            r#"[{{"jail":"sshd","id":"192.0.2.1","message":"a\nb{long}","until":1e300}},{{"jail":"sshd","id":"192.0.2.2","message":"C1:2.0","until":1e300}}]"#
        );
        spool.save_threads("ops", body.as_bytes()).unwrap();
        let c = Conversation::load(&spool, "ops");
        assert!(c.thread_of(&unban("192.0.2.1")).is_none());
        let kept = c.thread_of(&unban("192.0.2.2")).unwrap();
        assert!(kept.until <= now_epoch() + THREAD_KEEP_PERMANENT + 1.0);
    }

    #[test]
    fn threads_survive_a_restart_and_ended_bans_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        spool.ensure().unwrap();
        let mut c = Conversation::default();
        c.remember(&ban("192.0.2.1"), &msg("C1:1.0"));
        let mut old = ban("192.0.2.2");
        old.time = Some(now_epoch() - 3.0 * 86_400.0);
        c.remember(&old, &msg("C1:0.5"));
        c.save(&spool, "ops").unwrap();
        let back = Conversation::load(&spool, "ops");
        assert_eq!(back.thread_of(&unban("192.0.2.1")).map(|t| t.message.as_str()), Some("C1:1.0"));
        assert!(back.thread_of(&unban("192.0.2.2")).is_none(), "its ban ended days ago");
        // A file that does not read is no thread, and no failure.
        spool.save_threads("ops", b"{not json").unwrap();
        assert_eq!(Conversation::load(&spool, "ops").threads(), 0);
    }
}
