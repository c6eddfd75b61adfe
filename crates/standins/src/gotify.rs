//! A Gotify server (gotify/server) as its documentation and source describe it, for the
//! Gotify sink's tests and the router's end-to-end tests: [`Service`] checks what Gotify
//! checks, in Gotify's order, and answers with Gotify's own status codes and error bodies.
//!
//! Sources (D: the docs at https://gotify.net/docs/ and the API docs at
//! https://gotify.github.io/api-docs/; S: github.com/gotify/server's source):
//!
//! 0. A reverse proxy in front may cap the request body (nginx's `client_max_body_size`
//!    defaults to 1 MB; Gotify itself documents no limit, S: api/limits.go has 64 MB): with
//!    [`Service::set_body_limit`], a larger body is **413** with nginx's HTML page, before
//!    Gotify sees it. A proxy may also strip a path prefix ([`Service::with_prefix`],
//!    D: https://gotify.net/docs/nginx).
//! 1. Routes (S: router/router.go; D: https://gotify.net/docs/pushmsg): `POST /message`
//!    creates a message. `/message/` is redirected to `/message` (gin's RedirectTrailingSlash:
//!    **307**); any other path is **404** `{"error":"Not Found","errorCode":404,
//!    "errorDescription":"page not found"}` (S: error/notfound.go).
//! 2. Authentication (S: auth/authentication.go `RequireApplicationToken` and
//!    `readTokenFromRequest`): the token is the query's `token` if there is one, else the
//!    `X-Gotify-Key` header, else `Authorization: Bearer …`. An application token passes.
//!    Anything else (no token, an unknown one, a *client* token) is **401** `you need to
//!    provide a valid access token or user credentials to access this api`, unless the
//!    request carries a user's valid Basic credentials: those are **403** `you are not allowed
//!    to access this api` (S: gotify/server's auth/authentication_test.go: a client token on
//!    an application endpoint is 401, a user's Basic auth 403;
//!    https://github.com/gotify/server/issues/520).
//! 3. The body (S: api/message.go `CreateMessage` → gin's `ctx.Bind`, model/message.go): with
//!    `Content-Type: application/json` it is decoded as JSON into `{message, title, priority,
//!    extras}`; a body that is not JSON, not an object, or has a field of the wrong type
//!    (`priority` an integer, `extras` an object) is **400** with the decoder's text; with a
//!    form content type the fields come from the form and `extras` is ignored (`form:"-"`);
//!    any other content type binds as a form and finds no message. Then `message` is
//!    required and must not be empty (`binding:"required"`): **400** `Field 'message' is
//!    required` (S: error/handler.go; https://github.com/rcourtman/Pulse/issues/342).
//! 4. The documented shape of `extras` (D: https://gotify.net/docs/msgextras): keys are
//!    `<top-namespace>::[<sub-namespace>::]<action>`; `client::display` is
//!    `{"contentType": "text/plain" | "text/markdown"}`; `client::notification` is
//!    `{"click": {"url": "…"}, "bigImageUrl": "…"}`. Gotify stores any object, but clients
//!    read these keys, so a body that breaks their shape is refused here with a 400 in
//!    Gotify's error shape whose description starts with `stand-in:` (it is not Gotify's
//!    own text: it marks a broken contract that a real server would store silently).
//! 5. Success (S: `toExternalMessage`; D: the API docs' `Message`): **200** with the stored
//!    message `{"id","appid","message","title","priority","extras","date"}`. An empty or
//!    blank title becomes the application's name, a missing priority the application's
//!    default priority (D: https://gotify.net/docs/priority); `extras` is left out when empty;
//!    `date` is RFC 3339 with fractional seconds.
//!
//! Every error is `{"error": <HTTP status text>, "errorCode": <status>, "errorDescription":
//! <text>}` (S: error/handler.go `writeError`). Gotify has no rate limit (an open feature
//! request: https://github.com/gotify/server/issues/919), so this stand-in has none either;
//! a proxy's 429 is forced with [`Service::force`] and [`proxy_rate_limited`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::{Reply, Request, Responder};

/// The application's name: the title of a message sent without one.
pub const APP_NAME: &str = "Fail2Ban";
/// The application's id (`appid` in stored messages).
pub const APP_ID: u64 = 5;
/// The application's default priority: the priority of a message sent without one.
pub const APP_DEFAULT_PRIORITY: i64 = 0;

/// The 401 text (S: auth/authentication.go `abort401`).
pub const UNAUTHORIZED: &str = "you need to provide a valid access token or user credentials to access this api";
/// The 403 text (S: auth/authentication.go `abort403`).
pub const FORBIDDEN: &str = "you are not allowed to access this api";
/// The 400 text for a missing or empty message (S: error/handler.go).
pub const MESSAGE_REQUIRED: &str = "Field 'message' is required";

/// Gotify's error body for `status` (S: error/handler.go `writeError`).
pub fn error(status: u16, description: &str) -> Reply {
    let text = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = json!({"error": text, "errorCode": status, "errorDescription": description});
    Reply::new(status, &body.to_string()).header("Content-Type", "application/json; charset=utf-8")
}

/// The 401 of a missing, unknown or client token.
pub fn unauthorized() -> Reply {
    error(401, UNAUTHORIZED)
}

/// The 403 of a user's login on the application endpoint.
pub fn forbidden() -> Reply {
    error(403, FORBIDDEN)
}

/// nginx's 413 page, as a proxy whose `client_max_body_size` the body passed answers.
pub fn proxy_too_large() -> Reply {
    Reply::new(
        413,
        "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    )
    .header("Content-Type", "text/html")
}

/// A rate-limiting proxy's 429 (nginx's `limit_req` with status 429), asking to wait `secs`.
/// Gotify itself never sends one.
pub fn proxy_rate_limited(secs: u64) -> Reply {
    Reply::new(
        429,
        "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    )
    .header("Content-Type", "text/html")
    .header("Retry-After", &secs.to_string())
}

/// A Gotify server with one application. Make one with [`Service::new`], serve it with
/// `StandIn::start(service.responder())`, and post to `standin.url(&service.path())`.
pub struct Service {
    token: String,
    prefix: String,
    client_tokens: Mutex<Vec<String>>,
    users: Mutex<Vec<(String, String)>>,
    body_limit: Mutex<Option<usize>>,
    forced: Mutex<VecDeque<Reply>>,
    accepted: Mutex<Vec<(Instant, Value)>>,
    ids: AtomicU64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("prefix", &self.prefix).field("accepted", &self.accepted().len()).finish()
    }
}

impl Service {
    /// A server at the root of its host whose one application has the token `token`.
    pub fn new(token: &str) -> Arc<Self> {
        Self::with_prefix(token, "")
    }

    /// A server behind a reverse proxy that serves it under `prefix` (`/gotify`).
    pub fn with_prefix(token: &str, prefix: &str) -> Arc<Self> {
        Arc::new(Self {
            token: token.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
            client_tokens: Mutex::default(),
            users: Mutex::default(),
            body_limit: Mutex::new(None),
            forced: Mutex::default(),
            accepted: Mutex::default(),
            ids: AtomicU64::new(0),
        })
    }

    /// The path messages are posted to: the prefix and `/message`.
    pub fn path(&self) -> String {
        format!("{}/message", self.prefix)
    }

    /// The base URL a sink is configured with: the stand-in's address and the prefix.
    pub fn base_url(&self, server: &crate::StandIn) -> String {
        server.url(&self.prefix)
    }

    /// Adds a client's token (a phone's): Gotify knows it, but it cannot send messages (401).
    pub fn add_client_token(&self, token: &str) {
        self.client_tokens.lock().expect("clients").push(token.to_owned());
    }

    /// Adds a user's login (Basic auth): valid, but not for sending messages (403).
    pub fn add_user(&self, name: &str, password: &str) {
        self.users.lock().expect("users").push((name.to_owned(), password.to_owned()));
    }

    /// Puts a proxy with `client_max_body_size` = `bytes` in front (`None`: no limit).
    pub fn set_body_limit(&self, bytes: Option<usize>) {
        *self.body_limit.lock().expect("limit") = bytes;
    }

    /// The next requests get these replies, in order, whatever they are (and store nothing).
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.forced.lock().expect("forced").extend(replies);
    }

    /// The messages stored so far, as Gotify returned them, with when each arrived.
    pub fn accepted_at(&self) -> Vec<(Instant, Value)> {
        self.accepted.lock().expect("accepted").clone()
    }

    /// The messages stored so far, in order (Gotify's message objects).
    pub fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().expect("accepted").iter().map(|(_, v)| v.clone()).collect()
    }

    /// The responder for a `StandIn`.
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    /// Gotify's answer to `req` (rules 0 to 5 of the module docs, in that order).
    pub fn answer(&self, req: &Request) -> Reply {
        if let Some(reply) = self.forced.lock().expect("forced").pop_front() {
            return reply;
        }
        if self.body_limit.lock().expect("limit").is_some_and(|limit| req.body.len() > limit) {
            return proxy_too_large();
        }
        let route = req.route();
        let path = self.path();
        if req.method == "POST" && route == format!("{path}/") {
            return Reply::new(307, "").header("Location", &path);
        }
        if req.method != "POST" || route != path {
            return error(404, "page not found");
        }
        if let Err(reply) = self.authenticate(req) {
            return reply;
        }
        let message = match bind(req) {
            Ok(m) => m,
            Err(reply) => return reply,
        };
        self.store(message)
    }

    fn authenticate(&self, req: &Request) -> Result<(), Reply> {
        let bearer = req.header("authorization").and_then(|v| {
            let prefix = v.get(..7)?;
            prefix.eq_ignore_ascii_case("Bearer ").then(|| v[7..].to_owned())
        });
        let token = req
            .query("token")
            .filter(|t| !t.is_empty())
            .or_else(|| req.header("x-gotify-key").filter(|t| !t.is_empty()).map(str::to_owned))
            .or(bearer.filter(|t| !t.is_empty()));
        if token.as_deref() == Some(self.token.as_str()) {
            return Ok(());
        }
        let user = req.authorization.as_deref().and_then(basic);
        if user.is_some_and(|u| self.users.lock().expect("users").contains(&u)) {
            return Err(forbidden());
        }
        Err(unauthorized())
    }

    fn store(&self, m: Message) -> Reply {
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let mut o = Map::new();
        o.insert("id".into(), Value::from(id));
        o.insert("appid".into(), Value::from(APP_ID));
        o.insert("message".into(), Value::from(m.message));
        let title = if m.title.trim().is_empty() { APP_NAME.to_owned() } else { m.title };
        o.insert("title".into(), Value::from(title));
        o.insert("priority".into(), Value::from(m.priority.unwrap_or(APP_DEFAULT_PRIORITY)));
        if let Some(extras) = m.extras.filter(|e| !e.is_empty()) {
            o.insert("extras".into(), Value::Object(extras));
        }
        o.insert("date".into(), Value::from(rfc3339_now()));
        let stored = Value::Object(o);
        self.accepted.lock().expect("accepted").push((Instant::now(), stored.clone()));
        Reply::json(200, &stored)
    }
}

/// A message as `CreateMessage` binds it.
#[derive(Debug, Default)]
struct Message {
    message: String,
    title: String,
    priority: Option<i64>,
    extras: Option<Map<String, Value>>,
}

/// gin's `ctx.Bind` for a POST (rule 3) and the documented extras (rule 4).
fn bind(req: &Request) -> Result<Message, Reply> {
    let content_type = req.header("content-type").unwrap_or("").to_ascii_lowercase();
    let m = if content_type.starts_with("application/json") {
        from_json(&req.body)?
    } else {
        // A form (extras ignored); any other content type binds as a form too, and an
        // unparsed body yields no fields.
        let fields =
            if content_type.starts_with("application/x-www-form-urlencoded") { crate::form(&req.body) } else { vec![] };
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let priority = match get("priority").filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(p.parse::<i64>().map_err(|_| {
                error(400, &format!("strconv.ParseInt: parsing {}: invalid syntax", Value::from(p.as_str())))
            })?),
        };
        Message {
            message: get("message").unwrap_or_default(),
            title: get("title").unwrap_or_default(),
            priority,
            extras: None,
        }
    };
    if m.message.is_empty() {
        return Err(error(400, MESSAGE_REQUIRED));
    }
    if let Some(extras) = &m.extras {
        check_extras(extras)
            .map_err(|why| error(400, &format!("stand-in: {why} (D: https://gotify.net/docs/msgextras)")))?;
    }
    Ok(m)
}

/// Go's `encoding/json` into `model.MessageExternal`: the decoder's words for each mistake.
fn from_json(body: &str) -> Result<Message, Reply> {
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) if body.trim().is_empty() => return Err(error(400, "EOF")),
        Err(_) => return Err(error(400, "invalid character in JSON body")),
    };
    let go_type = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let Value::Object(o) = value else {
        return Err(error(
            400,
            &format!("json: cannot unmarshal {} into Go value of type model.MessageExternal", go_type(&value)),
        ));
    };
    let wrong = |field: &str, v: &Value, ty: &str| {
        let what = match v {
            Value::Number(n) => format!("number {n}"),
            other => go_type(other).to_owned(),
        };
        error(400, &format!("json: cannot unmarshal {what} into Go struct field MessageExternal.{field} of type {ty}"))
    };
    let mut m = Message::default();
    // Go matches JSON keys to fields without regard to case.
    for (key, v) in &o {
        match key.to_ascii_lowercase().as_str() {
            "message" | "title" => {
                let s = match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => return Err(wrong(key, other, "string")),
                };
                if key.eq_ignore_ascii_case("message") {
                    m.message = s;
                } else {
                    m.title = s;
                }
            }
            "priority" => match v {
                Value::Null => {}
                Value::Number(n) if n.as_i64().is_some() => m.priority = n.as_i64(),
                other => return Err(wrong("priority", other, "int")),
            },
            "extras" => match v {
                Value::Null => {}
                Value::Object(e) => m.extras = Some(e.clone()),
                other => return Err(wrong("extras", other, "map[string]interface {}")),
            },
            // id, appid and date are read-only: set by the server whatever was sent.
            _ => {}
        }
    }
    Ok(m)
}

/// The documented extras (rule 4); `Err` says what is wrong.
fn check_extras(extras: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in extras {
        let parts: Vec<&str> = key.split("::").collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("extras key `{key}` is not <top-namespace>::[<sub-namespace>::]<action>"));
        }
        match key.as_str() {
            "client::display" => {
                let Some(o) = value.as_object() else { return Err("`client::display` must be an object".into()) };
                for (k, v) in o {
                    match (k.as_str(), v.as_str()) {
                        ("contentType", Some("text/plain" | "text/markdown")) => {}
                        ("contentType", _) => {
                            return Err(format!(
                                "`client::display.contentType` = {v} is not text/plain or text/markdown"
                            ))
                        }
                        _ => return Err(format!("`client::display` has no key `{k}`")),
                    }
                }
            }
            "client::notification" => {
                let Some(o) = value.as_object() else {
                    return Err("`client::notification` must be an object".into());
                };
                for (k, v) in o {
                    let ok = match k.as_str() {
                        "click" => v.get("url").is_some_and(Value::is_string),
                        "bigImageUrl" => v.is_string(),
                        _ => false,
                    };
                    if !ok {
                        return Err(format!("`client::notification.{k}` = {v} is not as documented"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `Basic base64(user:pass)` taken apart.
fn basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Standard base64 with padding (what HTTP Basic uses).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in s.trim_end_matches('=').bytes() {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == b)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Now as RFC 3339 in UTC with nanoseconds, as Go's `time.Time` marshals it.
fn rfc3339_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, body: &str, headers: &[(&str, &str)]) -> Request {
        let headers: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())).collect();
        let authorization = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
        Request {
            at: Instant::now(),
            method: "POST".into(),
            path: path.into(),
            headers,
            body: body.into(),
            authorization,
        }
    }

    fn said(r: &Reply) -> (u16, String) {
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        (r.status, v["errorDescription"].as_str().unwrap_or("").to_owned())
    }

    const JSON: (&str, &str) = ("Content-Type", "application/json");
    const KEY: (&str, &str) = ("X-Gotify-Key", "AgoodToken1234");

    #[test]
    fn follows_the_contract() {
        let s = Service::with_prefix("AgoodToken1234", "/gotify");
        s.add_client_token("CclientToken12");
        s.add_user("admin", "pw");
        let ok =
            r#"{"message":"hi","title":"t","priority":8,"extras":{"client::display":{"contentType":"text/markdown"}}}"#;
        let r = s.answer(&post("/gotify/message", ok, &[JSON, KEY]));
        assert_eq!(r.status, 200, "{}", r.body);
        let stored: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (stored["id"].as_u64(), stored["appid"].as_u64(), stored["priority"].as_i64()),
            (Some(1), Some(5), Some(8))
        );
        assert_eq!(stored["extras"]["client::display"]["contentType"], "text/markdown");
        let date = stored["date"].as_str().unwrap();
        assert!(date.len() == 30 && date.as_bytes()[10] == b'T' && date.ends_with('Z'), "{date}");
        // The other ways to give the token.
        assert_eq!(s.answer(&post("/gotify/message?token=AgoodToken1234", ok, &[JSON])).status, 200);
        assert_eq!(
            s.answer(&post("/gotify/message", ok, &[JSON, ("Authorization", "bearer AgoodToken1234")])).status,
            200
        );
        // The query wins over the header.
        assert_eq!(said(&s.answer(&post("/gotify/message?token=Abad", ok, &[JSON, KEY]))), (401, UNAUTHORIZED.into()));
        assert_eq!(said(&s.answer(&post("/gotify/message", ok, &[JSON]))), (401, UNAUTHORIZED.into()));
        let client = ("X-Gotify-Key", "CclientToken12");
        assert_eq!(said(&s.answer(&post("/gotify/message", ok, &[JSON, client]))), (401, UNAUTHORIZED.into()));
        // "admin:pw" and "admin:px".
        let user = ("Authorization", "Basic YWRtaW46cHc=");
        assert_eq!(said(&s.answer(&post("/gotify/message", ok, &[JSON, user]))), (403, FORBIDDEN.into()));
        let wrong = ("Authorization", "Basic YWRtaW46cHg=");
        assert_eq!(said(&s.answer(&post("/gotify/message", ok, &[JSON, wrong]))).0, 401);
        // Routes: no prefix, another path, a trailing slash.
        assert_eq!(said(&s.answer(&post("/message", ok, &[JSON, KEY]))), (404, "page not found".into()));
        assert_eq!(s.answer(&post("/gotify/message/", ok, &[JSON, KEY])).status, 307);
        let cases = [
            (r#"{"title":"t"}"#, MESSAGE_REQUIRED.to_owned()),
            (r#"{"message":""}"#, MESSAGE_REQUIRED.to_owned()),
            ("", "EOF".to_owned()),
            ("[1]", "json: cannot unmarshal array into Go value of type model.MessageExternal".to_owned()),
            (
                r#"{"message":"m","priority":"8"}"#,
                "json: cannot unmarshal string into Go struct field MessageExternal.priority of type int".to_owned(),
            ),
            (
                r#"{"message":"m","priority":8.5}"#,
                "json: cannot unmarshal number 8.5 into Go struct field MessageExternal.priority of type int".to_owned(),
            ),
            (
                r#"{"message":"m","extras":[]}"#,
                "json: cannot unmarshal array into Go struct field MessageExternal.extras of type map[string]interface {}"
                    .to_owned(),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(said(&s.answer(&post("/gotify/message", body, &[JSON, KEY]))), (400, want), "{body}");
        }
        for extras in [
            r#"{"display":{}}"#,
            r#"{"client::display":{"contentType":"markdown"}}"#,
            r#"{"client::display":{"content_type":"text/plain"}}"#,
            r#"{"client::notification":{"click":"https://x"}}"#,
        ] {
            let body = format!(r#"{{"message":"m","extras":{extras}}}"#);
            let (status, text) = said(&s.answer(&post("/gotify/message", &body, &[JSON, KEY])));
            assert!(status == 400 && text.starts_with("stand-in: "), "{extras}: {text}");
        }
        // A form: extras ignored; no content type: no message.
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        assert_eq!(s.answer(&post("/gotify/message", "message=hi&priority=5", &[form, KEY])).status, 200);
        assert_eq!(said(&s.answer(&post("/gotify/message", ok, &[KEY]))), (400, MESSAGE_REQUIRED.into()));
        // Blank title and no priority: the application's name and default priority.
        let r = s.answer(&post("/gotify/message", r#"{"message":"m","title":"  "}"#, &[JSON, KEY]));
        let stored: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((stored["title"].as_str(), stored["priority"].as_i64()), (Some(APP_NAME), Some(0)));
        assert!(stored.get("extras").is_none());
        assert_eq!(s.accepted().len(), 5);
        // The proxy's body cap.
        s.set_body_limit(Some(100));
        let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(100));
        let r = s.answer(&post("/gotify/message", &big, &[JSON, KEY]));
        assert!(r.status == 413 && r.body.contains("nginx"), "{}", r.body);
        s.force([proxy_rate_limited(2)]);
        assert_eq!(s.answer(&post("/gotify/message", ok, &[JSON, KEY])).status, 429);
    }
}
