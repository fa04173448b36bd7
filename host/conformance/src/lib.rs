//! `mailroom-conformance`: what `mailroom plugin test` runs. It drives one
//! provider plugin, with one account an author or operator supplies,
//! through the obligations of `mailroom:provider@1`, and reports on each:
//!
//! - **info**: the description is complete (name, version, description,
//!   every field labelled and explained, every endpoint with a purpose,
//!   every credential naming a declared secret field);
//! - **verify**: the account signs in; with each secret made wrong it fails
//!   with `auth-failed`, not with anything else;
//! - **backfill**: paging from no cursor ends, every page has a cursor, and
//!   no message comes twice;
//! - **paging is idempotent**: a fresh run from no cursor starts with the
//!   same messages;
//! - **resume**: from any cursor a page returned, a fresh run brings
//!   exactly the messages after it, none lost and none doubled;
//! - **incremental**: after the backfill, a sync brings nothing already seen;
//! - **errors are typed**: every failure is one of the contract's provider
//!   errors, never a crash;
//! - **declared endpoints only**: the sandbox refused nothing;
//! - **limits**: no call ran out of time or memory or returned too much.
//!
//! It uses the host's own runtime and sandbox, so what passes here runs
//! the same in `mailroom serve`. It writes nothing anywhere.

use std::collections::HashSet;
use std::sync::Arc;

use mailroom_runtime::{
    AccountInput, CallError, Credential, OperatorGrant, Plugin, ProviderError, Run, Runtime,
    Secret, Secrets, Window,
};

/// How one obligation fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Met, with what was seen.
    Pass(String),
    /// Not met, with why.
    Fail(String),
    /// Not tried, with why (e.g. the account has no secret to make wrong).
    Skip(String),
}

/// One obligation and its outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// Its short name.
    pub name: &'static str,
    /// How it fared.
    pub outcome: Outcome,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// `name version (digest)` of the plugin tested.
    pub plugin: String,
    /// The obligations, in the order they were tried.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether nothing failed.
    pub fn passed(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Fail(_)))
    }

    /// The report as text, one line per obligation, then a verdict.
    pub fn render(&self) -> String {
        let mut out = format!("conformance of {}\n", self.plugin);
        for c in &self.checks {
            let (mark, text) = match &c.outcome {
                Outcome::Pass(t) => ("ok  ", t),
                Outcome::Fail(t) => ("FAIL", t),
                Outcome::Skip(t) => ("skip", t),
            };
            out.push_str(&format!("  {mark} {:<24} {text}\n", c.name));
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
            .count();
        out.push_str(&if failed == 0 {
            "passed\n".to_string()
        } else {
            format!("failed: {failed} of {} obligations\n", self.checks.len())
        });
        out
    }
}

/// The most pages a backfill may take here before it counts as endless.
const MAX_PAGES: usize = 2_000;
/// How many returned cursors are resumed from.
const RESUMES: usize = 5;

/// One page as the checks compare it.
struct Seen {
    ids: Vec<String>,
    cursor: String,
}

/// What a suite run keeps while it goes.
struct Suite<'a> {
    runtime: &'a Arc<Runtime>,
    plugin: &'a Plugin,
    account: &'a AccountInput,
    grant: &'a OperatorGrant,
    window: Window,
    checks: Vec<Check>,
    denials: Vec<String>,
    untyped: Vec<String>,
    limits: Vec<String>,
}

impl Suite<'_> {
    fn record(&mut self, name: &'static str, outcome: Outcome) {
        self.checks.push(Check { name, outcome });
    }

    /// Note how a call failed, for the typed-errors and limits obligations.
    fn observe(&mut self, e: &CallError) {
        match e {
            CallError::Provider(_) => {}
            CallError::Timeout(_)
            | CallError::MemoryExceeded { .. }
            | CallError::ResultTooLarge { .. } => self.limits.push(e.to_string()),
            other => self.untyped.push(other.to_string()),
        }
    }

    async fn start(&mut self, account: &AccountInput) -> Result<Run, CallError> {
        let run = self.runtime.start(self.plugin, account, self.grant).await;
        if let Err(e) = &run {
            self.observe(e);
        }
        run
    }

    fn finish(&mut self, run: Run) {
        self.denials.extend(
            run.denials()
                .iter()
                .map(|d| format!("{} ({})", d.attempted, d.reason)),
        );
    }

    /// Sync from `cursor` in a fresh run until the plugin says there is no
    /// more: the pages, or the first failure.
    async fn pages(&mut self, cursor: Option<String>) -> Result<Vec<Seen>, String> {
        let mut run = self.start(self.account).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut cursor = cursor;
        let result = async {
            run.open().await?;
            loop {
                let page = run.sync(cursor.as_deref(), &self.window).await?;
                let more = page.more;
                cursor = Some(page.cursor.clone());
                out.push(Seen {
                    ids: page.messages.iter().map(|m| m.id.clone()).collect(),
                    cursor: page.cursor,
                });
                if !more || out.len() >= MAX_PAGES {
                    return Ok::<_, CallError>(more);
                }
            }
        }
        .await;
        let outcome = match result {
            Ok(true) => Err(format!("still more after {MAX_PAGES} pages")),
            Ok(false) => Ok(out),
            Err(e) => {
                self.observe(&e);
                Err(e.to_string())
            }
        };
        self.finish(run);
        outcome
    }
}

fn info(plugin: &Plugin) -> Outcome {
    let d = plugin.description();
    let mut missing = Vec::new();
    for (what, value) in [
        ("name", &d.name),
        ("version", &d.version),
        ("description", &d.description),
    ] {
        if value.trim().is_empty() {
            missing.push(format!("no {what}"));
        }
    }
    for f in &d.fields {
        if f.label.trim().is_empty() || f.help.trim().is_empty() {
            missing.push(format!("field `{}` has no label or help", f.name));
        }
    }
    for e in &d.endpoints {
        if e.purpose.trim().is_empty() {
            missing.push(format!("endpoint `{}` has no purpose", e.template));
        }
        let named: Vec<&str> = match &e.credential {
            Some(Credential::Bearer(secret)) => vec![secret.as_str()],
            Some(Credential::Basic(b)) => vec![b.secret_field.as_str()],
            None => vec![],
        };
        for secret in named {
            if !d.fields.iter().any(|f| f.secret && f.name == secret) {
                missing.push(format!(
                    "endpoint `{}` uses `{secret}`, which is no secret field",
                    e.template
                ));
            }
        }
    }
    if missing.is_empty() {
        Outcome::Pass(format!(
            "{} fields, {} endpoints, contract {}",
            d.fields.len(),
            d.endpoints.len(),
            d.contract
        ))
    } else {
        Outcome::Fail(missing.join("; "))
    }
}

/// Drive `plugin` with `account` under `grant` through every obligation.
pub async fn run(
    runtime: &Arc<Runtime>,
    plugin: &Plugin,
    account: &AccountInput,
    grant: &OperatorGrant,
    window: Window,
) -> Report {
    let d = plugin.description();
    let mut s = Suite {
        runtime,
        plugin,
        account,
        grant,
        window,
        checks: Vec::new(),
        denials: Vec::new(),
        untyped: Vec::new(),
        limits: Vec::new(),
    };
    s.record("info", info(plugin));

    // verify, then with each secret made wrong.
    let verified = match s.start(account).await {
        Ok(mut run) => {
            let r = run.verify().await;
            s.finish(run);
            r
        }
        Err(e) => Err(e),
    };
    match &verified {
        Ok(()) => s.record("verify", Outcome::Pass("signed in".into())),
        Err(e) => {
            s.observe(e);
            s.record(
                "verify",
                Outcome::Fail(format!("the account did not sign in: {e}")),
            );
        }
    }
    let names: Vec<String> = account.secrets.names().map(str::to_string).collect();
    if names.is_empty() {
        s.record(
            "verify-wrong-secret",
            Outcome::Skip("the account has no secret".into()),
        );
    } else {
        let mut wrong = account.clone();
        let mut secrets = Secrets::new();
        for name in &names {
            secrets.insert(name.clone(), Secret::new(format!("wrong-{name}-0000")));
        }
        wrong.secrets = secrets;
        let outcome = match s.start(&wrong).await {
            Ok(mut run) => {
                let r = run.verify().await;
                s.finish(run);
                match r {
                    Err(CallError::Provider(ProviderError::AuthFailed(why))) => {
                        Outcome::Pass(format!("auth-failed: {why}"))
                    }
                    Ok(()) => Outcome::Fail("a wrong secret was accepted".into()),
                    Err(e) => {
                        s.observe(&e);
                        Outcome::Fail(format!("failed with `{e}`, not auth-failed"))
                    }
                }
            }
            Err(e) => Outcome::Fail(format!("could not start: {e}")),
        };
        s.record("verify-wrong-secret", outcome);
    }

    // backfill, idempotent first page, resume from cursors, incremental.
    match s.pages(None).await {
        Err(why) => s.record("backfill", Outcome::Fail(why)),
        Ok(pages) => {
            let all: Vec<String> = pages.iter().flat_map(|p| p.ids.clone()).collect();
            let unique: HashSet<&String> = all.iter().collect();
            if unique.len() != all.len() {
                s.record(
                    "backfill",
                    Outcome::Fail(format!("{} messages came twice", all.len() - unique.len())),
                );
            } else if pages.iter().any(|p| p.cursor.is_empty()) {
                s.record(
                    "backfill",
                    Outcome::Fail("a page has an empty cursor".into()),
                );
            } else {
                s.record(
                    "backfill",
                    Outcome::Pass(format!("{} messages in {} pages", all.len(), pages.len())),
                );
            }
            let first = pages.first().map(|p| p.ids.clone()).unwrap_or_default();
            let again = match s.start(account).await {
                Ok(mut run) => {
                    let r = async {
                        run.open().await?;
                        run.sync(None, &s.window).await
                    }
                    .await;
                    s.finish(run);
                    r.map_err(|e| {
                        s.observe(&e);
                        e.to_string()
                    })
                }
                Err(e) => Err(e.to_string()),
            };
            s.record(
                "paging-idempotent",
                match again {
                    Ok(p)
                        if p.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>() == first =>
                    {
                        Outcome::Pass(format!("the first page again: {} messages", first.len()))
                    }
                    Ok(_) => Outcome::Fail("a fresh run's first page differs".into()),
                    Err(why) => Outcome::Fail(why),
                },
            );
            // Resume from up to RESUMES cursors, spread over the backfill.
            let last = pages.len().saturating_sub(1);
            let step = (last / RESUMES).max(1);
            let mut resumed = 0;
            let mut resume_fail = None;
            for i in (0..last).step_by(step).take(RESUMES) {
                let expected: Vec<String> =
                    pages[i + 1..].iter().flat_map(|p| p.ids.clone()).collect();
                match s.pages(Some(pages[i].cursor.clone())).await {
                    Ok(rest) => {
                        let got: Vec<String> = rest.iter().flat_map(|p| p.ids.clone()).collect();
                        let (mut g, mut e) = (got.clone(), expected.clone());
                        g.sort();
                        e.sort();
                        if g != e {
                            resume_fail = Some(format!(
                                "from the cursor after page {}: {} messages instead of {}",
                                i + 1,
                                got.len(),
                                expected.len()
                            ));
                            break;
                        }
                        resumed += 1;
                    }
                    Err(why) => {
                        resume_fail = Some(why);
                        break;
                    }
                }
            }
            s.record(
                "resume",
                match (resume_fail, resumed) {
                    (Some(why), _) => Outcome::Fail(why),
                    (None, 0) => Outcome::Skip("one page only: no cursor to resume from".into()),
                    (None, n) => {
                        Outcome::Pass(format!("{n} cursors resumed, nothing lost or doubled"))
                    }
                },
            );
            let seen: HashSet<String> = all.into_iter().collect();
            let end = pages.last().map(|p| p.cursor.clone());
            match s.pages(end).await {
                Ok(next) => {
                    let doubled = next
                        .iter()
                        .flat_map(|p| &p.ids)
                        .filter(|id| seen.contains(*id))
                        .count();
                    s.record(
                        "incremental",
                        if doubled == 0 {
                            Outcome::Pass("nothing already seen came again".into())
                        } else {
                            Outcome::Fail(format!("{doubled} messages already seen came again"))
                        },
                    );
                }
                Err(why) => s.record("incremental", Outcome::Fail(why)),
            }
        }
    }

    let typed = if s.untyped.is_empty() {
        Outcome::Pass("every failure was a provider error".into())
    } else {
        Outcome::Fail(s.untyped.join("; "))
    };
    s.record("errors-typed", typed);
    let declared = if s.denials.is_empty() {
        Outcome::Pass("the sandbox refused nothing".into())
    } else {
        Outcome::Fail(format!("refused: {}", s.denials.join("; ")))
    };
    s.record("declared-endpoints-only", declared);
    let limits = if s.limits.is_empty() {
        Outcome::Pass("no call ran out of time or memory".into())
    } else {
        Outcome::Fail(s.limits.join("; "))
    };
    s.record("limits", limits);
    Report {
        plugin: format!("{} {} ({})", d.name, d.version, d.digest),
        checks: s.checks,
    }
}
