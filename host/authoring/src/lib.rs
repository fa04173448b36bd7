//! `mailroom-authoring`: what a plugin author runs before anything is
//! installed. [`new_project`] writes a working project from a template (Rust
//! with `mailroom-plugin-sdk`, JavaScript with `componentize-js`, Python with
//! `componentize-py`), the contract's WIT beside it; [`build`] turns a project
//! into a component file with that language's own tool.
//!
//! It neither loads nor installs a plugin: `mailroom plugin check`, `test`
//! and `install` do that with what it builds. The contract it writes out is
//! the one this binary was built with (the `wit/` directory of the source).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A language a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with `mailroom-plugin-sdk` and wit-bindgen.
    Rust,
    /// JavaScript, with `@bytecodealliance/componentize-js` (npm).
    Js,
    /// Python, with `componentize-py` (PyPI).
    Python,
}

impl std::str::FromStr for Lang {
    type Err = AuthoringError;
    fn from_str(s: &str) -> Result<Self, AuthoringError> {
        match s {
            "rust" => Ok(Lang::Rust),
            "js" | "javascript" => Ok(Lang::Js),
            "python" | "py" => Ok(Lang::Python),
            other => Err(AuthoringError::Input {
                field: "--lang",
                why: format!("`{other}` is not one of rust, js, python"),
            }),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
        })
    }
}

/// Why a project could not be made or built.
#[derive(Debug, thiserror::Error)]
pub enum AuthoringError {
    /// An argument is wrong.
    #[error("{field}: {why}")]
    Input { field: &'static str, why: String },
    /// Reading or writing the project failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The language's tool is not installed.
    #[error("`{tool}` is not installed: {install}")]
    ToolMissing {
        tool: &'static str,
        install: &'static str,
    },
    /// The language's tool failed; its output says why.
    #[error("`{command}` failed ({status}):\n{output}")]
    BuildFailed {
        command: String,
        status: String,
        output: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthoringError + '_ {
    move |source| AuthoringError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The contract's WIT, as `(path under wit/, text)`.
const WIT: [(&str, &str); 8] = [
    ("provider.wit", include_str!("../../../wit/provider.wit")),
    (
        "deps/cli/cli.wit",
        include_str!("../../../wit/deps/cli/cli.wit"),
    ),
    (
        "deps/clocks/clocks.wit",
        include_str!("../../../wit/deps/clocks/clocks.wit"),
    ),
    (
        "deps/filesystem/filesystem.wit",
        include_str!("../../../wit/deps/filesystem/filesystem.wit"),
    ),
    (
        "deps/http/http.wit",
        include_str!("../../../wit/deps/http/http.wit"),
    ),
    (
        "deps/io/io.wit",
        include_str!("../../../wit/deps/io/io.wit"),
    ),
    (
        "deps/random/random.wit",
        include_str!("../../../wit/deps/random/random.wit"),
    ),
    (
        "deps/sockets/sockets.wit",
        include_str!("../../../wit/deps/sockets/sockets.wit"),
    ),
];

/// The world every template targets.
pub const WORLD: &str = "mailroom:provider/plugin@1.1.0";

const README: &str = include_str!("../templates/README.md");

fn template(lang: Lang) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![("README.md", README)];
    files.extend(match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
            (".gitignore", "/target\n/*.wasm\n"),
        ],
        Lang::Js => vec![
            ("package.json", include_str!("../templates/js/package.json")),
            ("plugin.js", include_str!("../templates/js/plugin.js")),
            (".gitignore", "/node_modules\n/*.wasm\n"),
        ],
        Lang::Python => vec![
            ("app.py", include_str!("../templates/python/app.py")),
            (".gitignore", "/*.wasm\n__pycache__/\n"),
        ],
    });
    files
}

/// A plugin name: lowercase letters, digits and `-`, starting with a letter.
fn check_name(name: &str) -> Result<(), AuthoringError> {
    let ok = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AuthoringError::Input {
            field: "NAME",
            why: format!(
                "`{name}` must be 1 to 40 lowercase letters, digits or `-`, starting with a letter"
            ),
        })
    }
}

/// Write the contract's WIT under `dir/wit`.
pub fn write_wit(dir: &Path) -> Result<(), AuthoringError> {
    for (path, text) in WIT {
        write(&dir.join("wit").join(path), text)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), AuthoringError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// Make a new project `dir/NAME` (which must not exist, or be empty) in
/// `lang`. `sdk` is where `mailroom-plugin-sdk` is, for Rust. The files written.
pub fn new_project(
    lang: Lang,
    name: &str,
    dir: &Path,
    sdk: Option<&Path>,
) -> Result<Vec<PathBuf>, AuthoringError> {
    check_name(name)?;
    let project = dir.join(name);
    if std::fs::read_dir(&project).is_ok_and(|mut d| d.next().is_some()) {
        return Err(AuthoringError::Input {
            field: "NAME",
            why: format!("{} already exists and is not empty", project.display()),
        });
    }
    let sdk = match (lang, sdk) {
        (Lang::Rust, None) => {
            return Err(AuthoringError::Input {
                field: "--sdk",
                why: "where mailroom-plugin-sdk is (plugins/sdk in Mailroom's source) is needed for Rust".into(),
            });
        }
        (Lang::Rust, Some(path)) => std::fs::canonicalize(path)
            .ok()
            .filter(|p| p.join("Cargo.toml").is_file())
            .ok_or_else(|| AuthoringError::Input {
                field: "--sdk",
                why: format!("{} holds no mailroom-plugin-sdk", path.display()),
            })?
            .display()
            .to_string(),
        _ => String::new(),
    };
    let mut written = Vec::new();
    for (path, text) in template(lang) {
        let text = text
            .replace("{{name}}", name)
            .replace("{{lang}}", &lang.to_string())
            .replace("{{sdk}}", &sdk);
        let at = project.join(path);
        write(&at, &text)?;
        written.push(at);
    }
    write_wit(&project)?;
    written.push(project.join("wit"));
    Ok(written)
}

/// Which language a project is in, by its files.
pub fn detect(project: &Path) -> Result<Lang, AuthoringError> {
    if project.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if project.join("package.json").is_file() {
        Ok(Lang::Js)
    } else if project.join("app.py").is_file() {
        Ok(Lang::Python)
    } else {
        Err(AuthoringError::Input {
            field: "DIR",
            why: format!(
                "{} has no Cargo.toml, package.json or app.py: not a plugin project",
                project.display()
            ),
        })
    }
}

/// The project's name: its directory's.
fn project_name(project: &Path) -> Result<String, AuthoringError> {
    let name = project
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| AuthoringError::Input {
            field: "DIR",
            why: format!("{} has no name", project.display()),
        })?;
    check_name(&name)?;
    Ok(name)
}

/// The variables a build tool sees: what toolchains need to find themselves
/// and their caches, and nothing else. A plugin's build scripts are a third
/// party's code: no `MAILROOM_*` setting, database URL, OAuth client secret
/// or any other variable of the host's reaches them.
const BUILD_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TMPDIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_TARGET_DIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NPM_CONFIG_CACHE",
    "NPM_CONFIG_REGISTRY",
    "VIRTUAL_ENV",
];

/// Of `vars`, the ones a build tool may see.
fn build_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.filter(|(k, _)| BUILD_ENV.contains(&k.as_str()))
        .collect()
}

/// A build tool's command, with the scrubbed environment.
fn tool(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear().envs(build_env(std::env::vars()));
    c
}

fn run(
    mut command: Command,
    tool: &'static str,
    install: &'static str,
) -> Result<(), AuthoringError> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AuthoringError::ToolMissing { tool, install },
        _ => AuthoringError::BuildFailed {
            command: shown.clone(),
            status: "did not start".into(),
            output: e.to_string(),
        },
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(AuthoringError::BuildFailed {
        command: shown,
        status: out.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// Where the built component goes: `out`, or `PROJECT/NAME.wasm`.
fn output(project: &Path, name: &str, out: Option<&Path>) -> PathBuf {
    out.map_or_else(|| project.join(format!("{name}.wasm")), Path::to_path_buf)
}

/// Build the project in `project` into a component; its path. A project
/// without `wit/` is built against the contract this binary carries.
pub fn build(project: &Path, out: Option<&Path>) -> Result<PathBuf, AuthoringError> {
    let project = std::fs::canonicalize(project).map_err(io(project))?;
    let lang = detect(&project)?;
    let name = project_name(&project)?;
    let target = output(&project, &name, out);
    let target = if target.is_absolute() {
        target
    } else {
        std::env::current_dir().map_err(io(&target))?.join(target)
    };
    match lang {
        Lang::Rust => build_rust(&project, &name, &target)?,
        Lang::Js => build_js(&project, &target)?,
        Lang::Python => build_python(&project, &target)?,
    }
    Ok(target)
}

/// `wit/` of the project, or the contract written to a temporary directory.
fn wit_dir(project: &Path) -> Result<(PathBuf, Option<TempWit>), AuthoringError> {
    let own = project.join("wit");
    if own.is_dir() {
        return Ok((own, None));
    }
    let temp = TempWit(std::env::temp_dir().join(format!(
        "mailroom-wit-{}-{}",
        std::process::id(),
        project_name(project).unwrap_or_default()
    )));
    write_wit(&temp.0)?;
    Ok((temp.0.join("wit"), Some(temp)))
}

/// A temporary copy of the contract, removed when dropped.
struct TempWit(PathBuf);

impl Drop for TempWit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn build_python(project: &Path, target: &Path) -> Result<(), AuthoringError> {
    let (wit, _temp) = wit_dir(project)?;
    let mut c = tool("componentize-py");
    c.current_dir(project)
        .arg("-d")
        .arg(&wit)
        .args(["-w", WORLD, "componentize", "-p"])
        .arg(project)
        .arg("app")
        .arg("-o")
        .arg(target);
    run(c, "componentize-py", "pip install componentize-py==0.25.1")
}

fn build_js(project: &Path, target: &Path) -> Result<(), AuthoringError> {
    let install = "install Node.js and npm";
    if !project.join("node_modules").is_dir() {
        let mut c = tool("npm");
        c.current_dir(project)
            .args(["install", "--no-audit", "--no-fund"]);
        run(c, "npm", install)?;
    }
    let (wit, _temp) = wit_dir(project)?;
    let mut c = tool("npx");
    c.current_dir(project)
        .args(["--no-install", "componentize-js", "--wit"])
        .arg(&wit)
        .args(["--world-name", WORLD, "--out"])
        .arg(target)
        .arg("plugin.js");
    run(c, "npx", install)
}

/// With rustup's `wasm32-wasip2` where it is installed, else Debian's
/// `rustc-web` with `-Zbuild-std` (as Mailroom's own plugins build).
fn build_rust(project: &Path, name: &str, target: &Path) -> Result<(), AuthoringError> {
    let rustup = tool("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip2")
        });
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project.join("target"), PathBuf::from)
        .join(if rustup {
            "mailroom-plugins"
        } else {
            "mailroom-plugins-debian"
        });
    let mut c;
    let built = if rustup {
        c = tool("cargo");
        c.args(["build", "--release", "--target", "wasm32-wasip2"]);
        dir.join("wasm32-wasip2/release")
    } else if Path::new("/usr/bin/rustc").is_file() && Path::new("/usr/lib/wasm32-wasi").is_dir() {
        c = tool("/usr/bin/cargo");
        c.env("RUSTFLAGS", "-L /usr/lib/wasm32-wasi")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTC", "/usr/bin/rustc")
            .args([
                "build",
                "--release",
                "-Zbuild-std=std,panic_abort",
                "--target",
                "wasm32-wasip2",
            ]);
        dir.join("wasm32-wasip2/release")
    } else {
        return Err(AuthoringError::ToolMissing {
            tool: "a wasm32-wasip2 Rust target",
            install: "rustup target add wasm32-wasip2",
        });
    };
    c.current_dir(project).env("CARGO_TARGET_DIR", &dir);
    run(c, "cargo", "install Rust with rustup")?;
    let artifact = built.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::copy(&artifact, target).map_err(io(&artifact))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tools_see_none_of_the_hosts_settings() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("MAILROOM_SECRET_KEY", "k"),
            ("MAILROOM_DATABASE_URL", "postgres://u:p@db/x"),
            ("MAILROOM_GOOGLE_CLIENT_SECRET", "s"),
            ("DATABASE_URL", "postgres://u:p@db/x"),
            ("AWS_SECRET_ACCESS_KEY", "a"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let kept: Vec<String> = build_env(vars.into_iter())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kept, ["PATH", "HOME"]);
    }

    #[test]
    fn a_new_project_holds_the_template_and_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let files = new_project(Lang::Python, "acme-mail", dir.path(), None).unwrap();
        assert!(files.iter().any(|f| f.ends_with("app.py")));
        let app = std::fs::read_to_string(dir.path().join("acme-mail/app.py")).unwrap();
        assert!(app.contains("\"acme-mail\""), "{app}");
        assert!(!app.contains("{{"), "{app}");
        let wit = std::fs::read_to_string(dir.path().join("acme-mail/wit/provider.wit")).unwrap();
        assert!(
            wit.starts_with("package mailroom:provider@1.1.0;")
                || wit.contains("package mailroom:provider@1.1.0;")
        );
        assert!(
            dir.path()
                .join("acme-mail/wit/deps/http/http.wit")
                .is_file()
        );
        assert_eq!(detect(&dir.path().join("acme-mail")).unwrap(), Lang::Python);
    }

    #[test]
    fn bad_names_languages_and_places_are_refused_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let err = new_project(Lang::Js, "Acme Mail", dir.path(), None).unwrap_err();
        assert!(
            err.to_string().starts_with("NAME: `Acme Mail` must be"),
            "{err}"
        );
        let err = "cobol".parse::<Lang>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "--lang: `cobol` is not one of rust, js, python"
        );
        let err = new_project(Lang::Rust, "acme", dir.path(), None).unwrap_err();
        assert!(err.to_string().starts_with("--sdk:"), "{err}");
        new_project(Lang::Js, "acme", dir.path(), None).unwrap();
        let err = new_project(Lang::Js, "acme", dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = detect(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a plugin project"), "{err}");
    }
}
