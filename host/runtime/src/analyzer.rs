//! Sentiment analyser components (`mailroom:analyzer`, `wit/analyzer/`):
//! compiled and checked once, then each batch of texts scored in a fresh
//! instance under the runtime's limits. An analyser gets nothing but the
//! text: a component that imports any network interface or anything of
//! Mailroom's is refused at load, and its sandbox grants no endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use mailroom_contract::ANALYZER_V1;
use mailroom_contract::analyzer_v1::AnalyzerPre;
use mailroom_contract::analyzer_v1::sentiment::{Label, Score};
use mailroom_net::Audit;
use mailroom_policy::{AccountPolicy, OperatorGrant, Secrets};
use wasmtime::Store;
use wasmtime::component::types::ComponentItem;

use crate::cache::first_line;
use crate::engine::Runtime;
use crate::error::{CallError, LoadError};
use crate::state::RunState;

/// Imports an analyser may not have: it must not reach the network or the host.
const REFUSED_IMPORTS: &[&str] = &["wasi:http/", "wasi:sockets/", "mailroom:provider/"];

/// What an operator sees of an analyser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzerInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The languages it reads (ISO 639-1).
    pub languages: Vec<String>,
    /// `sha256:` and the hex digest of the component file.
    pub digest: String,
}

/// How one text reads: a value in [-1, 1] and a label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sentiment {
    /// From -1.0 (negative) to 1.0 (positive).
    pub value: f32,
    /// The analyser's label.
    pub label: SentimentLabel,
}

/// The three labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentimentLabel {
    /// Positive.
    Positive,
    /// Neutral.
    Neutral,
    /// Negative.
    Negative,
}

impl SentimentLabel {
    /// `positive`, `neutral` or `negative`.
    pub fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Positive => "positive",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Negative => "negative",
        }
    }
}

/// A loaded analyser.
pub struct Analyzer {
    info: AnalyzerInfo,
    pre: AnalyzerPre<RunState>,
}

impl Runtime {
    /// Compile and check an analyser component, and ask it what it is.
    pub async fn load_analyzer(self: &Arc<Self>, bytes: &[u8]) -> Result<Arc<Analyzer>, LoadError> {
        let (component, digest) = self.compile(bytes)?;
        let ty = component.component_type();
        if !ty
            .exports(&self.engine)
            .any(|(name, _)| name.starts_with("mailroom:analyzer/sentiment@1."))
        {
            return Err(LoadError::WrongContract(format!(
                "not a sentiment analyser: it does not export {ANALYZER_V1}'s `sentiment` interface"
            )));
        }
        for (name, item) in ty.imports(&self.engine) {
            if matches!(item.ty, ComponentItem::ComponentInstance(_))
                && REFUSED_IMPORTS.iter().any(|p| name.starts_with(p))
            {
                return Err(LoadError::Link(format!(
                    "an analyser gets no network and nothing of the host's, but this one imports `{name}`"
                )));
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(AnalyzerPre::new)
            .map_err(|e| LoadError::Link(first_line(&e)))?;
        let mut analyzer = Analyzer {
            info: AnalyzerInfo {
                name: String::new(),
                version: String::new(),
                languages: vec![],
                digest,
            },
            pre,
        };
        let mut store = analyzer.store(self);
        let instance = analyzer
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::InfoFailed(first_line(&e)))?;
        let info = instance
            .mailroom_analyzer_sentiment()
            .call_info(&mut store)
            .await
            .map_err(|e| LoadError::InfoFailed(first_line(&e)))?;
        if info.name.trim().is_empty() {
            return Err(LoadError::BadInfo("the analyser has no name".into()));
        }
        analyzer.info.name = info.name;
        analyzer.info.version = info.version;
        analyzer.info.languages = info.languages;
        Ok(Arc::new(analyzer))
    }
}

impl Analyzer {
    /// What it is.
    pub fn info(&self) -> &AnalyzerInfo {
        &self.info
    }

    /// A store whose sandbox grants nothing.
    fn store(&self, runtime: &Runtime) -> Store<RunState> {
        let policy = AccountPolicy::new(&[], &OperatorGrant::default(), &BTreeMap::new())
            .map(Arc::new)
            .unwrap_or_else(|_| unreachable!("a policy of no templates always builds"));
        let state = RunState::new(
            runtime,
            policy,
            vec![],
            BTreeMap::new(),
            Arc::new(Secrets::new()),
            Audit::default(),
        );
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        crate::run::yield_each_tick(&mut store);
        crate::run::arm(&mut store, runtime.limits.call_timeout);
        store
    }

    /// Score texts (each with its language, when known) in one fresh
    /// instance. A trap, a timeout or a value outside [-1, 1] fails the batch.
    pub async fn analyze(
        &self,
        runtime: &Runtime,
        texts: &[(String, Option<String>)],
    ) -> Result<Vec<Sentiment>, CallError> {
        let mut store = self.store(runtime);
        let timeout = runtime.limits.call_timeout;
        let work = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let mut out = Vec::with_capacity(texts.len());
            for (text, language) in texts {
                crate::run::arm(&mut store, timeout);
                let score: Score = instance
                    .mailroom_analyzer_sentiment()
                    .call_analyze(&mut store, text, language.as_deref())
                    .await?;
                out.push(score);
            }
            wasmtime::Result::Ok(out)
        };
        let scores = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(scores)) => scores,
            Ok(Err(e)) => return Err(CallError::Crashed(first_line(&e))),
            Err(_) => return Err(CallError::Timeout(timeout)),
        };
        scores
            .into_iter()
            .map(|s| {
                if !(-1.0..=1.0).contains(&s.value) {
                    return Err(CallError::Crashed(format!(
                        "the analyser scored {} (outside -1 to 1)",
                        s.value
                    )));
                }
                Ok(Sentiment {
                    value: s.value,
                    label: match s.label {
                        Label::Positive => SentimentLabel::Positive,
                        Label::Neutral => SentimentLabel::Neutral,
                        Label::Negative => SentimentLabel::Negative,
                    },
                })
            })
            .collect()
    }
}
