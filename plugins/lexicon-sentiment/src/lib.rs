//! `lexicon-sentiment`: Mailroom's default sentiment analyser, a component
//! of the `mailroom:analyzer` world (`wit/analyzer/`).
//!
//! It reads English and German. It tells the language by its commonest
//! words when the host does not say, drops quoted lines and the signature,
//! and adds up the weights of the words it knows (word stems, so that
//! `enttäusch` covers `enttäuscht` and `Enttäuschung`), turning a word's
//! weight around after a negation (`not`, `nicht`, `kein`) and raising it
//! after an intensifier (`very`, `sehr`). The sum is squashed into [-1, 1].
//! It is small and explainable rather than clever; `benches/sentiment`
//! measures it against a labelled set, and an operator who needs better
//! replaces the component.

mod lexicon;

wit_bindgen::generate!({
    path: "../../wit/analyzer",
    world: "mailroom:analyzer/analyzer",
    generate_all,
});

use exports::mailroom::analyzer::sentiment::{AnalyzerInfo, Guest, Label, Score};

use lexicon::{Language, score};

struct Lexicon;

impl Guest for Lexicon {
    fn info() -> AnalyzerInfo {
        AnalyzerInfo {
            name: "lexicon".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            languages: vec!["en".into(), "de".into()],
        }
    }

    fn analyze(text: String, language: Option<String>) -> Score {
        let language = match language.as_deref() {
            Some("de") => Some(Language::German),
            Some("en") => Some(Language::English),
            _ => None,
        };
        let value = score(&text, language);
        Score {
            value,
            label: if value >= lexicon::POSITIVE_FROM {
                Label::Positive
            } else if value <= -lexicon::POSITIVE_FROM {
                Label::Negative
            } else {
                Label::Neutral
            },
        }
    }
}

export!(Lexicon);
