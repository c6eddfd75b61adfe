//! Byte strings in the plan (paths, names) are written in hex: a path may hold spaces or
//! newlines, and hex needs no escaping rules that both sides would have to get right.

use alloc::string::String;
use alloc::vec::Vec;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` in lowercase hex; `-` for nothing, so that no field of a line is empty.
pub fn encode(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::from("-");
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The bytes of an `encode`d field, or `None` when it is not one.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    if text == b"-" {
        return Some(Vec::new());
    }
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.chunks(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for sample in [&b""[..], b"/etc/f2b-notify/a b\n.toml", &[0, 255, 16]] {
            assert_eq!(decode(encode(sample).as_bytes()).unwrap(), sample);
        }
        assert_eq!(decode(b"0g"), None);
        assert_eq!(decode(b"abc"), None);
        assert_eq!(decode(b""), None);
    }
}
