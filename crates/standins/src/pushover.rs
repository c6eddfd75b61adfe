//! Pushover's Message API as its documentation describes it, for the Pushover sink's tests and
//! the router's end-to-end tests: [`Service`] checks what Pushover checks and answers with
//! Pushover's status codes, error bodies and `X-Limit-App-*` headers.
//!
//! Sources: D: the API documentation, <https://pushover.net/api> (its sections `#messages`,
//! `#response`, `#limits`, `#priority`, `#html`, `#friendly`); F: answers seen in the field,
//! cited per rule; U: not documented, chosen here (the stricter reading, so that a sink that
//! relies on it fails its tests rather than production).
//!
//! 1. Only `POST /1/messages.json` (D: `#messages`, "construct a POST request (not a GET
//!    request…)"). Any other path or method is **404** with the error shape below (U: the
//!    status).
//! 2. Parameters are read from the body only: form-encoded
//!    (`application/x-www-form-urlencoded`) or JSON with `Content-Type: application/json` (D:
//!    `#messages`, "We do not support receiving XML-encoded parameters, only the standard
//!    percent-encoding … and JSON"). Any other body carries no parameters. The query string is
//!    never read (U: stricter than Pushover may be, so that a sink putting a secret in the URL
//!    fails).
//! 3. `token` must be the application's token (30 of `A-Za-z0-9`, D: `#registration`), else
//!    **400** `{"token":"invalid","errors":["application token is invalid, see
//!    https://pushover.net/api"],"status":0,"request":"…"}` (F: the shape in
//!    github.com/amyreese/znc-push/issues/140, the text with its link as Pushover sends it
//!    now, e.g. in github.com/guanguans/notify's fixtures).
//! 4. The monthly quota (D: `#limits`): once the application's messages this month reach its
//!    limit (10,000 by default, [`Service::set_quota`]), **429** `{"token":"invalid","errors":
//!    ["application has exceeded current limit of 10000 messages"],"status":0,"request":"…"}`
//!    with `X-Limit-App-Limit`, `X-Limit-App-Remaining: 0` and `X-Limit-App-Reset` and no
//!    `Retry-After` (F: the trace in github.com/Tautulli/Tautulli/issues/396). The quota
//!    renews at the reset (the stand-in's "month" lasts 30 days from its start unless set).
//! 5. `user`: a user or group key, or up to 50 of them separated by commas (D: `#identifiers`),
//!    each one this stand-in knows ([`Service::add_user`]), else **400** `{"user":"invalid",
//!    "errors":["user identifier is not a valid user, group, or subscribed user key, see
//!    https://pushover.net/api#identifiers"],…}` (F: the text in
//!    github.com/guanguans/notify and other clients' fixtures).
//! 6. `message` is required and not blank, else **400** `{"message":"cannot be blank",
//!    "errors":["message cannot be blank"],…}` (D: required; U: the text).
//! 7. Size limits (D: `#limits`): `message` at most 1,024 characters, `title` 250, `url` 512,
//!    `url_title` 100, counted in Unicode characters ("4-byte UTF-8 characters"), HTML tags
//!    and entities included (U: the docs do not say; the stricter count). Over a limit is
//!    **400** `{"message":"is too long","errors":["message cannot be longer than 1024
//!    characters"],…}` (U: the docs do not say whether Pushover refuses or cuts a longer
//!    value; the stand-in refuses, the stricter reading).
//! 8. `priority` is an integer from -2 to 2 (D: `#priority`), else **400**
//!    `{"priority":"invalid","errors":["priority is invalid"],…}` (U: the text). Priority 2
//!    needs `retry` of at least 30 seconds and `expire` of at most 10,800 (D: `#priority`):
//!    missing, **400** `{"retry":"must be supplied with priority of 2",…}`; too small, **400**
//!    `{"retry":"is too small, must be at least 30 seconds","errors":["retry is invalid"],…}`
//!    (F: github.com/grafana/alerting/pull/233); `expire` likewise (U: the texts; that PR
//!    notes Pushover may take a longer `expire`, the stand-in keeps the documented 10,800).
//! 9. `html=1` and `monospace=1` together: **400** `{"monospace":"invalid","errors":
//!    ["monospace may not be used if html is used"],…}` (D: `#html`, "monospace may not be
//!    used if html is used, and vice versa"; U: the text).
//! 10. Success: **200** `{"status":1,"request":"…"}` (D: `#response`), with `"receipt"` for
//!     priority 2 (D: `#receipt`). Every answer to a messages call, errors included, carries
//!     `X-Limit-App-Limit`, `X-Limit-App-Remaining` and `X-Limit-App-Reset` (D: `#limits`);
//!     each accepted message counts once per recipient key (D: `#limits`: a group counts once
//!     per member, which the stand-in cannot know).
//!
//! A test may force the next answers ([`Service::force`]); they get the `X-Limit-App-*`
//! headers too unless they carry their own, and [`quota_exceeded`] builds Pushover's 429
//! whose reset is written when it is sent.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::{Reply, Request, Responder};

/// The only route.
pub const PATH: &str = "/1/messages.json";
/// The message limit (characters).
pub const MESSAGE_LIMIT: usize = 1024;
/// The title limit (characters).
pub const TITLE_LIMIT: usize = 250;
/// The supplementary URL's limit (characters).
pub const URL_LIMIT: usize = 512;
/// The URL title's limit (characters).
pub const URL_TITLE_LIMIT: usize = 100;
/// The free monthly messages of an application.
pub const MONTHLY_LIMIT: u64 = 10_000;
/// The most recipient keys in one `user` parameter.
pub const MAX_USERS: usize = 50;
/// The stand-in's month.
const MONTH_SECS: u64 = 30 * 86_400;

/// Now, in Unix seconds (fractional).
fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Whether `key` has the shape of a Pushover token or key: 30 of `A-Za-z0-9`.
pub fn valid_key(key: &str) -> bool {
    key.len() == 30 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A request identifier like Pushover's (a UUID's shape).
fn request_id(n: u64) -> String {
    format!("5042853c-402d-4a18-abcb-{n:012x}")
}

/// Pushover's error body: `status: 0`, the `request`, the `errors` and the invalid parameter
/// with what is wrong with it (D: `#response`).
pub fn error(status: u16, param: Option<(&str, &str)>, errors: &[&str]) -> Reply {
    let mut body = Map::new();
    if let Some((name, why)) = param {
        body.insert(name.to_owned(), Value::from(why));
    }
    body.insert("errors".into(), json!(errors));
    body.insert("status".into(), Value::from(0));
    body.insert("request".into(), Value::from(request_id(0xe)));
    Reply::json(status, &Value::Object(body))
}

/// The 400 for a bad application token.
pub fn token_invalid() -> Reply {
    error(400, Some(("token", "invalid")), &["application token is invalid, see https://pushover.net/api"])
}

/// The 400 for a user or group key Pushover does not know.
pub fn user_invalid() -> Reply {
    error(
        400,
        Some(("user", "invalid")),
        &["user identifier is not a valid user, group, or subscribed user key, see https://pushover.net/api#identifiers"],
    )
}

/// Marks a reset time to be written when the reply is sent: `+N`, N seconds after it.
const RELATIVE: char = '+';

/// Pushover's 429 for a used-up monthly quota of `limit` messages. Its `X-Limit-App-Reset`
/// is written by [`Service`] when the reply is sent: the Unix time `resets_in` seconds
/// later, rounded up to a whole second (a test cannot know when its request will come).
pub fn quota_exceeded(limit: u64, resets_in: u64) -> Reply {
    error(429, Some(("token", "invalid")), &[&format!("application has exceeded current limit of {limit} messages")])
        .header("X-Limit-App-Limit", &limit.to_string())
        .header("X-Limit-App-Remaining", "0")
        .header("X-Limit-App-Reset", &format!("{RELATIVE}{resets_in}"))
}

/// The application's monthly quota.
#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: u64,
    used: u64,
    /// Unix time of the next reset.
    reset: u64,
}

impl Quota {
    /// Renews the quota if its month is over.
    fn roll(&mut self, now: f64) {
        while now >= self.reset as f64 {
            self.used = 0;
            self.reset += MONTH_SECS;
        }
    }

    fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// A message Pushover accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// When it arrived.
    pub at: Instant,
    /// Every parameter as sent (decoded), `token` and `user` included.
    pub params: BTreeMap<String, String>,
}

impl Accepted {
    /// A parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The parameters as a JSON object of strings.
    pub fn to_json(&self) -> Value {
        Value::Object(self.params.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
    }
}

/// A Pushover application with its token, the user and group keys it may send to, and its
/// monthly quota.
pub struct Service {
    token: String,
    users: Mutex<Vec<String>>,
    quota: Mutex<Quota>,
    forced: Mutex<VecDeque<Reply>>,
    accepted: Mutex<Vec<Accepted>>,
    ids: AtomicU64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("accepted", &self.accepted.lock().expect("accepted").len()).finish()
    }
}

impl Service {
    /// An application with `token` that may send to `user` (a user or group key), with the
    /// free quota of 10,000 messages a month, none used.
    pub fn new(token: &str, user: &str) -> Arc<Self> {
        let reset = now_secs() as u64 + MONTH_SECS;
        Arc::new(Self {
            token: token.to_owned(),
            users: Mutex::new(vec![user.to_owned()]),
            quota: Mutex::new(Quota { limit: MONTHLY_LIMIT, used: 0, reset }),
            forced: Mutex::default(),
            accepted: Mutex::default(),
            ids: AtomicU64::new(1),
        })
    }

    /// Another user or group key the application may send to.
    pub fn add_user(&self, user: &str) {
        self.users.lock().expect("users").push(user.to_owned());
    }

    /// Sets the quota: `limit` messages a month, `used` of them used, renewed at the Unix
    /// time `reset`.
    pub fn set_quota(&self, limit: u64, used: u64, reset: u64) {
        *self.quota.lock().expect("quota") = Quota { limit, used, reset };
    }

    /// The next requests get these replies, in order, whatever they are (and are not
    /// accepted).
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.forced.lock().expect("forced").extend(replies);
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<Accepted> {
        self.accepted.lock().expect("accepted").clone()
    }

    /// The messages accepted so far (their parameters as JSON), with when each arrived.
    pub fn accepted_at(&self) -> Vec<(Instant, Value)> {
        self.messages().iter().map(|m| (m.at, m.to_json())).collect()
    }

    /// The messages accepted so far, their parameters as JSON.
    pub fn accepted(&self) -> Vec<Value> {
        self.messages().iter().map(Accepted::to_json).collect()
    }

    /// The responder for a `StandIn`.
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    /// Pushover's answer to `req`, with the `X-Limit-App-*` headers.
    pub fn answer(&self, req: &Request) -> Reply {
        let now = now_secs();
        let forced = self.forced.lock().expect("forced").pop_front();
        let reply = match forced {
            Some(reply) => reply,
            None => self.decide(req, now),
        };
        self.with_limits(reply, now)
    }

    /// Adds the quota headers a reply does not carry, and writes a relative reset.
    fn with_limits(&self, mut reply: Reply, now: f64) -> Reply {
        let quota = {
            let mut q = self.quota.lock().expect("quota");
            q.roll(now);
            *q
        };
        for (name, value) in &mut reply.headers {
            if name.eq_ignore_ascii_case("x-limit-app-reset") {
                if let Some(secs) = value.strip_prefix(RELATIVE).and_then(|s| s.parse::<u64>().ok()) {
                    *value = (now.ceil() as u64 + secs).to_string();
                }
            }
        }
        let has = |reply: &Reply, name: &str| reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has(&reply, "x-limit-app-limit") {
            reply = reply.header("X-Limit-App-Limit", &quota.limit.to_string());
        }
        if !has(&reply, "x-limit-app-remaining") {
            reply = reply.header("X-Limit-App-Remaining", &quota.remaining().to_string());
        }
        if !has(&reply, "x-limit-app-reset") {
            reply = reply.header("X-Limit-App-Reset", &quota.reset.to_string());
        }
        reply
    }

    /// The rules, in order (see the module's documentation).
    fn decide(&self, req: &Request, now: f64) -> Reply {
        if req.method != "POST" || req.route() != PATH {
            return error(404, None, &["resource not found"]);
        }
        let params = parameters(req);
        let get = |name: &str| params.get(name).map(String::as_str);
        if get("token") != Some(self.token.as_str()) || !valid_key(&self.token) {
            return token_invalid();
        }
        {
            let mut quota = self.quota.lock().expect("quota");
            quota.roll(now);
            if quota.remaining() == 0 {
                let limit = quota.limit;
                return error(
                    429,
                    Some(("token", "invalid")),
                    &[&format!("application has exceeded current limit of {limit} messages")],
                );
            }
        }
        let keys: Vec<&str> = get("user").unwrap_or("").split(',').collect();
        let known = self.users.lock().expect("users").clone();
        if keys.len() > MAX_USERS || !keys.iter().all(|k| valid_key(k) && known.iter().any(|u| u == k)) {
            return user_invalid();
        }
        let message = get("message").unwrap_or("");
        if message.trim().is_empty() {
            return error(400, Some(("message", "cannot be blank")), &["message cannot be blank"]);
        }
        for (name, limit) in
            [("message", MESSAGE_LIMIT), ("title", TITLE_LIMIT), ("url", URL_LIMIT), ("url_title", URL_TITLE_LIMIT)]
        {
            if get(name).is_some_and(|v| v.chars().count() > limit) {
                return error(
                    400,
                    Some((name, "is too long")),
                    &[&format!("{name} cannot be longer than {limit} characters")],
                );
            }
        }
        let priority = match get("priority").map(str::trim) {
            None | Some("") => 0,
            Some(p) => match p.parse::<i64>() {
                Ok(p @ -2..=2) => p,
                _ => return error(400, Some(("priority", "invalid")), &["priority is invalid"]),
            },
        };
        if priority == 2 {
            if let Some(refusal) = emergency(get("retry"), get("expire")) {
                return refusal;
            }
        }
        if get("html") == Some("1") && get("monospace") == Some("1") {
            return error(400, Some(("monospace", "invalid")), &["monospace may not be used if html is used"]);
        }
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        {
            let mut quota = self.quota.lock().expect("quota");
            quota.used += keys.len() as u64;
        }
        self.accepted.lock().expect("accepted").push(Accepted { at: Instant::now(), params });
        let mut body = json!({"status": 1, "request": request_id(n)});
        if priority == 2 {
            body["receipt"] = Value::from(format!("rcpt{n:026}"));
        }
        Reply::json(200, &body)
    }
}

/// The checks of an emergency-priority message's `retry` and `expire`.
fn emergency(retry: Option<&str>, expire: Option<&str>) -> Option<Reply> {
    let number = |v: Option<&str>| v.map(|v| v.trim().parse::<i64>().ok());
    match number(retry) {
        None => {
            return Some(error(
                400,
                Some(("retry", "must be supplied with priority of 2")),
                &["retry must be supplied with priority of 2"],
            ))
        }
        Some(Some(r)) if r >= 30 => {}
        Some(_) => {
            return Some(error(
                400,
                Some(("retry", "is too small, must be at least 30 seconds")),
                &["retry is invalid"],
            ))
        }
    }
    match number(expire) {
        None => Some(error(
            400,
            Some(("expire", "must be supplied with priority of 2")),
            &["expire must be supplied with priority of 2"],
        )),
        Some(Some(e)) if (1..=10_800).contains(&e) => None,
        Some(_) => {
            Some(error(400, Some(("expire", "is too large, must be at most 10800 seconds")), &["expire is invalid"]))
        }
    }
}

/// The request's parameters, from a form or JSON body as its `Content-Type` says (the query
/// string is never read).
fn parameters(req: &Request) -> BTreeMap<String, String> {
    let kind = req.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match kind.as_str() {
        "application/x-www-form-urlencoded" => crate::form(&req.body).into_iter().collect(),
        "application/json" => match serde_json::from_str::<Value>(&req.body) {
            Ok(Value::Object(o)) => o
                .into_iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => u8::from(b).to_string(),
                        _ => return None,
                    };
                    Some((k, v))
                })
                .collect(),
            _ => BTreeMap::new(),
        },
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
    const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

    fn post(body: &str) -> Request {
        Request {
            at: Instant::now(),
            method: "POST".into(),
            path: PATH.into(),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body: body.into(),
            authorization: None,
        }
    }

    fn ok(extra: &str) -> String {
        format!("token={TOKEN}&user={USER}&message=hi{extra}")
    }

    /// The status and the invalid parameter.
    fn verdict(r: &Reply) -> (u16, String) {
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let param =
            ["token", "user", "message", "title", "url", "url_title", "priority", "retry", "expire", "monospace"]
                .into_iter()
                .find(|p| v.get(*p).is_some())
                .unwrap_or("");
        (r.status, param.to_owned())
    }

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[test]
    fn follows_the_contract() {
        let s = Service::new(TOKEN, USER);
        let r = s.answer(&post(&ok("&title=t&priority=-1")));
        assert_eq!(verdict(&r), (200, String::new()));
        assert_eq!(header(&r, "X-Limit-App-Remaining"), Some("9999"));
        assert_eq!(s.messages()[0].get("priority"), Some("-1"));
        let long = |n: usize| "é".repeat(n);
        let cases: Vec<(String, (u16, &str))> = vec![
            (format!("token=x&user={USER}&message=hi"), (400, "token")),
            (format!("user={USER}&message=hi"), (400, "token")),
            (format!("token={TOKEN}&user=uQiRzpo4DXghDmr9QzzfQu27cmVRsX&message=hi"), (400, "user")),
            (format!("token={TOKEN}&user={USER}&message=+"), (400, "message")),
            (format!("token={TOKEN}&user={USER}"), (400, "message")),
            (format!("token={TOKEN}&user={USER}&message={}", long(1025)), (400, "message")),
            (ok(&format!("&title={}", long(251))), (400, "title")),
            (ok(&format!("&url=https://x/{}", "p".repeat(503))), (400, "url")),
            (ok(&format!("&url_title={}", long(101))), (400, "url_title")),
            (ok("&priority=3"), (400, "priority")),
            (ok("&priority=high"), (400, "priority")),
            (ok("&priority=2"), (400, "retry")),
            (ok("&priority=2&retry=29&expire=60"), (400, "retry")),
            (ok("&priority=2&retry=30"), (400, "expire")),
            (ok("&priority=2&retry=30&expire=10801"), (400, "expire")),
            (ok("&html=1&monospace=1"), (400, "monospace")),
        ];
        for (body, (status, param)) in cases {
            assert_eq!(verdict(&s.answer(&post(&body))), (status, param.to_owned()), "{body:.80}");
        }
        // At the limits, and a priority 2 with its receipt.
        let r = s.answer(&post(&format!("token={TOKEN}&user={USER}&message={}&title={}", long(1024), long(250))));
        assert_eq!(r.status, 200, "{}", r.body);
        let r = s.answer(&post(&ok("&priority=2&retry=30&expire=10800")));
        assert!(r.body.contains("\"receipt\""), "{}", r.body);
        // JSON is read as well; the query string never.
        let mut json_req = post(&json!({"token": TOKEN, "user": USER, "message": "j", "priority": 1}).to_string());
        json_req.headers = vec![("content-type".into(), "application/json".into())];
        assert_eq!(s.answer(&json_req).status, 200);
        let mut query = post("message=hi");
        query.path = format!("{PATH}?token={TOKEN}&user={USER}");
        assert_eq!(verdict(&s.answer(&query)), (400, "token".into()));
        let mut get = post(&ok(""));
        get.method = "GET".into();
        assert_eq!(s.answer(&get).status, 404);
        // Errors carry the quota headers too.
        let r = s.answer(&post("token=x"));
        assert!(header(&r, "X-Limit-App-Reset").is_some() && header(&r, "X-Limit-App-Limit") == Some("10000"));
        assert_eq!(s.messages().len(), 4);
    }

    #[test]
    fn the_monthly_quota_runs_out_and_renews() {
        let s = Service::new(TOKEN, USER);
        let reset = now_secs() as u64 + 3600;
        s.set_quota(2, 1, reset);
        assert_eq!(header(&s.answer(&post(&ok(""))), "X-Limit-App-Remaining"), Some("0"));
        let r = s.answer(&post(&ok("")));
        assert_eq!(verdict(&r), (429, "token".into()));
        assert!(r.body.contains("application has exceeded current limit of 2 messages"), "{}", r.body);
        assert_eq!(header(&r, "X-Limit-App-Reset"), Some(reset.to_string().as_str()));
        assert!(!r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")));
        // A new month.
        s.set_quota(2, 2, now_secs() as u64);
        assert_eq!(s.answer(&post(&ok(""))).status, 200);
        // A forced 429 gets its reset when sent.
        s.force([quota_exceeded(10_000, 2)]);
        let before = now_secs();
        let r = s.answer(&post(&ok("")));
        let at: f64 = header(&r, "X-Limit-App-Reset").unwrap().parse().unwrap();
        assert!(at >= before + 2.0 && at <= before + 4.0, "{at} {before}");
        assert_eq!(r.status, 429);
    }
}
