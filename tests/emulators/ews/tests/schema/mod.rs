//! Validate SOAP body elements against Microsoft's EWS schema
//! (`schema/messages.xsd`, which imports `types.xsd`; `schema/ews.xsd` locates
//! the XML namespace for them) with `xmllint`.

use std::path::Path;

/// Validate documents; panic naming each one that does not fit.
pub fn validate_all(docs: &[(&str, &str)]) {
    assert!(!docs.is_empty(), "nothing to validate");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/ews.xsd");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for (n, (kind, doc)) in docs.iter().enumerate() {
        {
            let file = dir.path().join(format!("{n}-{kind}.xml"));
            std::fs::write(&file, doc).expect("write");
            let out = std::process::Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(&schema)
                .arg(&file)
                .output()
                .expect("xmllint runs (scripts/setup installs libxml2-utils)");
            if !out.status.success() {
                let why: String = String::from_utf8_lossy(&out.stderr)
                    .chars()
                    .take(400)
                    .collect();
                failures.push(format!(
                    "{kind} {n}: {why}\n{}",
                    doc.chars().take(400).collect::<String>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "not valid against the EWS schema:\n{}",
        failures.join("\n")
    );
}
