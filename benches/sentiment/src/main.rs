//! `make bench-sentiment`: how often the default analyser
//! (`plugins/lexicon-sentiment`, run as the host runs it) gives the label a
//! person gave, on the labelled sentences in `benches/sentiment/data`
//! (English and German, 210 each), beside the accuracy of always answering
//! the most frequent label. The analyser is not told the language, as in
//! production. Prints a confusion table per language, then one line per
//! figure.

use std::collections::BTreeMap;
use std::path::Path;

use mailroom_runtime::{Runtime, RuntimeConfig, SentimentLabel};

/// One labelled sentence.
struct Labelled {
    label: String,
    text: String,
}

fn read(path: &Path) -> Vec<Labelled> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (label, text) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("{}: `{l}` has no tab", path.display()));
            Labelled {
                label: label.to_string(),
                text: text.to_string(),
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let bytes = mailroom_test_support::plugin_bytes("lexicon-sentiment");
    let analyzer = runtime
        .load_analyzer(&bytes)
        .await
        .expect("the analyser loads");
    let info = analyzer.info();
    println!("analyser: {} {} ({})", info.name, info.version, info.digest);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut lines = Vec::new();
    for language in ["en", "de"] {
        let set = read(&data.join(format!("{language}.tsv")));
        let texts: Vec<(String, Option<String>)> =
            set.iter().map(|l| (l.text.clone(), None)).collect();
        let scores = analyzer.analyze(&runtime, &texts).await.expect("scored");
        let mut confusion: BTreeMap<(String, &str), usize> = BTreeMap::new();
        let mut right = 0;
        for (l, s) in set.iter().zip(&scores) {
            let said = s.label.as_str();
            *confusion.entry((l.label.clone(), said)).or_default() += 1;
            if said == l.label {
                right += 1;
            }
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &set {
            *counts.entry(l.label.as_str()).or_default() += 1;
        }
        let majority = counts.values().max().copied().unwrap_or(0);
        println!(
            "{language}: {} sentences; rows: the label given, columns: the analyser's",
            set.len()
        );
        let labels = [
            SentimentLabel::Positive,
            SentimentLabel::Neutral,
            SentimentLabel::Negative,
        ]
        .map(|l| l.as_str());
        println!(
            "  {:>10} {:>9} {:>9} {:>9}",
            "", labels[0], labels[1], labels[2]
        );
        for given in labels {
            print!("  {given:>10}");
            for said in labels {
                print!(
                    " {:>9}",
                    confusion
                        .get(&(given.to_string(), said))
                        .copied()
                        .unwrap_or(0)
                );
            }
            println!();
        }
        let pct = |n: usize| 100.0 * n as f64 / set.len() as f64;
        lines.push(format!("lexicon-{language}: {:.1} % accuracy", pct(right)));
        lines.push(format!(
            "majority-{language}: {:.1} % accuracy",
            pct(majority)
        ));
    }
    for line in lines {
        println!("{line}");
    }
}
