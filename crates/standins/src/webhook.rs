//! A generic webhook endpoint, for the `webhook` sink: there is no one service contract, so
//! this stand-in follows plain HTTP semantics (RFC 9110, https://www.rfc-editor.org/rfc/rfc9110)
//! the way the endpoints people point the sink at behave (an n8n Webhook node, a Home
//! Assistant webhook trigger, a Mattermost or Rocket.Chat incoming webhook):
//!
//! - one path (the URL's secret part): any other path is 404 (RFC 9110 §15.5.5);
//! - POST or PUT (Home Assistant takes both; n8n and Mattermost, POST): any other method is
//!   405 with `Allow: POST, PUT` (§15.5.6);
//! - an optional required header (n8n's Header Auth, a reverse proxy's bearer token): missing
//!   or wrong is 401 (§15.5.2) with `WWW-Authenticate: Bearer` for `Authorization`;
//! - a body sent as JSON (`application/json` or `…+json`) must parse: otherwise 400, as
//!   Mattermost and n8n refuse one; a body without a `Content-Type` is 415 (§15.5.16);
//! - then the reply the test scripted with [`Endpoint::force`], if any (any status, headers,
//!   body: 2xx, a 3xx redirect, 4xx, 5xx with `Retry-After`), else 200 `ok`.
//!
//! [`Endpoint::accepted`] holds the requests answered 2xx; the [`crate::StandIn`] logs every
//! request, accepted or not.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::{Reply, Request, Responder};

/// The endpoint: its path, the header it may require, what it accepted, and the replies a
/// test forced.
pub struct Endpoint {
    path: String,
    required: Option<(String, String)>,
    accepted: Mutex<Vec<Request>>,
    forced: Mutex<VecDeque<Reply>>,
}

impl Endpoint {
    /// An endpoint at `path` (like `/hooks/SECRET`) that needs no header.
    pub fn new(path: &str) -> Arc<Self> {
        Arc::new(Self { path: path.to_owned(), required: None, accepted: Mutex::default(), forced: Mutex::default() })
    }

    /// An endpoint at `path` that requires the header `name` to be exactly `value` (a bearer
    /// token: `requiring("/hook", "Authorization", "Bearer s3cr3t")`).
    pub fn requiring(path: &str, name: &str, value: &str) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_owned(),
            required: Some((name.to_owned(), value.to_owned())),
            accepted: Mutex::default(),
            forced: Mutex::default(),
        })
    }

    /// The replies the next requests that pass the checks get, in order.
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.forced.lock().expect("forced").extend(replies);
    }

    /// The requests answered 2xx, in order.
    pub fn accepted(&self) -> Vec<Request> {
        self.accepted.lock().expect("accepted").clone()
    }

    /// The bodies of the accepted requests as JSON (`Null` for one that is not JSON).
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.accepted().iter().map(Request::json).collect()
    }

    /// The responder for [`crate::StandIn::start`].
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    fn answer(&self, req: &Request) -> Reply {
        if req.route() != self.path {
            return Reply::new(404, "404 page not found").header("Content-Type", "text/plain");
        }
        if !matches!(req.method.as_str(), "POST" | "PUT") {
            return Reply::new(405, "405: Method Not Allowed").header("Allow", "POST, PUT");
        }
        if let Some((name, value)) = &self.required {
            if req.header(name) != Some(value.as_str()) {
                let reply =
                    Reply::json(401, &serde_json::json!({"code": 401, "message": "Authorization data is wrong!"}));
                return if name.eq_ignore_ascii_case("authorization") {
                    reply.header("WWW-Authenticate", "Bearer")
                } else {
                    reply
                };
            }
        }
        let Some(content_type) = req.header("content-type") else {
            return Reply::new(415, "415: Unsupported Media Type: no Content-Type");
        };
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if (essence.ends_with("/json") || essence.ends_with("+json"))
            && serde_json::from_str::<serde_json::Value>(&req.body).is_err()
        {
            return Reply::json(400, &serde_json::json!({"code": 400, "message": "Unable to parse the JSON body"}));
        }
        let reply = self.forced.lock().expect("forced").pop_front().unwrap_or_else(|| Reply::new(200, "ok"));
        if (200..300).contains(&reply.status) {
            self.accepted.lock().expect("accepted").push(req.clone());
        }
        reply
    }
}
