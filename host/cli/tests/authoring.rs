//! `mailroom plugin new` and `mailroom plugin build`: a project made from each
//! template (Rust with the SDK, JavaScript with componentize-js, Python with
//! componentize-py) builds as it is into a component the host loads.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn mailroom(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .current_dir(dir)
        .env("MAILROOM_HOME", dir.join("home"))
        .output()
        .expect("mailroom runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// New, build, check: what `plugin check --json` says of the component.
fn made_and_built(lang: &str, name: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = mailroom(dir.path(), &["plugin", "new", "--lang", lang, name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.path().join(name).join("wit/provider.wit").is_file());
    let out = mailroom(dir.path(), &["plugin", "build", name]);
    assert!(out.status.success(), "{}", text(&out));
    let wasm = dir.path().join(name).join(format!("{name}.wasm"));
    assert!(
        text(&out).contains(&format!("built {}", wasm.display())),
        "{}",
        text(&out)
    );
    let out = mailroom(
        dir.path(),
        &["plugin", "check", "--json", wasm.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_template(described: &Value, name: &str) {
    assert_eq!(described["name"], name, "{described}");
    assert_eq!(described["version"], "0.1.0", "{described}");
    assert_eq!(
        described["contract"], "mailroom:provider@1.1.0",
        "{described}"
    );
    assert_eq!(
        described["endpoints"][0]["template"], "tls://{server}:{port}",
        "{described}"
    );
}

#[test]
fn a_rust_project_from_the_template_builds_and_loads() {
    assert_template(&made_and_built("rust", "acme-rs"), "acme-rs");
}

#[test]
fn a_python_project_from_the_template_builds_and_loads() {
    assert_template(&made_and_built("python", "acme-py"), "acme-py");
}

#[test]
fn a_javascript_project_from_the_template_builds_and_loads() {
    assert_template(&made_and_built("js", "acme-js"), "acme-js");
}

#[test]
fn bad_input_is_refused_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailroom(dir.path(), &["plugin", "new", "--lang", "cobol", "acme"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--lang: `cobol` is not one of rust, js, python"),
        "{}",
        text(&out)
    );
    let out = mailroom(dir.path(), &["plugin", "new", "--lang", "python", "Acme"]);
    assert!(
        text(&out).contains("NAME: `Acme` must be"),
        "{}",
        text(&out)
    );
    let out = mailroom(dir.path(), &["plugin", "build", "."]);
    assert!(
        text(&out).contains("not a plugin project"),
        "{}",
        text(&out)
    );
}
