//! The packets captured from Samba 4.17 (`shared/vectors/samba-4.17/*.jsonl`) for this
//! crate's tests: a few fields of each JSON line, no JSON crate needed.

use std::path::PathBuf;

use ctdb_protocol::Packet;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/samba-4.17")
}

/// The raw text of a top-level `"key": value` of a JSON line (a string's contents or a
/// number's digits).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &line[at..];
    if let Some(s) = rest.strip_prefix('"') {
        s.find('"').map(|end| &s[..end])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Every line of capture `file`.
pub fn lines(file: &str) -> Vec<String> {
    let path = vectors_dir().join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the Samba 4.17 vectors are missing at {path:?}: {e}"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The packet captured as record `i` of `file`.
pub fn packet(file: &str, i: u32) -> Packet {
    let line = lines(file)
        .into_iter()
        .find(|l| field(l, "i") == Some(&i.to_string()))
        .unwrap_or_else(|| panic!("{file} has no i={i}"));
    Packet::from_slice(&unhex(field(&line, "hex").expect("hex"))).expect("decodes")
}
