//! The word lists and the scoring: pure, so that it is tested natively.

/// A language the lexicon reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    German,
}

/// Scores from this far from zero get a positive or negative label.
pub const POSITIVE_FROM: f32 = 0.2;

/// Stems with their weights. A token matches a stem when it equals it, or
/// (for stems of five letters or more) starts with it.
const EN_WORDS: &[(&str, f32)] = &[
    // positive
    ("thank", 2.0),
    ("thanks", 2.0),
    ("great", 2.5),
    ("excellent", 3.0),
    ("happy", 2.5),
    ("glad", 2.0),
    ("pleased", 2.0),
    ("pleasure", 2.0),
    ("delight", 3.0),
    ("love", 2.5),
    ("perfect", 3.0),
    ("wonderful", 3.0),
    ("fantastic", 3.0),
    ("amazing", 3.0),
    ("awesome", 3.0),
    ("good", 1.5),
    ("nice", 1.5),
    ("appreciat", 2.0),
    ("impress", 2.5),
    ("excit", 2.5),
    ("enjoy", 2.0),
    ("success", 2.0),
    ("smooth", 1.5),
    ("helpful", 2.0),
    ("satisf", 2.0),
    ("approv", 1.5),
    ("agree", 1.5),
    ("welcome", 1.5),
    ("congratulat", 3.0),
    ("brilliant", 3.0),
    ("superb", 3.0),
    ("outstanding", 3.0),
    ("recommend", 1.5),
    ("looking forward", 2.0),
    ("forward", 0.5),
    ("keen", 1.5),
    ("eager", 1.5),
    ("valuabl", 2.0),
    ("useful", 1.5),
    ("works well", 2.0),
    ("resolved", 1.5),
    ("fixed", 1.0),
    ("solved", 1.5),
    ("win", 1.5),
    ("signed", 1.0),
    ("confident", 1.5),
    ("trust", 1.5),
    ("reliabl", 1.5),
    ("efficient", 1.5),
    ("fast", 1.0),
    ("quick", 1.0),
    ("easy", 1.5),
    ("best", 2.0),
    ("better", 1.0),
    ("improv", 1.0),
    ("favorable", 2.0),
    ("favourable", 2.0),
    ("positive", 2.0),
    ("yes", 0.5),
    ("fine", 0.5),
    ("well done", 2.5),
    ("kudos", 2.5),
    ("grateful", 2.5),
    ("exceed", 2.0),
    ("on time", 1.0),
    ("love", 2.5),
    ("fits", 1.0),
    ("convinc", 1.5),
    ("thrill", 3.0),
    ("proceed", 1.0),
    ("go ahead", 1.5),
    ("on board", 1.5),
    ("deal", 0.5),
    // negative
    ("disappoint", -3.0),
    ("unhappy", -2.5),
    ("angry", -3.0),
    ("frustrat", -3.0),
    ("annoy", -2.5),
    ("terrible", -3.0),
    ("awful", -3.0),
    ("horrible", -3.0),
    ("bad", -2.0),
    ("poor", -2.0),
    ("worst", -3.0),
    ("worse", -2.0),
    ("problem", -1.5),
    ("issue", -1.0),
    ("broken", -2.0),
    ("fail", -2.0),
    ("error", -1.5),
    ("bug", -1.0),
    ("crash", -2.0),
    ("delay", -1.5),
    ("late", -1.0),
    ("slow", -1.5),
    ("complain", -2.5),
    ("unacceptabl", -3.0),
    ("cancel", -2.0),
    ("refund", -1.5),
    ("expensive", -1.5),
    ("overpriced", -2.0),
    ("too high", -1.5),
    ("concern", -1.5),
    ("worr", -1.5),
    ("unfortunate", -2.0),
    ("sadly", -2.0),
    ("sorry", -1.0),
    ("regret", -2.0),
    ("reject", -2.0),
    ("declin", -1.5),
    ("not interested", -2.5),
    ("waste", -2.5),
    ("useless", -3.0),
    ("confus", -1.5),
    ("difficult", -1.5),
    ("hard", -0.5),
    ("mistake", -2.0),
    ("wrong", -2.0),
    ("missing", -1.5),
    ("lost", -1.5),
    ("ignor", -2.0),
    ("unresponsive", -2.5),
    ("no response", -2.0),
    ("escalat", -2.0),
    ("threat", -2.0),
    ("lawyer", -2.0),
    ("legal action", -3.0),
    ("outage", -2.0),
    ("downtime", -2.0),
    ("unreliabl", -2.5),
    ("mess", -2.0),
    ("ridiculous", -3.0),
    ("hate", -3.0),
    ("upset", -2.5),
    ("dissatisf", -3.0),
    ("pointless", -2.5),
    ("switch to", -1.0),
    ("competitor", -1.0),
    ("disaster", -3.0),
    ("fed up", -3.0),
    ("last time", -1.0),
    ("still not", -1.5),
    ("again", -0.5),
    ("urgent", -0.5),
    ("penalt", -2.0),
    ("breach", -2.0),
    ("terminat", -2.0),
];

const DE_WORDS: &[(&str, f32)] = &[
    // positive
    ("danke", 2.0),
    ("dank", 2.0),
    ("vielen dank", 2.5),
    ("toll", 2.5),
    ("super", 2.5),
    ("klasse", 2.5),
    ("prima", 2.5),
    ("hervorragend", 3.0),
    ("ausgezeichnet", 3.0),
    ("großartig", 3.0),
    ("grossartig", 3.0),
    ("wunderbar", 3.0),
    ("perfekt", 3.0),
    ("gut", 1.5),
    ("freu", 2.5),
    ("froh", 2.0),
    ("zufrieden", 2.0),
    ("begeister", 3.0),
    ("überzeug", 2.0),
    ("gefällt", 2.0),
    ("gefallen", 1.5),
    ("schön", 1.5),
    ("hilfreich", 2.0),
    ("nützlich", 1.5),
    ("erfolg", 2.0),
    ("reibungslos", 2.0),
    ("schnell", 1.0),
    ("einfach", 1.0),
    ("zuverlässig", 2.0),
    ("empfehl", 1.5),
    ("einverstanden", 1.5),
    ("zustimm", 1.5),
    ("gerne", 1.5),
    ("gern", 1.0),
    ("beste", 2.0),
    ("besser", 1.0),
    ("verbesser", 1.0),
    ("gelöst", 1.5),
    ("behoben", 1.5),
    ("pünktlich", 1.0),
    ("dankbar", 2.5),
    ("glücklich", 2.5),
    ("spitze", 2.5),
    ("genial", 3.0),
    ("lob", 2.0),
    ("gratulier", 3.0),
    ("glückwunsch", 3.0),
    ("vertrauen", 1.5),
    ("unterschrieben", 1.0),
    ("zusage", 1.5),
    ("freundlich", 1.5),
    ("angenehm", 1.5),
    ("positiv", 2.0),
    ("wertvoll", 2.0),
    ("ja", 0.5),
    ("passt", 1.0),
    ("weiter so", 2.5),
    ("übertroffen", 2.5),
    ("effizient", 1.5),
    ("loslegen", 1.5),
    ("vorfreude", 2.5),
    ("gespannt", 1.0),
    ("überzeugt", 2.0),
    // negative
    ("enttäusch", -3.0),
    ("unzufrieden", -3.0),
    ("ärger", -2.5),
    ("verärger", -3.0),
    ("frustr", -3.0),
    ("schlecht", -2.0),
    ("schlimm", -2.5),
    ("furchtbar", -3.0),
    ("schrecklich", -3.0),
    ("katastroph", -3.0),
    ("mangelhaft", -2.5),
    ("problem", -1.5),
    ("fehler", -1.5),
    ("defekt", -2.0),
    ("kaputt", -2.0),
    ("ausfall", -2.0),
    ("störung", -2.0),
    ("verzöger", -1.5),
    ("verspät", -1.5),
    ("langsam", -1.5),
    ("beschwer", -2.5),
    ("reklamation", -2.0),
    ("inakzeptabel", -3.0),
    ("unakzeptabel", -3.0),
    ("kündig", -2.0),
    ("storn", -2.0),
    ("teuer", -1.5),
    ("zu hoch", -1.5),
    ("bedenken", -1.5),
    ("sorge", -1.5),
    ("leider", -1.5),
    ("bedauer", -2.0),
    ("ablehn", -2.0),
    ("abgelehnt", -2.0),
    ("kein interesse", -2.5),
    ("verschwend", -2.5),
    ("nutzlos", -3.0),
    ("unbrauchbar", -3.0),
    ("verwirr", -1.5),
    ("schwierig", -1.5),
    ("falsch", -2.0),
    ("fehlt", -1.5),
    ("verloren", -1.5),
    ("ignorier", -2.0),
    ("keine antwort", -2.0),
    ("eskal", -2.0),
    ("anwalt", -2.0),
    ("rechtliche schritte", -3.0),
    ("unzuverlässig", -2.5),
    ("chaos", -2.5),
    ("lächerlich", -3.0),
    ("sauer", -2.5),
    ("wütend", -3.0),
    ("mist", -2.5),
    ("zumutung", -3.0),
    ("wettbewerb", -1.0),
    ("konkurrenz", -1.0),
    ("schon wieder", -2.0),
    ("immer noch nicht", -2.0),
    ("noch immer", -1.0),
    ("mahnung", -2.0),
    ("vertragsstrafe", -2.5),
    ("schade", -2.0),
    ("nervig", -2.5),
    ("unmöglich", -2.0),
];

const EN_NEGATORS: &[&str] = &[
    "not", "no", "never", "don't", "doesn't", "didn't", "isn't", "wasn't", "aren't", "won't",
    "can't", "cannot", "hardly", "without", "nothing",
];
const DE_NEGATORS: &[&str] = &[
    "nicht", "kein", "keine", "keinen", "keinem", "keiner", "nie", "niemals", "ohne", "kaum",
    "nichts",
];
const EN_INTENSIFIERS: &[&str] = &[
    "very",
    "really",
    "extremely",
    "so",
    "truly",
    "absolutely",
    "incredibly",
    "highly",
    "totally",
    "completely",
    "most",
];
const DE_INTENSIFIERS: &[&str] = &[
    "sehr",
    "wirklich",
    "äußerst",
    "absolut",
    "total",
    "extrem",
    "echt",
    "besonders",
    "wahnsinnig",
    "höchst",
    "völlig",
    "so",
];
const EN_COMMON: &[&str] = &[
    "the", "and", "is", "you", "we", "to", "of", "for", "this", "that", "with", "it", "are", "was",
    "your", "our", "have", "please",
];
const DE_COMMON: &[&str] = &[
    "der", "die", "das", "und", "ist", "sie", "wir", "zu", "nicht", "mit", "ein", "eine", "für",
    "ihr", "ihre", "uns", "haben", "bitte", "auf", "sehr",
];

/// The words of `text` that are the sender's: quoted lines (`>`) and
/// everything after a signature line (`-- `) or a reply header are dropped.
fn own_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed == "--" || trimmed == "-- " {
            break;
        }
        let t = trimmed.trim_start();
        if t.starts_with('>') {
            continue;
        }
        if (t.starts_with("On ") && t.ends_with("wrote:"))
            || (t.starts_with("Am ") && t.ends_with("schrieb:"))
        {
            break;
        }
        for w in t.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’')) {
            if !w.is_empty() {
                words.push(w.to_lowercase().replace('’', "'"));
            }
        }
    }
    words
}

/// English or German, by which language's commonest words occur more.
pub fn detect(words: &[String]) -> Language {
    let count = |list: &[&str]| words.iter().filter(|w| list.contains(&w.as_str())).count();
    if count(DE_COMMON) > count(EN_COMMON) {
        Language::German
    } else {
        Language::English
    }
}

fn matches(stem: &str, word: &str) -> bool {
    word == stem || (stem.chars().count() >= 5 && word.starts_with(stem))
}

/// The score of `text` in [-1, 1].
pub fn score(text: &str, language: Option<Language>) -> f32 {
    let words = own_words(text);
    if words.is_empty() {
        return 0.0;
    }
    let language = language.unwrap_or_else(|| detect(&words));
    let (lexicon, negators, intensifiers) = match language {
        Language::English => (EN_WORDS, EN_NEGATORS, EN_INTENSIFIERS),
        Language::German => (DE_WORDS, DE_NEGATORS, DE_INTENSIFIERS),
    };
    let mut sum = 0.0f32;
    let mut negate_left = 0usize;
    let mut boost = 1.0f32;
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        if negators.contains(&word) {
            negate_left = 3;
            i += 1;
            continue;
        }
        if intensifiers.contains(&word) {
            boost = 1.5;
            i += 1;
            continue;
        }
        // A two-word entry first ("looking forward", "kein interesse"), then one word.
        let pair = words.get(i + 1).map(|next| format!("{word} {next}"));
        let hit = pair
            .as_deref()
            .and_then(|p| {
                lexicon
                    .iter()
                    .find(|(stem, _)| stem.contains(' ') && p == *stem)
            })
            .map(|(_, w)| (*w, 2))
            .or_else(|| {
                lexicon
                    .iter()
                    .filter(|(stem, _)| !stem.contains(' '))
                    .find(|(stem, _)| matches(stem, word))
                    .map(|(_, w)| (*w, 1))
            });
        match hit {
            Some((weight, len)) => {
                let mut w = weight * boost;
                if negate_left > 0 {
                    // "not bad" is mildly good; "not good" is bad.
                    w = -w * if weight < 0.0 { 0.5 } else { 0.8 };
                    negate_left = 0;
                }
                sum += w;
                boost = 1.0;
                i += len;
            }
            None => {
                negate_left = negate_left.saturating_sub(1);
                i += 1;
            }
        }
    }
    // As VADER does: the sum squashed into (-1, 1).
    let value = sum / (sum * sum + 15.0).sqrt();
    value.clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_praise_and_complaint_in_both_languages() {
        assert!(score("Thank you, the demo was excellent!", None) > POSITIVE_FROM);
        assert!(score("We are very disappointed with the delays.", None) < -POSITIVE_FROM);
        assert!(score("Vielen Dank, das Angebot gefällt uns sehr gut.", None) > POSITIVE_FROM);
        assert!(score("Wir sind leider sehr enttäuscht von der Lieferung.", None) < -POSITIVE_FROM);
        assert!(score("Please find the invoice attached.", None).abs() < POSITIVE_FROM);
    }

    #[test]
    fn negation_turns_a_word_around() {
        assert!(score("This is not good at all.", None) < 0.0);
        assert!(score("Das ist nicht gut.", Some(Language::German)) < 0.0);
    }

    #[test]
    fn quoted_text_and_signatures_do_not_count() {
        let reply = "Sounds fine.\n\nOn Mon, Ann wrote:\n> This is terrible and unacceptable.\n";
        assert!(score(reply, None) >= 0.0);
        let signed = "See the attached report.\n-- \nBest regards, happy to help";
        assert_eq!(score(signed, None), 0.0);
    }

    #[test]
    fn tells_german_from_english() {
        let words = own_words("Wir haben die Unterlagen für Sie und bitte um Rückmeldung");
        assert_eq!(detect(&words), Language::German);
        assert_eq!(
            detect(&own_words("We have the documents for you")),
            Language::English
        );
    }
}
