//! A stand-in for Prometheus Alertmanager's API v2 alert endpoint, `POST /api/v2/alerts`,
//! answering as Alertmanager does.
//!
//! What it follows, with where each rule comes from:
//!
//! - The request: a JSON list of postable alerts, each `{labels, annotations, startsAt,
//!   endsAt, generatorURL}`; `labels` required (a label set is an object of strings), the
//!   times `format: date-time` (RFC 3339), `generatorURL` `format: uri`; the answer to a good
//!   post is 200 with an empty body, to a bad one 400 with a string.
//!   <https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml> (`postAlerts`,
//!   `postableAlerts`, `postableAlert`, `alert`, `labelSet`, `BadRequest`).
//! - What the handler does with them (`postAlertsHandler` in
//!   <https://github.com/prometheus/alertmanager/blob/main/api/v2/api.go>): no `startsAt` is
//!   now (or `endsAt` when only that is given), no `endsAt` is now + `resolve_timeout`; labels
//!   with an empty value are removed; each alert is validated and the valid ones are **kept
//!   even when others fail** ("make a best effort to insert all alerts that are valid"); the
//!   failures are joined with `"; "` into one 400 whose body is that text as a JSON string.
//! - The validation (`Alert.Validate` in
//!   <https://github.com/prometheus/common/blob/main/model/alert.go>, used by Alertmanager's
//!   `types.Alert`): "start time missing", "start time must be before end time", "invalid
//!   label set: invalid name \"…\"" (names `^[a-zA-Z_][a-zA-Z0-9_]*$`), "at least one label
//!   pair required", "invalid annotations: invalid name \"…\"".
//! - The shapes of go-openapi's own errors, as Debian's Alertmanager 0.25
//!   (`prometheus-alertmanager`) answered them on loopback: a body that does not parse (not
//!   JSON, not a list, a label that is not a string, a time that is not one) is 400
//!   `{"code":400,"message":"parsing alerts body from \"\" failed, because …"}`; a missing
//!   `labels` is 422 `{"code":602,"message":"0.labels in body is required"}`; an empty body 422
//!   `{"code":602,"message":"alerts in body is required"}`; a `generatorURL` that is not a URI
//!   422 `{"code":601,…}`; another content type 415 `{"code":415,"message":"unsupported media
//!   type \"…\", only [application/json] are allowed"}`; another path 404 `{"code":404,
//!   "message":"path … was not found"}`; another method 405 with `Allow: GET,POST`.
//! - Credentials: Alertmanager takes basic auth through its web config file (the Prometheus
//!   exporter toolkit), and a bearer token through a proxy in front of it; a request without
//!   the right `Authorization` gets what the toolkit answers, 401 `Unauthorized` with
//!   `WWW-Authenticate: Basic`
//!   (<https://github.com/prometheus/exporter-toolkit/blob/master/web/handler.go>).
//!
//! The times are checked as strict RFC 3339 (Alertmanager also takes a few looser forms). The
//! API documents no limit on the number or size of alerts and no rate limit, so there are none
//! here. A test can force the next replies ([`Service::force`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::{Reply, Request, Responder};

/// The only path alerts are posted to.
pub const ALERTS_PATH: &str = "/api/v2/alerts";

/// A loopback Alertmanager that records the alerts it takes.
pub struct Service {
    /// The `Authorization` header every request must carry, if any.
    authorization: Option<String>,
    /// Every alert taken, in order, as posted.
    alerts: Mutex<Vec<Value>>,
    /// Each post that reached the handler (whatever came of it): its alert list.
    posts: Mutex<Vec<Value>>,
    /// Replies a test forced, answered before anything else is looked at.
    forced: Mutex<VecDeque<Reply>>,
}

impl Service {
    /// A stand-in that wants `authorization` (the whole header value, `Basic …` or
    /// `Bearer …`) on every request, or nothing.
    pub fn new(authorization: Option<&str>) -> Arc<Self> {
        Arc::new(Self {
            authorization: authorization.map(str::to_owned),
            alerts: Mutex::default(),
            posts: Mutex::default(),
            forced: Mutex::default(),
        })
    }

    /// The responder for a [`crate::StandIn`].
    pub fn responder(self: &Arc<Self>) -> Responder {
        let this = Arc::clone(self);
        Arc::new(move |req: &Request, _| this.answer(req))
    }

    /// Every alert Alertmanager would have stored, in the order posted.
    pub fn accepted(&self) -> Vec<Value> {
        self.alerts.lock().expect("alerts").clone()
    }

    /// The alert list of each post the handler parsed, accepted or not, in order.
    pub fn posts(&self) -> Vec<Value> {
        self.posts.lock().expect("posts").clone()
    }

    /// The next requests get these replies, whatever they hold.
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.forced.lock().expect("forced").extend(replies);
    }

    fn answer(&self, req: &Request) -> Reply {
        if let Some(reply) = self.forced.lock().expect("forced").pop_front() {
            return reply;
        }
        if self.authorization.is_some() && req.authorization != self.authorization {
            return Reply::new(401, "Unauthorized\n")
                .header("Content-Type", "text/plain; charset=utf-8")
                .header("WWW-Authenticate", "Basic");
        }
        if req.route() != ALERTS_PATH {
            return openapi_error(404, 404, &format!("path {} was not found", req.route()));
        }
        match req.method.as_str() {
            "POST" => {}
            "GET" => return Reply::json(200, &Value::Array(self.accepted())),
            other => {
                return openapi_error(405, 405, &format!("method {other} is not allowed, but [GET,POST] are"))
                    .header("Allow", "GET,POST")
            }
        }
        let content_type = req.header("content-type").unwrap_or("application/x-www-form-urlencoded");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return openapi_error(
                415,
                415,
                &format!("unsupported media type {content_type:?}, only [application/json] are allowed"),
            );
        }
        if req.body.trim().is_empty() {
            return openapi_error(422, 602, "alerts in body is required");
        }
        let parsed: Value = match serde_json::from_str(&req.body) {
            Ok(v) => v,
            Err(e) => return parse_error(&e.to_string()),
        };
        let list = match parsed {
            // Alertmanager answers `null` with 200, like an empty list.
            Value::Null => Vec::new(),
            Value::Array(list) => list,
            other => {
                return parse_error(&format!(
                    "json: cannot unmarshal {} into Go value of type models.PostableAlerts",
                    kind(&other)
                ))
            }
        };
        self.posts.lock().expect("posts").push(Value::Array(list.clone()));
        // The schema first: the whole post is refused when one alert does not fit it. Go
        // decodes the whole body before it checks what is required.
        for alert in &list {
            if let Err(reply) = decode(alert) {
                return reply;
            }
        }
        for (i, alert) in list.iter().enumerate() {
            if let Err(reply) = required(i, alert) {
                return reply;
            }
        }
        // Then each alert is validated; the valid ones are kept even when others are not.
        let mut errors = Vec::new();
        for alert in &list {
            match validate(alert) {
                Ok(()) => self.alerts.lock().expect("alerts").push(alert.clone()),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Reply::new(200, "")
        } else {
            Reply::json(400, &Value::String(errors.join("; ")))
        }
    }
}

/// go-openapi's error shape.
fn openapi_error(status: u16, code: u32, message: &str) -> Reply {
    Reply::json(status, &json!({ "code": code, "message": message }))
}

/// A body go-openapi could not read into the model.
fn parse_error(why: &str) -> Reply {
    openapi_error(400, 400, &format!("parsing alerts body from \"\" failed, because {why}"))
}

/// How Go names a JSON value's type in its unmarshal errors.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether an alert decodes into the model: an object whose `labels` and `annotations` are
/// objects of strings and whose times are RFC 3339 strings.
fn decode(alert: &Value) -> Result<(), Reply> {
    let Value::Object(obj) = alert else {
        return Err(parse_error(&format!(
            "json: cannot unmarshal {} into Go value of type models.PostableAlert",
            kind(alert)
        )));
    };
    for (field, what) in [("labels", "Alert.labels"), ("annotations", "PostableAlert.annotations")] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(set)) => {
                if let Some((_, v)) = set.iter().find(|(_, v)| !v.is_string()) {
                    return Err(parse_error(&format!(
                        "json: cannot unmarshal {} into Go struct field {what} of type string",
                        kind(v)
                    )));
                }
            }
            Some(other) => {
                return Err(parse_error(&format!(
                    "json: cannot unmarshal {} into Go struct field {what} of type models.LabelSet",
                    kind(other)
                )))
            }
        }
    }
    for field in ["startsAt", "endsAt"] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if rfc3339(t).is_some() => {}
            Some(Value::String(t)) => return Err(parse_error(&format!("parsing time {t:?} as RFC 3339"))),
            Some(other) => {
                return Err(parse_error(&format!(
                    "json: cannot unmarshal {} into Go struct field PostableAlert.{field} of type string",
                    kind(other)
                )))
            }
        }
    }
    Ok(())
}

/// What the schema requires of alert `i` once decoded: `labels`, and a URI as `generatorURL`.
fn required(i: usize, alert: &Value) -> Result<(), Reply> {
    if !matches!(alert.get("labels"), Some(Value::Object(_))) {
        return Err(openapi_error(422, 602, &format!("{i}.labels in body is required")));
    }
    match alert.get("generatorURL") {
        None | Some(Value::Null) => {}
        Some(Value::String(u)) if u.contains("://") && !u.contains(char::is_whitespace) => {}
        Some(other) => {
            return Err(openapi_error(422, 601, &format!("{i}.generatorURL in body must be of type uri: {other}")))
        }
    }
    Ok(())
}

/// Alertmanager's validation of one alert that fits the schema.
fn validate(alert: &Value) -> Result<(), String> {
    let empty = Map::new();
    let labels = alert["labels"].as_object().unwrap_or(&empty);
    let annotations = alert.get("annotations").and_then(Value::as_object).unwrap_or(&empty);
    let time = |field: &str| alert.get(field).and_then(Value::as_str).and_then(rfc3339);
    // A missing start is filled in by the handler, so "start time missing" cannot happen here.
    if let (Some(start), Some(end)) = (time("startsAt"), time("endsAt")) {
        if end < start {
            return Err("start time must be before end time".to_owned());
        }
    }
    // Labels with an empty value are removed before the label set is validated.
    let labels: Vec<(&String, &Value)> = labels.iter().filter(|(_, v)| v.as_str() != Some("")).collect();
    if let Some((name, _)) = labels.iter().find(|(name, _)| !label_name(name)) {
        return Err(format!("invalid label set: invalid name {name:?}"));
    }
    if labels.is_empty() {
        return Err("at least one label pair required".to_owned());
    }
    if let Some(name) = annotations.keys().find(|name| !label_name(name)) {
        return Err(format!("invalid annotations: invalid name {name:?}"));
    }
    Ok(())
}

/// Prometheus's label names: `^[a-zA-Z_][a-zA-Z0-9_]*$`.
pub fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An RFC 3339 date-time (`2026-11-25T12:03:07Z`, `…07.123+02:00`) as nanoseconds since the
/// epoch, or `None` when it is not one.
pub fn rfc3339(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month[month as usize - 1] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut nanos: i128 = 0;
    if sep(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let frac = &text[start..at.min(start + 9)];
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let offset = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() && sep(at + 3, b":") => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000 * 1_000_000_000));
        assert_eq!(rfc3339("2023-11-14T23:13:20.5+01:00"), Some(1_700_000_000 * 1_000_000_000 + 500_000_000));
        assert_eq!(rfc3339("2024-02-29T00:00:00.000Z").map(|n| n / 1_000_000_000), Some(1_709_164_800));
        for bad in [
            "yesterday",
            "2026-11-26",
            "2026-11-26T04:00:00",
            "2026-11-26 04:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T04:00:00.Z",
            "2026-11-26T04:00:00+0100",
            "2026-11-26T04:00:00Zjunk",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    fn post(service: &Service, content_type: Option<&str>, auth: Option<&str>, body: &str) -> Reply {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type".to_owned(), ct.to_owned()));
        }
        let req = Request {
            at: std::time::Instant::now(),
            method: "POST".into(),
            path: ALERTS_PATH.into(),
            headers,
            body: body.into(),
            authorization: auth.map(str::to_owned),
        };
        service.answer(&req)
    }

    /// The answers Debian's Alertmanager 0.25 gave to the same posts.
    #[test]
    fn answers_like_alertmanager() {
        let s = Service::new(None);
        let json = Some("application/json");
        let cases: &[(Option<&str>, &str, u16, &str)] = &[
            (json, r#"[{"labels":{"alertname":"x"},"startsAt":"2026-11-26T04:00:00.000Z"}]"#, 200, ""),
            (json, "[]", 200, ""),
            (json, "null", 200, ""),
            (json, r#"[{"annotations":{"a":"b"}}]"#, 422, r#"{"code":602,"message":"0.labels in body is required"}"#),
            (json, "", 422, r#"{"code":602,"message":"alerts in body is required"}"#),
            (json, r#"[{"labels":{}}]"#, 400, r#""at least one label pair required""#),
            (json, r#"[{"labels":{"a":""}}]"#, 400, r#""at least one label pair required""#),
            (json, r#"[{"labels":{"a-b":"x"}}]"#, 400, r#""invalid label set: invalid name \"a-b\"""#),
            (
                json,
                r#"[{"labels":{"a":"x"},"startsAt":"2026-11-26T05:00:00Z","endsAt":"2026-11-26T04:00:00Z"}]"#,
                400,
                r#""start time must be before end time""#,
            ),
            (
                json,
                r#"[{"labels":{"a":"x"},"annotations":{"bad-name":"v"}}]"#,
                400,
                r#""invalid annotations: invalid name \"bad-name\"""#,
            ),
            (
                json,
                r#"[{"labels":{"alertname":"good"}},{"labels":{"a-b":"x"}},{"labels":{}}]"#,
                400,
                r#""invalid label set: invalid name \"a-b\"; at least one label pair required""#,
            ),
        ];
        for (ct, body, status, answer) in cases {
            let r = post(&s, *ct, None, body);
            assert_eq!((r.status, r.body.as_str()), (*status, *answer), "{body}");
        }
        // The valid alerts of a refused post were kept, as Alertmanager keeps them.
        let accepted = s.accepted();
        let names: Vec<&str> = accepted.iter().filter_map(|a| a["labels"]["alertname"].as_str()).collect();
        assert_eq!(names, ["x", "good"]);
        for (body, start) in [
            (r#"{"labels":{"a":"x"}}"#, "parsing alerts body from \"\" failed, because json: cannot unmarshal object"),
            ("hello", "parsing alerts body from \"\" failed, because "),
            (r#"[{"labels":{"a":1}}]"#, "parsing alerts body from \"\" failed, because json: cannot unmarshal number into Go struct field Alert.labels"),
            (r#"[{"labels":{"a":"x"},"startsAt":"yesterday"}]"#, "parsing alerts body from \"\" failed, because parsing time"),
        ] {
            let r = post(&s, json, None, body);
            assert_eq!(r.status, 400, "{body}");
            let answer: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(answer["code"], 400);
            assert!(answer["message"].as_str().unwrap().starts_with(start), "{}", r.body);
        }
        let r = post(&s, None, None, "[]");
        assert_eq!(r.status, 415);
        assert!(r.body.contains("only [application/json] are allowed"), "{}", r.body);
        assert_eq!(post(&s, Some("application/json; charset=utf-8"), None, "[]").status, 200);
        let r = post(&s, json, None, r#"[{"labels":{"a":"x"},"generatorURL":"not a url"}]"#);
        assert_eq!(
            (r.status, r.body.starts_with(r#"{"code":601,"message":"0.generatorURL in body must be of type uri"#)),
            (422, true)
        );
        // Credentials, when it wants them.
        let locked = Service::new(Some("Bearer t"));
        let r = post(&locked, json, None, "[]");
        assert_eq!((r.status, r.body.as_str()), (401, "Unauthorized\n"));
        assert!(r.headers.contains(&("WWW-Authenticate", "Basic".to_owned())));
        assert_eq!(post(&locked, json, Some("Bearer t"), "[]").status, 200);
        // Forced replies come first.
        locked.force([Reply::new(503, "down")]);
        assert_eq!(post(&locked, json, Some("Bearer t"), "[]").status, 503);
        assert_eq!(post(&locked, json, Some("Bearer t"), "[]").status, 200);
    }

    #[test]
    fn label_names() {
        for good in ["alertname", "_x", "ip", "a1_B"] {
            assert!(label_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a b", "é"] {
            assert!(!label_name(bad), "{bad}");
        }
    }
}
