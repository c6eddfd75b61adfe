//! What the Workflows trigger's answers mean. Success is any 2xx: 202 Accepted (with an empty
//! body) from the template's flow, which only means the trigger took the JSON; the card is
//! posted later, and a failure then shows only in the flow's run history. A flow with its own
//! Response action may answer another 2xx.
//!
//! Errors come as `{"error":{"code":"…","message":"…"}}` (Logic Apps' shape). The status
//! decides the class through the shared table (429 and 5xx other than 501 transient, with
//! `Retry-After` if present; 408 transient; the rest permanent); the code says what to do.
//! A 400 is not always a bad payload: a flow that is off or deleted answers 400 too.

use f2b_notify_core::{Secret, SinkError};
use f2b_notify_http::{classify_status, clean, describe, Answer, Url};
use serde::Deserialize;

/// What the trigger's error codes mean for the operator, and what to do.
pub fn explain(status: u16, code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidRequestContent" => "the trigger did not read the request as JSON (please report this as a bug)",
        "TriggerInputSchemaMismatch" => {
            "the flow's trigger has a JSON schema this card does not match: use the template \"Post to a channel when a webhook request is received\", or remove the schema from the trigger"
        }
        "WorkflowTriggerIsNotEnabled" => {
            "the flow is turned off, suspended or deleted (Power Automate turns off flows that failed or were not triggered for a long time): turn it on again in Teams (Workflows) or Power Automate, or create a new one and put its URL in `url` or `url_file`"
        }
        "DirectApiAuthorizationRequired" => {
            "the URL lacks its signature (`sig`), or the flow's trigger only lets users of the tenant call it: set \"Who can trigger the flow\" to \"Anyone\" and copy the URL again, whole"
        }
        "DirectApiInvalidAuthorizationSignature" => {
            "the URL's signature (`sig`) is wrong or was regenerated: copy the URL again, whole, from the flow's trigger"
        }
        "MisMatchingOAuthClaims" => {
            "the flow's trigger only lets some users call it: set \"Who can trigger the flow\" to \"Anyone\""
        }
        "WorkflowNotFound" => {
            "there is no such flow (a mistyped URL, or the flow or its environment was deleted): copy the URL again or create a new flow"
        }
        "TriggerRequestMethodNotValid" => "the trigger does not take a POST (please report this as a bug)",
        "WorkflowRequestsThrottled" => "Power Automate's request limit for the flow was hit",
        _ => match status {
            401 => "the URL is not accepted: copy it again, whole, from the flow's trigger",
            403 => {
                "the flow's trigger does not let this caller in: set \"Who can trigger the flow\" to \"Anyone\" and copy the URL again"
            }
            404 => "there is no such flow: copy the URL again or create a new flow",
            413 => "the request is too large (please report this as a bug)",
            429 => "the flow's request limit was hit",
            500..=599 => "a problem on Microsoft's side",
            _ => return None,
        },
    })
}

/// Removes the parts of the webhook URL from text a server sent: its host, every path
/// segment and query value long enough to identify the flow (the workflow id, `sig`), which
/// error messages may echo ("Could not execute workflow '…'"). The URL is the secret.
pub fn redact(text: &str, url: &Secret) -> String {
    let Ok(url) = Url::parse(url.expose().trim()) else { return text.to_owned() };
    let mut parts: Vec<String> = url.host_str().map(str::to_owned).into_iter().collect();
    parts.extend(url.path_segments().into_iter().flatten().map(str::to_owned));
    parts.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    parts.extend(url.query().map(str::to_owned));
    // Longest first, so that a part holding another is removed whole.
    parts.retain(|p| p.len() >= 8);
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = text.to_owned();
    for part in parts {
        out = out.replace(&part, "…");
    }
    out
}

/// The error for an answer that is not a 2xx: the code and message of the trigger's JSON
/// (or the body's first line), the HTTP status, and what it means.
pub fn classify(answer: &Answer, url: &Secret) -> SinkError {
    #[derive(Deserialize)]
    struct Body {
        error: Error,
    }
    #[derive(Deserialize)]
    struct Error {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let (code, text) = match serde_json::from_str::<Body>(&answer.body) {
        Ok(Body { error }) => {
            let code = clean(&error.code);
            let text = match (code.is_empty(), error.message.trim().is_empty()) {
                (_, true) => code.clone(),
                (true, false) => error.message,
                (false, false) => format!("{code}: {}", error.message),
            };
            (code, text)
        }
        Err(_) => (String::new(), answer.body.clone()),
    };
    let message = describe(&redact(&text, url), Some(answer.status), explain(answer.status, &code));
    classify_status(answer.status, answer.retry_after(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let url = Secret::new(
            "https://de1.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/0f8fad5bd9cb469f/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SIGsecret123",
        );
        let text = "Could not execute workflow '0f8fad5bd9cb469f' trigger 'manual' at de1.environment.api.powerplatform.com (sig SIGsecret123)";
        let out = redact(text, &url);
        assert_eq!(out, "Could not execute workflow '…' trigger 'manual' at … (sig …)");
        // Short parts (`manual`, `1.0`) are words an error may use: they stay.
        assert_eq!(redact("trigger 'manual'", &url), "trigger 'manual'");
    }
}
