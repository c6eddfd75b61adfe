//! The Slack Web API sink: posts with `chat.postMessage` and a bot token, and converses: an
//! unban replies in its ban's thread, and a storm's digest is one message that `chat.update`
//! keeps up to date.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": …}` on failure, so the body is always
//! read: `ok:false` is an error with Slack's string (`channel_not_found`, `not_in_channel`,
//! `invalid_auth`, `missing_scope`, …), classified for the router. The token travels only in
//! the `Authorization: Bearer` header (marked sensitive) and never appears in errors, logs or
//! `Debug` output. The message layout is shared with the webhook sink
//! (`f2b_notify_slack::message`); this crate posts, replies and edits.
//!
//! **References.** A message this sink posted is `CHANNEL:TS` ([`MessageRef`]): the channel's
//! id as Slack answered it (a configured `#name` is resolved by Slack; `chat.update` accepts
//! only ids) and the message's `ts`.
//!
//! **Threads.** [`Sink::post`] with a reference sets `thread_ts` to the ban's `ts`, in the
//! configured channel, and only when that is the channel the ban was posted in: after the
//! config moved the sink to another channel, the ban's `ts` names nothing there, and Slack
//! accepts such a reply with `ok: true` but shows it nowhere (python-slack-sdk#840). The
//! channel's id is known from the config when it is an id, else from Slack's first answer;
//! until then (a worker that just started, a channel given by name) the reply is posted and
//! Slack's answer checked: a reply that landed in another channel than its ban's is posted
//! again on its own. Replies are never broadcast (`reply_broadcast` stays false): a reply
//! shown in the channel as well would bring back the noise threads take away; who wants
//! unbans in the channel sets `thread_replies = false`. A reply Slack refuses for the thread's
//! sake (`cannot_reply_to_message`, a locked thread, …) is posted on its own.
//!
//! **Edits.** [`Sink::post_digest`] with a reference edits that message with `chat.update`
//! (Tier 3, 50+ a minute; each edit is a message for the router's pacing) and returns the
//! same reference. An edit Slack refuses for that message's sake (`message_not_found`: it was
//! deleted; `cant_update_message`; `edit_window_closed`: the workspace limits edits; …) posts
//! the digest as a new message and returns that one. Every other error is classified as
//! usual.

mod answer;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, MessageRef, Renderer, Secret, SecretSource, Sink, SinkError,
    Templates,
};
use f2b_notify_http::{cleartext_warning, exchange, url_problem, Timeout};
use f2b_notify_slack::{build, build_alert, build_digest, classify_status, MessageOptions};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use answer::{Fields, Posted, Refused};

#[cfg(test)]
mod tests;

/// Slack's Web API, where `chat.postMessage` and `chat.update` live.
pub const DEFAULT_URL: &str = "https://slack.com/api/";

/// Refusals of a reply that are about the thread, not the message: posted on its own instead
/// (chat.postMessage's documented errors; `invalid_thread_ts` as Slack answers a malformed
/// one, `thread_not_found` as it names a missing parent elsewhere).
const THREAD_REFUSALS: &[&str] = &[
    "cannot_reply_to_message",
    "restricted_action_thread_locked",
    "restricted_action_non_threadable_channel",
    "invalid_thread_ts",
    "thread_not_found",
];

/// Refusals of an edit that are about that one message (chat.update's documented errors):
/// the digest is posted as a new message instead. `is_inactive` (an archived channel) is here
/// so that the new post says what is wrong in chat.postMessage's words (`is_archived`);
/// `update_failed` ("internal update failure") because a new message carries the same events.
const EDIT_REFUSALS: &[&str] = &[
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "block_mismatch",
    "is_inactive",
    "update_failed",
];

/// Configuration of a `type = "slack-api"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// the bot token (`xoxb-…`, scope `chat:write`), a secret: inline or
    /// `F2B_NOTIFY_SINKS__NAME__TOKEN`; or `token_file`, not both
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// a file holding the token (mode 0600; `check` warns when others can read it)
    pub token_file: Option<PathBuf>,
    /// required: the channel, a name (`#security`) or an id (`C0123456789`)
    pub channel: Option<String>,
    /// poster's name (needs the `chat:write.customize` scope)
    pub username: Option<String>,
    /// poster's emoji, like `:no_entry:` (needs `chat:write.customize`)
    pub icon_emoji: Option<String>,
    /// an unban replies in its ban's thread (default `true`); `false` posts it on its own in
    /// the channel, like every other event
    pub thread_replies: Option<bool>,
    /// the message text per event (minijinja)
    #[serde(default)]
    pub templates: Templates,
    /// seconds one request may take, default 5, at most 30
    pub timeout: Option<f64>,
    /// Web API base, default `https://slack.com/api/` (proxies, tests)
    pub url: Option<String>,
}

/// `token` is a secret: a value of the wrong type is an error naming the key, never the value.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// A built Web API sink.
#[derive(Debug)]
pub struct ApiSink {
    name: String,
    renderer: Renderer,
    options: MessageOptions,
    thread_replies: bool,
    api: WebApi,
    /// The configured channel's id: from the config when it is one, else from Slack's latest
    /// answer (a channel renamed or recreated under the same name gets its new id).
    channel_id: Mutex<Option<String>>,
}

/// The two Web API methods the sink calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    PostMessage,
    Update,
}

/// Calling the Web API with a bearer token.
#[derive(Debug)]
pub struct WebApi {
    source: SecretSource,
    auth: HeaderValue,
    post_message: reqwest::Url,
    update: reqwest::Url,
    client: reqwest::Client,
    timeout: Timeout,
    /// `check`'s warning when the API base is plain http:// to another machine.
    cleartext: Option<String>,
}

/// Builds the sink: reads the token, checks the channel and URL, compiles the templates.
pub fn new(name: impl Into<String>, config: Config) -> Result<ApiSink, ConfigError> {
    let source = SecretSource::from_pair("token", config.token, config.token_file)?;
    let token = source.load("token")?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| ConfigError::new("`token` holds characters that cannot go in an HTTP header"))?;
    // Keeps the value out of reqwest's and hyper's debug output.
    auth.set_sensitive(true);
    let channel = config
        .channel
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ConfigError::new("missing `channel` (a channel name like #security, or an id)"))?;
    let base = config.url.as_deref().unwrap_or(DEFAULT_URL);
    let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
    let endpoint = |method: &str| {
        reqwest::Url::parse(&base)
            .and_then(|b| b.join(method))
            .map_err(|e| ConfigError::new(format!("`url` = {base:?} is not a valid URL: {}", url_problem(&base, &e))))
    };
    let (post_message, update) = (endpoint("chat.postMessage")?, endpoint("chat.update")?);
    if !matches!(post_message.scheme(), "https" | "http") {
        return Err(ConfigError::new(format!(
            "`url` = {base:?} must be an https:// URL, not {}://",
            post_message.scheme()
        )));
    }
    let cleartext = cleartext_warning(&post_message, "url", "the bot token");
    let timeout = Timeout::from_config(config.timeout)?;
    let api =
        WebApi { source, auth, post_message, update, client: f2b_notify_http::client(timeout)?, timeout, cleartext };
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    // A conversation id is answered back as it was posted to; a user id (`U…`, a direct
    // message) is answered as the `D…` of the conversation, so it is learnt like a name.
    // A name in capitals (`GENERAL`) is no id: ids hold digits.
    let channel_id = Some(channel.clone())
        .filter(|c| answer::channel_id(c) && c.starts_with(['C', 'G', 'D']) && c.bytes().any(|b| b.is_ascii_digit()));
    let options = MessageOptions { channel: Some(channel), username: config.username, icon_emoji: config.icon_emoji };
    Ok(ApiSink {
        name: name.into(),
        renderer,
        options,
        thread_replies: config.thread_replies.unwrap_or(true),
        api,
        channel_id: Mutex::new(channel_id),
    })
}

impl ApiSink {
    /// The transport, for its own tests.
    pub fn api(&self) -> &WebApi {
        &self.api
    }

    /// The configured channel's id, if known yet.
    fn channel_id(&self) -> Option<String> {
        self.channel_id.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Posts `body` as a new message in the configured channel; the message, if Slack's
    /// answer names it sanely.
    async fn post_new(&self, body: &Value) -> Result<Option<Posted>, SinkError> {
        let fields = self.api.call(Method::PostMessage, body).await.map_err(|r| r.error)?;
        Ok(self.learn(&fields))
    }

    /// The message an answer to chat.postMessage names; its channel is the configured one's id.
    fn learn(&self, fields: &Fields) -> Option<Posted> {
        let posted = fields.message()?;
        *self.channel_id.lock().unwrap_or_else(PoisonError::into_inner) = Some(posted.channel.clone());
        Some(posted)
    }

    /// Posts `body` in the thread of `parent`, as the module docs say; else on its own.
    async fn reply(&self, body: &Value, parent: &Posted) -> Result<Option<Posted>, SinkError> {
        let known = self.channel_id();
        if known.as_deref().is_some_and(|id| id != parent.channel) {
            return self.post_new(body).await;
        }
        let mut reply = body.clone();
        if let Some(obj) = reply.as_object_mut() {
            obj.insert("thread_ts".into(), Value::from(parent.ts.as_str()));
        }
        match self.api.call(Method::PostMessage, &reply).await {
            Ok(fields) => {
                let posted = self.learn(&fields);
                // Unchecked until now: a reply in another channel than its ban is shown nowhere.
                if known.is_none() && posted.as_ref().is_some_and(|p| p.channel != parent.channel) {
                    return self.post_new(body).await;
                }
                Ok(posted)
            }
            Err(refused) if refused.is(THREAD_REFUSALS) => self.post_new(body).await,
            Err(refused) => Err(refused.error),
        }
    }

    /// Edits `target` to hold `body`; `Ok(false)` when Slack refuses the edit for that
    /// message's sake and a new message is the way.
    async fn edit(&self, body: &Value, target: &Posted) -> Result<bool, SinkError> {
        let mut edit = body.clone();
        if let Some(obj) = edit.as_object_mut() {
            // chat.update takes neither a poster's name nor emoji (the message keeps its own)
            // and wants the channel's id.
            for key in ["channel", "username", "icon_emoji"] {
                obj.remove(key);
            }
            obj.insert("channel".into(), Value::from(target.channel.as_str()));
            obj.insert("ts".into(), Value::from(target.ts.as_str()));
            // chat.update's `parse` defaults to `client`, chat.postMessage's to `none`: the
            // edited message is read as the posted one was.
            obj.insert("parse".into(), Value::from("none"));
        }
        match self.api.call(Method::Update, &edit).await {
            Ok(_) => Ok(true),
            Err(refused) if refused.is(EDIT_REFUSALS) => Ok(false),
            Err(refused) => Err(refused.error),
        }
    }
}

impl WebApi {
    /// Calls `method` with `body`: the answer's fields, or the refusal classified.
    async fn call(&self, method: Method, body: &Value) -> Result<Fields, Refused> {
        let url = match method {
            Method::PostMessage => &self.post_message,
            Method::Update => &self.update,
        };
        let request = self.client.post(url.clone()).header(AUTHORIZATION, self.auth.clone()).json(body);
        let answer = exchange(request, self.timeout).await.map_err(Refused::other)?;
        let retry_after = answer.header("retry-after");
        if answer.status != 200 {
            return Err(Refused::other(classify_status(answer.status, retry_after, &answer.body)));
        }
        answer::read(&answer.body, retry_after)
    }

    /// Where and how a body is posted, for `test --dry-run`: never the token.
    fn describe(&self) -> String {
        // A URL may carry a user and password: never shown.
        let mut shown = self.post_message.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        format!("POST to {shown} with `Authorization: Bearer` and the token (not shown)")
    }
}

#[async_trait]
impl Sink for ApiSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "slack-api"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.post(event, None).await.map(drop)
    }

    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.post_digest(digest, None).await.map(drop)
    }

    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let body = build(event, &self.renderer, &self.options).map_err(|e| SinkError::permanent(e.to_string()))?;
        let parent = reply_to.filter(|_| self.thread_replies).and_then(Posted::from_ref);
        let posted = match parent {
            Some(parent) => self.reply(&body, &parent).await?,
            None => self.post_new(&body).await?,
        };
        Ok(posted.and_then(|p| p.to_ref()))
    }

    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let body = build_digest(digest, &self.options);
        // Only a message in the configured channel is edited: after a move to another channel
        // the storm goes on there. A sink that does not know its channel's id yet (a name, and
        // nothing posted since the worker started) posts anew: one more message, never an
        // edit in a channel it no longer posts to.
        let target = update.and_then(Posted::from_ref).filter(|t| self.channel_id().as_deref() == Some(&t.channel));
        if let Some(target) = target {
            if self.edit(&body, &target).await? {
                return Ok(target.to_ref());
            }
        }
        Ok(self.post_new(&body).await?.and_then(|p| p.to_ref()))
    }

    /// Slack takes about one message per second per channel; an edit counts as one.
    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn check(&self) -> Vec<String> {
        self.api.source.permission_warning("token").into_iter().chain(self.api.cleartext.clone()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.post_new(&build_alert(alert, &self.options)).await.map(drop)
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let body = build(event, &self.renderer, &self.options).map_err(|e| SinkError::permanent(e.to_string()))?;
        let json = serde_json::to_string_pretty(&body).map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!("{}, this JSON body:\n{json}", self.api.describe()))
    }
}
