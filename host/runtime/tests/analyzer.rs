//! Sentiment analyser components in the runtime: the default analyser
//! loads and scores; a component of another contract is refused.

use mailroom_runtime::{Runtime, RuntimeConfig, SentimentLabel};
use mailroom_test_support::plugin_bytes;

#[tokio::test]
async fn the_default_analyser_loads_and_scores_and_a_provider_is_not_an_analyser() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let analyzer = runtime
        .load_analyzer(&plugin_bytes("lexicon-sentiment"))
        .await
        .expect("the default analyser loads");
    assert_eq!(analyzer.info().name, "lexicon");
    assert_eq!(analyzer.info().languages, ["en", "de"]);
    assert!(analyzer.info().digest.starts_with("sha256:"));
    let texts = [
        ("Thank you, the demo was excellent!".to_string(), None),
        (
            "Wir sind sehr enttäuscht.".to_string(),
            Some("de".to_string()),
        ),
        ("Please find the invoice attached.".to_string(), None),
        (String::new(), None),
    ];
    let scores = analyzer.analyze(&runtime, &texts).await.unwrap();
    let labels: Vec<SentimentLabel> = scores.iter().map(|s| s.label).collect();
    assert_eq!(
        labels,
        [
            SentimentLabel::Positive,
            SentimentLabel::Negative,
            SentimentLabel::Neutral,
            SentimentLabel::Neutral
        ]
    );
    assert!(scores.iter().all(|s| (-1.0..=1.0).contains(&s.value)));

    let err = runtime
        .load_analyzer(&plugin_bytes("scripted"))
        .await
        .err()
        .expect("a provider plugin is not an analyser");
    assert!(
        err.to_string().contains("not a sentiment analyser"),
        "{err}"
    );
    let err = runtime
        .load_analyzer(b"not wasm at all")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a WebAssembly file"), "{err}");
}
