//! Microsoft Teams through a Workflows (Power Automate) webhook: the trigger "When a Teams
//! webhook request is received" of the template "Post to a channel when a webhook request is
//! received", as Microsoft documents it and as others observed it (Microsoft documents almost
//! none of the trigger's error bodies).
//!
//! Sources, cited by the rules below:
//! - AIW: <https://github.com/MicrosoftDocs/msteams-docs/blob/main/msteams-platform/webhooks-and-connectors/how-to/add-incoming-webhook.md>
//! - REQ: <https://learn.microsoft.com/azure/connectors/connectors-native-reqres> (the Request
//!   trigger; Power Automate's HTTP triggers run on the same engine)
//! - PAL: <https://learn.microsoft.com/power-automate/limits-and-config>
//! - TEAMS: <https://learn.microsoft.com/connectors/teams/> ("Known issues and limitations")
//! - CARD: <https://adaptivecards.io/explorer/TextBlock.html>,
//!   <https://learn.microsoft.com/en-us/adaptive-cards/schema-explorer/fact-set>
//! - [obs]: error bodies quoted in public issues: prometheus-msteams/prometheus-msteams#352
//!   (InvalidRequestContent), MicrosoftDocs/azure-docs#60706 (DirectApiAuthorizationRequired's
//!   message), Azure/logicapps#1441 and microsoft/AzUrlShortener#297
//!   (TriggerRequestMethodNotValid), secureCodeBox/secureCodeBox#2664 (202 Accepted).
//!
//! What it enforces, in this order:
//! 1. Replies a test forced ([`Service::force`]) come first, whatever the request.
//! 2. Method POST, else 400 `TriggerRequestMethodNotValid` [obs: the body; its status is not
//!    quoted, 400 like the trigger's other request errors].
//! 3. The workflow's path, else 404 `WorkflowNotFound` [obs].
//! 4. The query's `sp`, `sv` and `sig`: one missing is 401 `DirectApiAuthorizationRequired`,
//!    a wrong `sig` 401 `DirectApiInvalidAuthorizationSignature` [obs; the URL carries its
//!    SAS signature: power-automate-docs regenerate-sas-key.md].
//! 5. A flow turned off, suspended or deleted ([`Service::set_state`]) is 400
//!    `WorkflowTriggerIsNotEnabled`, a deleted flow too, not 404 [obs].
//! 6. The rate: more than 4 requests in one second is 429 `WorkflowRequestsThrottled` with
//!    `Retry-After` [AIW: "If more than four requests are made in a second, the client
//!    connection is throttled until the window refreshes"; the body's shape obs; Microsoft
//!    does not document `Retry-After` here, the stand-in sends one so that tests can see it
//!    obeyed]. Throttled requests do not count towards the window.
//! 7. The trigger's message limit, 100 MB, else 413 [PAL].
//! 8. `Content-Type: application/json`, else 400 `InvalidRequestContent`; a body that is
//!    not JSON likewise [obs].
//! 9. The envelope: an object with `type: "message"` and an `attachments` list of objects with
//!    `contentType: "application/vnd.microsoft.card.adaptive"` and an object `content`, else
//!    400 `TriggerInputSchemaMismatch` [obs; schema validation answers 400: REQ].
//! 10. Then 202 Accepted with an empty body [REQ: without a Response action the trigger
//!     "immediately returns the 202 ACCEPTED"], and the flow posts each attachment's card
//!     later. What fails then never reaches the caller: the message is recorded as
//!     [`Dropped`] instead of accepted, with the reason the flow's run history would show:
//!     a body over 28 KB ("Request Entity too large" [TEAMS, AIW]; measured here as 28,000
//!     bytes of the request's JSON, the stricter reading), or a card that is not an Adaptive
//!     Card of version 1.0 to 1.4 whose `body` holds TextBlocks with a string `text` and
//!     FactSets whose facts have string `title` and `value` [CARD], with `fontType` needing
//!     1.2 [CARD].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{Reply, Request, Responder, StandIn};

/// The workflow id in the stand-in's path (the part of the URL a typo would break).
pub const WORKFLOW_ID: &str = "0f8fad5bd9cb469fa16570867728950e";

/// The most a message may be before the flow fails to post it, in bytes of the request's JSON.
pub const MAX_MESSAGE: usize = 28_000;

/// The trigger's own limit on a request body (PAL: "Message size 100 MB").
pub const MAX_REQUEST: usize = 100 * 1024 * 1024;

/// Requests per [`RATE_WINDOW`] before the trigger throttles (AIW).
pub const RATE_LIMIT: usize = 4;

/// The window of [`RATE_LIMIT`].
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A message the trigger accepted (202) but the flow could not post.
#[derive(Debug, Clone)]
pub struct Dropped {
    /// What the flow's run history would say.
    pub reason: String,
    /// The request's body.
    pub body: String,
}

#[derive(Default)]
struct State {
    accepted: Vec<(Instant, Value)>,
    dropped: Vec<Dropped>,
    forced: VecDeque<Reply>,
    /// `Disabled`, `Suspended` or `Deleted`; `None` while the flow is on.
    off: Option<String>,
    /// When the requests that counted towards the rate came.
    recent: VecDeque<Instant>,
}

/// One Workflows webhook: its URL's signature, what it accepted, what it dropped.
pub struct Service {
    sig: String,
    state: Mutex<State>,
}

impl Service {
    /// A flow that is on and expects `sig` as its URL's signature.
    pub fn new(sig: &str) -> Arc<Self> {
        Arc::new(Self { sig: sig.to_owned(), state: Mutex::default() })
    }

    /// The trigger's path (the new Power Platform form of the URL).
    pub fn path() -> String {
        format!("/powerautomate/automations/direct/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke")
    }

    /// The query string of the URL Teams shows, with `sig`.
    pub fn query(sig: &str) -> String {
        format!("api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}")
    }

    /// The webhook's full URL on `standin`: what an administrator copies from Teams.
    pub fn url(&self, standin: &StandIn) -> String {
        standin.url(&format!("{}?{}", Self::path(), Self::query(&self.sig)))
    }

    /// Starts a stand-in server answering as this service.
    pub fn start(self: &Arc<Self>) -> StandIn {
        StandIn::start(self.responder())
    }

    /// The responder for a [`StandIn`].
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    /// The bodies the flow posted, in order (each a whole request body).
    pub fn accepted(&self) -> Vec<Value> {
        self.lock().accepted.iter().map(|(_, body)| body.clone()).collect()
    }

    /// The bodies the flow posted with when each arrived.
    pub fn accepted_at(&self) -> Vec<(Instant, Value)> {
        self.lock().accepted.clone()
    }

    /// The messages accepted with 202 that the flow then failed to post.
    pub fn dropped(&self) -> Vec<Dropped> {
        self.lock().dropped.clone()
    }

    /// The next requests get these replies, in order, before any check.
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().forced.extend(replies);
    }

    /// Turns the flow off (`Some("Disabled")`, `Some("Suspended")`, `Some("Deleted")`) or on.
    pub fn set_state(&self, off: Option<&str>) {
        self.lock().off = off.map(str::to_owned);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reply to one request, following the rules in the module's docs.
    pub fn answer(&self, req: &Request) -> Reply {
        let mut state = self.lock();
        if let Some(reply) = state.forced.pop_front() {
            return reply;
        }
        if req.method != "POST" {
            let message =
                format!("The HTTP method for this request is not valid: expected 'POST' and actual '{}'.", req.method);
            return error(400, "TriggerRequestMethodNotValid", &message);
        }
        if req.route() != Self::path() {
            let id = req.route().split('/').skip_while(|s| *s != "workflows").nth(1).unwrap_or("");
            return error(404, "WorkflowNotFound", &format!("The workflow '{id}' could not be found."));
        }
        if req.query("sp").is_none() || req.query("sv").is_none() || req.query("sig").is_none() {
            return error(
                401,
                "DirectApiAuthorizationRequired",
                "The request must be authenticated only by Shared Access scheme.",
            );
        }
        if req.query("sig").as_deref() != Some(self.sig.as_str()) {
            return error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authorization signature is not valid.",
            );
        }
        if let Some(off) = &state.off {
            let message = format!(
                "Could not execute workflow '{WORKFLOW_ID}' trigger 'manual' with state '{off}': trigger is not enabled."
            );
            return error(400, "WorkflowTriggerIsNotEnabled", &message);
        }
        let now = req.at;
        while state.recent.front().is_some_and(|&t| now.saturating_duration_since(t) >= RATE_WINDOW) {
            state.recent.pop_front();
        }
        if state.recent.len() >= RATE_LIMIT {
            let message = format!(
                "Number of requests for workflow '{WORKFLOW_ID}' exceeded the limit of '{RATE_LIMIT}' over time window of '00:00:01'."
            );
            return error(429, "WorkflowRequestsThrottled", &message).header("Retry-After", "1");
        }
        state.recent.push_back(now);
        if req.body.len() > MAX_REQUEST {
            return Reply::new(413, "");
        }
        let content_type = req.header("content-type").unwrap_or("application/octet-stream");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            let message = format!(
                "The input body for trigger 'manual' of type 'Request' must be of type JSON, but was of type '{media}'."
            );
            return error(400, "InvalidRequestContent", &message);
        }
        let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
            return error(
                400,
                "InvalidRequestContent",
                "The input body for trigger 'manual' of type 'Request' must be of type JSON, but was of type 'String'.",
            );
        };
        if let Err(why) = envelope(&body) {
            let message = format!(
                "The input body for trigger 'manual' of type 'Request' did not match its schema definition: {why}"
            );
            return error(400, "TriggerInputSchemaMismatch", &message);
        }
        let cards = body["attachments"].as_array().map(Vec::as_slice).unwrap_or_default();
        let problem = if req.body.len() > MAX_MESSAGE {
            Some(format!("Request Entity too large ({} bytes)", req.body.len()))
        } else {
            cards.iter().find_map(|a| card(&a["content"]).err())
        };
        match problem {
            Some(reason) => state.dropped.push(Dropped { reason, body: req.body.clone() }),
            None => state.accepted.push((Instant::now(), body)),
        }
        Reply::new(202, "")
    }
}

/// The trigger's error body, `{"error":{"code":…,"message":…}}`.
pub fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": { "code": code, "message": message } }))
}

/// The envelope the template reads: `type: message` and Adaptive Card attachments.
fn envelope(body: &Value) -> Result<(), String> {
    if !body.is_object() {
        return Err("Expected Object but got something else.".to_owned());
    }
    if body["type"] != "message" {
        return Err("property 'type' must be 'message'".to_owned());
    }
    let Some(attachments) = body["attachments"].as_array().filter(|a| !a.is_empty()) else {
        return Err("property 'attachments' must be a non-empty array".to_owned());
    };
    for a in attachments {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            return Err("property 'contentType' must be 'application/vnd.microsoft.card.adaptive'".to_owned());
        }
        if !a["content"].is_object() {
            return Err("property 'content' must be an object".to_owned());
        }
    }
    Ok(())
}

/// An Adaptive Card the flow can post: version 1.0–1.4, TextBlocks and FactSets with their
/// required string properties (the elements the sink uses).
fn card(content: &Value) -> Result<(), String> {
    if content["type"] != "AdaptiveCard" {
        return Err("Property 'type' must be 'AdaptiveCard'".to_owned());
    }
    let minor = match content["version"].as_str() {
        Some("1.0") => 0,
        Some("1.1") => 1,
        Some("1.2") => 2,
        Some("1.3") => 3,
        Some("1.4") => 4,
        _ => return Err("the card's 'version' must be \"1.0\" to \"1.4\"".to_owned()),
    };
    let Some(body) = content["body"].as_array() else {
        return Err("the card's 'body' must be an array".to_owned());
    };
    for element in body {
        match element["type"].as_str() {
            Some("TextBlock") => {
                if !element["text"].is_string() {
                    return Err("a TextBlock's 'text' must be a string".to_owned());
                }
                if element.get("fontType").is_some() && minor < 2 {
                    return Err("'fontType' needs card version 1.2".to_owned());
                }
            }
            Some("FactSet") => {
                let Some(facts) = element["facts"].as_array() else {
                    return Err("a FactSet's 'facts' must be an array".to_owned());
                };
                if facts.iter().any(|f| !f["title"].is_string() || !f["value"].is_string()) {
                    return Err("a fact's 'title' and 'value' must be strings".to_owned());
                }
            }
            _ => return Err(format!("unexpected element {}", element["type"])),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(service: &Service, path_and_query: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type".to_owned(), ct.to_owned()));
        }
        let req = Request {
            at: Instant::now(),
            method: "POST".to_owned(),
            path: path_and_query.to_owned(),
            headers,
            body: body.to_owned(),
            authorization: None,
        };
        service.answer(&req)
    }

    fn message() -> String {
        json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null, "content": {"type": "AdaptiveCard", "version": "1.4", "body": [
                {"type": "TextBlock", "text": "x", "fontType": "Monospace"},
                {"type": "FactSet", "facts": [{"title": "a", "value": "b"}]}]}}]})
        .to_string()
    }

    fn code(reply: &Reply) -> String {
        serde_json::from_str::<Value>(&reply.body).unwrap()["error"]["code"].as_str().unwrap_or("").to_owned()
    }

    #[test]
    fn the_rules() {
        let s = Service::new("SIG");
        let good = format!("{}?{}", Service::path(), Service::query("SIG"));
        let json = Some("application/json");
        let r = post(&s, &good, json, &message());
        assert_eq!((r.status, r.body.as_str()), (202, ""));
        let r = post(&s, &good, Some("application/json; charset=utf-8"), &message());
        assert_eq!(r.status, 202);
        std::thread::sleep(RATE_WINDOW);
        let r = post(&s, &format!("{}?{}", Service::path(), Service::query("BAD")), json, &message());
        assert_eq!((r.status, code(&r)), (401, "DirectApiInvalidAuthorizationSignature".to_owned()));
        let r = post(&s, &Service::path(), json, &message());
        assert_eq!((r.status, code(&r)), (401, "DirectApiAuthorizationRequired".to_owned()));
        let r = post(&s, &good.replace(WORKFLOW_ID, "x"), json, &message());
        assert_eq!((r.status, code(&r)), (404, "WorkflowNotFound".to_owned()));
        let r = post(&s, &good, None, &message());
        assert_eq!((r.status, code(&r)), (400, "InvalidRequestContent".to_owned()));
        let r = post(&s, &good, json, "not json");
        assert_eq!((r.status, code(&r)), (400, "InvalidRequestContent".to_owned()));
        std::thread::sleep(RATE_WINDOW);
        let r = post(&s, &good, json, r#"{"type":"message"}"#);
        assert_eq!((r.status, code(&r)), (400, "TriggerInputSchemaMismatch".to_owned()));
        let r = post(&s, &good, json, r#""text""#);
        assert_eq!((r.status, code(&r)), (400, "TriggerInputSchemaMismatch".to_owned()));
        s.set_state(Some("Deleted"));
        let r = post(&s, &good, json, &message());
        assert_eq!((r.status, code(&r)), (400, "WorkflowTriggerIsNotEnabled".to_owned()));
        assert!(r.body.contains("with state 'Deleted'"), "{}", r.body);
        s.set_state(None);
        // Accepted, then dropped by the flow: too large, or not a card it can post.
        let big = message().replace("\"x\"", &format!("\"{}\"", "x".repeat(MAX_MESSAGE)));
        assert_eq!(post(&s, &good, json, &big).status, 202);
        let v13 = message().replace("1.4", "1.1");
        assert_eq!(post(&s, &good, json, &v13).status, 202);
        let dropped = s.dropped();
        assert_eq!(dropped.len(), 2);
        assert!(dropped[0].reason.starts_with("Request Entity too large"), "{dropped:?}");
        assert!(dropped[1].reason.contains("fontType"), "{dropped:?}");
        assert_eq!(s.accepted().len(), 2);
        s.force([Reply::new(503, "busy")]);
        assert_eq!(post(&s, &good, json, &message()).status, 503);
    }

    #[test]
    fn more_than_four_a_second_is_throttled() {
        let s = Service::new("SIG");
        let good = format!("{}?{}", Service::path(), Service::query("SIG"));
        let statuses: Vec<u16> = (0..6).map(|_| post(&s, &good, Some("application/json"), &message()).status).collect();
        assert_eq!(statuses, [202, 202, 202, 202, 429, 429]);
        let r = post(&s, &good, Some("application/json"), &message());
        assert_eq!(r.headers, [("Content-Type", "application/json".to_owned()), ("Retry-After", "1".to_owned())]);
        assert_eq!(code(&r), "WorkflowRequestsThrottled");
        std::thread::sleep(RATE_WINDOW);
        assert_eq!(post(&s, &good, Some("application/json"), &message()).status, 202);
        assert_eq!(s.accepted().len(), 5);
    }
}
