//! The Samba 4.17 captures shared by the golden tests.

use std::path::PathBuf;

use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/samba-4.17")
}

/// Every captured packet, labelled "file i=N", in file and capture order.
pub fn load_all() -> Vec<(String, Value)> {
    let dir = vectors_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the Samba 4.17 vectors are missing at {} ({e}); they ship in shared/vectors",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.jsonl in {}", dir.display());
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("read vector file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let record: Value = serde_json::from_str(line).expect("valid JSON line");
            out.push((format!("{name} i={}", record["i"]), record));
        }
    }
    out
}
