//! "Did you mean …?": the known name closest to a mistyped one (a config key, a sink type, a
//! sink name in a route), for the one-line config problems. Only a likely typo is offered: a
//! wrong guess would send the reader after the wrong key.

/// The candidate closest to `typed` when it is close enough to be a typo of it: at most one
/// edit (insertion, deletion, substitution or swap of two neighbours) per three characters,
/// ignoring case; else the one candidate that contains `typed` or is contained in it (four
/// characters or more: `webhook` for `slack-webhook`). `None` when nothing fits or the
/// containment is ambiguous.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase();
    let candidates: Vec<&str> = candidates.into_iter().filter(|c| *c != typed).collect();
    let by_edits = candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&typed_lower, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (typed.chars().count().max(c.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    if by_edits.is_some() {
        return by_edits;
    }
    if typed_lower.chars().count() < 4 {
        return None;
    }
    let mut containing = candidates.iter().filter(|c| {
        let c = c.to_lowercase();
        c.contains(&typed_lower) || typed_lower.contains(&c)
    });
    match (containing.next(), containing.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// ` (did you mean `x`?)` for the closest candidate, or nothing.
pub fn did_you_mean<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(typed, candidates).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_matched_and_strangers_are_not() {
        let keys = ["host", "sinks", "jails", "delivery"];
        assert_eq!(closest("hots", keys), Some("host"));
        assert_eq!(closest("sinkz", keys), Some("sinks"));
        assert_eq!(closest("Jails", keys), Some("jails"), "case is ignored");
        assert_eq!(closest("delivry", keys), Some("delivery"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("x", keys), None);
        let types = ["stdout", "slack-webhook", "slack-api", "email"];
        assert_eq!(closest("stdot", types), Some("stdout"));
        assert_eq!(closest("slack_webhook", types), Some("slack-webhook"));
        assert_eq!(closest("webhook", types), Some("slack-webhook"), "contained in one");
        assert_eq!(closest("slack", types), None, "contained in two: no guess");
        assert_eq!(closest("mail", types), Some("email"));
        assert_eq!(closest("pager", types), None);
        // The closest of several near ones; never the name itself.
        assert_eq!(closest("opz", ["ops", "console", "opzz"]), Some("ops"));
        assert_eq!(closest("ops", ["ops"]), None);
        assert_eq!(did_you_mean("bann", ["start", "stop", "ban", "unban"]), " (did you mean `ban`?)");
        assert_eq!(did_you_mean("zzz", ["ban"]), "");
    }
}
