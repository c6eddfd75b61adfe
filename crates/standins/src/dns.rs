//! A loopback DNS server for the tests: UDP on 127.0.0.1, a port of its own, answering from a
//! table written by the test, counting the queries it gets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A query type.
pub const A: u16 = 1;
/// A query type.
pub const PTR: u16 = 12;
/// A query type.
pub const AAAA: u16 = 28;

/// What the server does with a query.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A PTR record naming this name, given as its labels' raw bytes (any bytes at all).
    Ptr(Vec<Vec<u8>>),
    /// A and AAAA records: those of the query's type.
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN.
    NxDomain,
    /// No answer at all, ever.
    Silent,
}

impl Reply {
    /// A PTR record for a dotted name (its labels split at the dots).
    pub fn ptr(name: &str) -> Self {
        Self::Ptr(name.split('.').map(|l| l.as_bytes().to_vec()).collect())
    }
}

/// The running server; stops when dropped.
pub struct DnsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    /// Answers from `zone`, keyed by (query name without the final dot, lower case; type);
    /// queries not in it get `default`.
    pub fn start(zone: Vec<((String, u16), Reply)>, default: Reply) -> Self {
        let zone: HashMap<(String, u16), Reply> =
            zone.into_iter().map(|((n, t), r)| ((n.to_lowercase(), t), r)).collect();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let Some((name, qtype, question_end)) = parse_question(&buf[..n]) else { continue };
                q.lock().unwrap().push((name.clone(), qtype));
                let reply = zone.get(&(name, qtype)).unwrap_or(&default);
                if let Some(answer) = respond(&buf[..n], question_end, qtype, reply) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        Self { addr, queries, stop }
    }

    /// A server that never answers.
    pub fn silent() -> Self {
        Self::start(Vec::new(), Reply::Silent)
    }

    /// How many queries for `name` of type `qtype` it got.
    pub fn count(&self, name: &str, qtype: u16) -> usize {
        let name = name.to_lowercase();
        self.queries.lock().unwrap().iter().filter(|(n, t)| *n == name && *t == qtype).count()
    }

    /// How many queries it got in all.
    pub fn total(&self) -> usize {
        self.queries.lock().unwrap().len()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The reverse name of an address, as queried: `7.113.0.203.in-addr.arpa`.
pub fn reverse(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut labels: Vec<String> =
                v6.octets().iter().flat_map(|b| [b >> 4, b & 15]).map(|n| format!("{n:x}")).collect();
            labels.reverse();
            format!("{}.ip6.arpa", labels.join("."))
        }
    }
}

/// The query name (labels joined by dots, lower case), type and where the question ends.
fn parse_question(msg: &[u8]) -> Option<(String, u16, usize)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

fn respond(query: &[u8], question_end: usize, qtype: u16, reply: &Reply) -> Option<Vec<u8>> {
    let mut records: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut rcode = 0u16;
    match reply {
        Reply::Silent => return None,
        Reply::NxDomain => rcode = 3,
        Reply::Ptr(labels) => {
            let mut rdata = Vec::new();
            for label in labels {
                rdata.push(label.len() as u8);
                rdata.extend_from_slice(label);
            }
            rdata.push(0);
            records.push((PTR, rdata));
        }
        Reply::Addrs(addrs) => {
            for addr in addrs {
                match (addr, qtype) {
                    (IpAddr::V4(v4), A) => records.push((A, v4.octets().to_vec())),
                    (IpAddr::V6(v6), AAAA) => records.push((AAAA, v6.octets().to_vec())),
                    _ => {}
                }
            }
        }
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    // QR, the query's opcode and RD, AA, RA, the code.
    let flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[0..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..question_end]);
    for (rtype, rdata) in records {
        out.extend_from_slice(&[0xC0, 0x0C]); // the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&3600u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}
