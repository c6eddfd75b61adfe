//! Alerts about the sinks themselves (`[delivery] alert`): an administrator hears, on a channel
//! they watch, that another sink has been failing for `alert_after` or gave events up, and
//! once more when it recovers, instead of finding out from a log nobody reads.
//!
//! Per failing sink: one alert when it has been failing for `alert_after` (every try since
//! the first failure failed), or at once when it moves events to the dead letters; after
//! that, only new dead letters are told, at most one alert per `alert_after`; and one message
//! when it delivers again. Nothing here sends: the worker sends what [`Alerts::due`] returns,
//! never to the sink the alert is about.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::Alert;
use tokio::time::Instant;

/// What is known about one sink's trouble.
#[derive(Debug, Default)]
struct Watch {
    /// Since when every try failed: on the worker's clock, and as wall-clock time for the text.
    failing_since: Option<(Instant, SystemTime)>,
    /// When the last alert about this sink went out.
    last_alert: Option<Instant>,
    /// A failure alert went out and no recovery yet.
    open: bool,
    /// Events moved to the dead letters since the last alert, and the last reason.
    dead: u64,
    dead_reason: Option<String>,
}

/// What the worker tells about the sink an alert is for.
pub struct Status<'a> {
    pub kind: &'a str,
    pub pending: usize,
    pub last_error: Option<&'a str>,
}

/// Every sink's trouble, as the worker saw it.
#[derive(Debug, Default)]
pub struct Alerts {
    watches: BTreeMap<String, Watch>,
}

impl Alerts {
    /// A try of `sink` failed.
    pub fn failed(&mut self, sink: &str) {
        let w = self.watches.entry(sink.to_owned()).or_default();
        w.failing_since.get_or_insert_with(|| (Instant::now(), SystemTime::now()));
    }

    /// `n` events of `sink` went to the dead letters because `reason`.
    pub fn buried(&mut self, sink: &str, n: usize, reason: &str) {
        if n == 0 {
            return;
        }
        let w = self.watches.entry(sink.to_owned()).or_default();
        w.dead += n as u64;
        w.dead_reason = Some(reason.to_owned());
    }

    /// `sink` delivered: the recovery message, when a failure alert went out (`open`: one
    /// went out before this worker started, as the sink's state says).
    pub fn delivered(&mut self, sink: &str, open: bool, host: &str, status: &Status<'_>) -> Option<Alert> {
        let w = self.watches.remove(sink).unwrap_or_default();
        if !w.open && !open {
            return None;
        }
        let since = w.failing_since.map(|(_, at)| format!(" after failing since {}", clock(at))).unwrap_or_default();
        Some(Alert {
            subject: format!("f2b-notify on {host}: sink `{sink}` recovered"),
            text: format!(
                "The {} sink `{sink}` delivered again at {}{since}.\n{} event(s) still waiting for it.",
                status.kind,
                clock(SystemTime::now()),
                status.pending
            ),
            recovered: true,
        })
    }

    /// The alerts due now, each with the sink it is about. `status` tells about a sink.
    pub fn due<'a>(
        &mut self,
        alert_after: Duration,
        host: &str,
        status: impl Fn(&str) -> Status<'a>,
    ) -> Vec<(String, Alert)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (sink, w) in &mut self.watches {
            let quiet = w.last_alert.is_none_or(|at| now.duration_since(at) >= alert_after);
            if !quiet {
                continue;
            }
            let long_failing = !w.open && w.failing_since.is_some_and(|(at, _)| now.duration_since(at) >= alert_after);
            if !long_failing && w.dead == 0 {
                continue;
            }
            let s = status(sink);
            let mut lines = Vec::new();
            let subject = match w.failing_since {
                Some((_, at)) => {
                    lines.push(format!("The {} sink `{sink}` has been failing since {}.", s.kind, clock(at)));
                    format!("f2b-notify on {host}: sink `{sink}` failing since {}", clock(at))
                }
                None => format!("f2b-notify on {host}: sink `{sink}` gave events up"),
            };
            if let Some(e) = s.last_error {
                lines.push(format!("Last error: {e}"));
            }
            if w.dead > 0 {
                lines.push(format!(
                    "{} event(s) moved to the dead letters: {}",
                    w.dead,
                    w.dead_reason.as_deref().unwrap_or("?")
                ));
                lines.push("`f2b-notify queue` lists them; `f2b-notify queue retry` sends them again.".to_owned());
            }
            lines.push(format!("{} event(s) waiting for it.", s.pending));
            out.push((sink.clone(), Alert { subject, text: lines.join("\n"), recovered: false }));
            w.last_alert = Some(now);
            w.open = true;
            w.dead = 0;
        }
        out
    }
}

/// A wall-clock time as the alert shows it: UTC to the second.
fn clock(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string().replace('T', " ")
}
