//! Transaction ids: what makes a retry idempotent.
//!
//! The homeserver treats a `PUT …/send/m.room.message/{txnId}` whose transaction id and path
//! it has seen before (from the same device) as a retransmission: it answers with the first
//! event's id and posts nothing new. So a send whose answer was lost (a timeout, a dropped
//! connection, a worker killed between request and answer) can be sent again without a second
//! message, provided the retry carries the same id. Synapse keeps these ids for 24 hours.
//! Sources: <https://spec.matrix.org/latest/client-server-api/#transaction-identifiers>,
//! Synapse's `events_worker.py` ("Cleans out transaction id mappings older than 24hrs").
//!
//! The router hands a sink an event or a digest and no id of its own, and a new worker (after
//! a crash) sends the same batch again from the spool. So the id is derived from what is sent:
//! `f2b-` and the SHA-256 of the events' JSON (the first 128 bits, in hex), leaving out what
//! enrichment found (looked up again for each try, it may differ). The same events give the
//! same id in any process, at any time.
//!
//! That is only right when two different sends can never carry equal events. A ban or unban
//! carries Fail2Ban's `<time>` of the ban (to the microsecond), so two of them are never
//! equal; a jail start or stop carries no time at all, and a jail that stops twice in a day
//! would make two equal events, the second of which the server would swallow as a retry. So an
//! event set in which some event has no `time` gets an id that is also unique to this try: the
//! hash and a nonce. The nonce is kept while that same set is being retried by this process
//! (the retry after a lost answer is deduplicated) and dropped once it is delivered (the next
//! equal set is a new message). A worker that dies with such a set in flight may therefore post
//! it twice; a duplicate "jail started" is the lesser evil next to a lost one.
//!
//! A ban that Fail2Ban restores at a restart carries the first ban's time and `restored`: a
//! second restart within the homeserver's memory of transaction ids (Synapse: 24 hours)
//! announces it under the same id, and the homeserver keeps the first announcement only.
//! Such bans are quiet unless a route asks for them (`restored = true`), and the room has
//! already been told.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use f2b_notify_core::{Context, Event};

/// The hex SHA-256 (first 128 bits) of `what` and the events' JSON, without what enrichment
/// found.
fn digest_of(what: &str, events: &[&Event]) -> String {
    // The worker looks enrichment up again before every try, and its answers may differ: a
    // PTR name that came too late for the first try and in time for the retry must not make
    // the retry a new message. An event without it serialises as it always did.
    let bare: Vec<Event> = events.iter().map(|e| Event { context: Context::default(), ..(*e).clone() }).collect();
    // serde_json writes a struct's fields in declaration order and a float the same way every
    // time: the same events give the same bytes.
    let json = serde_json::to_vec(&(what, &bare)).unwrap_or_default();
    let hash = ring::digest::digest(&ring::digest::SHA256, &json);
    hash.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A value no other try of this process or any other has: the time in nanoseconds, the
/// process id and a counter.
fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}.{:x}.{n:x}", std::process::id())
}

/// Hands out transaction ids; remembers the one of the set that failed last, for its retry.
#[derive(Debug, Default)]
pub struct Transactions {
    /// The hash and full id of the last set sent with a nonce that was not delivered.
    pending: Mutex<Option<(String, String)>>,
}

impl Transactions {
    /// The id for sending `events` (`what`: "event" or "digest", so that the two never share
    /// one). Deterministic when every event carries Fail2Ban's time; see the module docs.
    pub fn id(&self, what: &str, events: &[&Event]) -> String {
        let hash = digest_of(what, events);
        if events.iter().all(|e| e.time.is_some()) {
            return format!("f2b-{hash}");
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match &*pending {
            Some((h, id)) if *h == hash => id.clone(),
            _ => {
                let id = format!("f2b-{hash}-{}", nonce());
                *pending = Some((hash, id.clone()));
                id
            }
        }
    }

    /// The id [`Self::id`] would give, without remembering anything (for a preview): a set
    /// without Fail2Ban's time shows where its nonce goes.
    pub fn preview(what: &str, events: &[&Event]) -> String {
        let hash = digest_of(what, events);
        if events.iter().all(|e| e.time.is_some()) {
            format!("f2b-{hash}")
        } else {
            format!("f2b-{hash}-NONCE")
        }
    }

    /// `id` was delivered: an equal set sent later is a new message.
    pub fn delivered(&self, id: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.as_ref().is_some_and(|(_, p)| p == id) {
            *pending = None;
        }
    }

    /// An id for a message that is never retried as such (an alert): unique.
    pub fn unique(what: &str) -> String {
        format!("f2b-{what}-{}", nonce())
    }
}
