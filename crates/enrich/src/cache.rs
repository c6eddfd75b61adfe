//! A small bounded cache of DNS answers, on tokio's clock (so that tests can pause it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What DNS said about one address: its name and whether the name is confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) hostname: Option<String>,
    pub(crate) confirmed: Option<bool>,
}

/// Answers by address, each until it expires; at most `size` of them.
#[derive(Debug)]
pub(crate) struct Cache {
    size: usize,
    ttl: Duration,
    entries: Mutex<HashMap<IpAddr, (Answer, Instant)>>,
}

impl Cache {
    pub(crate) fn new(size: usize, ttl: Duration) -> Self {
        Self { size, ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// How long an answer without a name is kept: a tenth of the TTL, at least 1 s (never
    /// more than the TTL).
    fn negative_ttl(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_secs(1)).min(self.ttl)
    }

    pub(crate) fn get(&self, ip: IpAddr) -> Option<Answer> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&ip) {
            Some((answer, until)) if Instant::now() < *until => Some(answer.clone()),
            Some(_) => {
                entries.remove(&ip);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, ip: IpAddr, answer: Answer) {
        if self.size == 0 || self.ttl.is_zero() {
            return;
        }
        let ttl = if answer.hostname.is_some() { self.ttl } else { self.negative_ttl() };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.size && !entries.contains_key(&ip) {
            entries.retain(|_, (_, until)| now < *until);
            // Still full: drop the entry that would expire first.
            if entries.len() >= self.size {
                if let Some(first) = entries.iter().min_by_key(|(_, (_, until))| *until).map(|(ip, _)| *ip) {
                    entries.remove(&first);
                }
            }
        }
        entries.insert(ip, (answer, now + ttl));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> Answer {
        Answer { hostname: Some(n.into()), confirmed: Some(true) }
    }

    #[tokio::test(start_paused = true)]
    async fn expires_and_negative_answers_expire_sooner() {
        let cache = Cache::new(10, Duration::from_secs(100));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        cache.put(a, named("a.example"));
        cache.put(b, Answer::default());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(cache.get(a), Some(named("a.example")));
        assert_eq!(cache.get(b), Some(Answer::default()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get(b), None, "a negative answer is kept a tenth of the TTL");
        assert!(cache.get(a).is_some());
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(cache.get(a), None);
    }

    #[tokio::test(start_paused = true)]
    async fn bounded() {
        let cache = Cache::new(3, Duration::from_secs(100));
        for i in 0..10u8 {
            cache.put(IpAddr::from([192, 0, 2, i]), named(&format!("h{i}")));
            tokio::time::advance(Duration::from_millis(10)).await;
            assert!(cache.len() <= 3);
        }
        // The newest stay.
        assert!(cache.get(IpAddr::from([192, 0, 2, 9])).is_some());
        assert!(cache.get(IpAddr::from([192, 0, 2, 0])).is_none());
    }

    #[tokio::test]
    async fn size_or_ttl_zero_is_off() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let off = Cache::new(0, Duration::from_secs(100));
        off.put(ip, named("x"));
        assert_eq!(off.get(ip), None);
        let off = Cache::new(10, Duration::ZERO);
        off.put(ip, named("x"));
        assert_eq!(off.get(ip), None);
    }
}
