//! The emulator held to Google's description of the Gmail API: every
//! emulated route, method and parameter exists in the discovery document
//! (`gmail.v1.json`), and every body it answers (and the send request the
//! plugin makes) validates against the document's schemas.

use gmail_emulator::{COMMON_PARAMS, Emulator, ROUTES};
use serde_json::Value;

fn discovery() -> Value {
    let text = include_str!("../gmail.v1.json");
    serde_json::from_str(text).expect("the discovery document is JSON")
}

/// Every method of the document, by id.
fn methods(resource: &Value, out: &mut Vec<Value>) {
    if let Some(map) = resource["methods"].as_object() {
        out.extend(map.values().cloned());
    }
    if let Some(map) = resource["resources"].as_object() {
        for r in map.values() {
            methods(r, out);
        }
    }
}

fn method(doc: &Value, id: &str) -> Value {
    let mut all = Vec::new();
    methods(doc, &mut all);
    all.into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the discovery document"))
}

/// Check `value` against a discovery schema; collect what does not fit.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(name) = schema["$ref"].as_str() {
        return check(doc, &doc["schemas"][name], value, at, errors);
    }
    let mut fail = |why: String| errors.push(format!("{at}: {why}"));
    match schema["type"].as_str() {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return fail(format!("expected an object, got {value}"));
            };
            for (key, v) in object {
                let here = format!("{at}.{key}");
                match schema["properties"].get(key) {
                    Some(p) => check(doc, p, v, &here, errors),
                    None => match schema.get("additionalProperties") {
                        Some(p) => check(doc, p, v, &here, errors),
                        None => errors.push(format!("{here}: not a property of the schema")),
                    },
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    check(doc, &schema["items"], v, &format!("{at}[{i}]"), errors);
                }
            }
            None => fail(format!("expected an array, got {value}")),
        },
        Some("string") => match value.as_str() {
            Some(s) => {
                let format = schema["format"].as_str().unwrap_or("");
                if matches!(format, "int64" | "uint64") && s.parse::<i128>().is_err() {
                    fail(format!("`{s}` is not a {format} in a string"));
                }
                if let Some(values) = schema["enum"].as_array()
                    && !values.iter().any(|v| v == s)
                {
                    fail(format!("`{s}` is not one of {values:?}"));
                }
            }
            None => fail(format!("expected a string, got {value}")),
        },
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                fail(format!("expected an integer, got {value}"));
            }
        }
        Some("boolean") => {
            if !value.is_boolean() {
                fail(format!("expected a boolean, got {value}"));
            }
        }
        other => fail(format!("schema type {other:?} not handled by this check")),
    }
}

#[test]
fn every_route_and_parameter_is_in_the_discovery_document() {
    let doc = discovery();
    let common = doc["parameters"].as_object().expect("top-level parameters");
    for name in COMMON_PARAMS {
        assert!(
            common.contains_key(*name),
            "common parameter {name} is not Google's"
        );
    }
    for route in ROUTES {
        let m = method(&doc, route.id);
        assert_eq!(m["httpMethod"], route.method, "{}", route.id);
        assert_eq!(m["flatPath"], route.path, "{}", route.id);
        assert_eq!(doc["servicePath"], "", "paths are under the root URL");
        for p in route.params {
            assert!(
                m["parameters"].get(*p).is_some(),
                "{}: `{p}` is not a parameter of the method",
                route.id
            );
        }
        for (name, spec) in m["parameters"].as_object().into_iter().flatten() {
            if spec["required"] == true {
                assert!(
                    route.params.contains(&name.as_str()),
                    "{}: the emulator ignores the required `{name}`",
                    route.id
                );
            }
        }
    }
    // The values the emulator (and the plugin) use are among Google's.
    let get = method(&doc, "gmail.users.messages.get");
    for format in ["raw", "minimal"] {
        assert!(
            get["parameters"]["format"]["enum"]
                .as_array()
                .is_some_and(|e| e.iter().any(|v| v == format))
        );
    }
    let history = method(&doc, "gmail.users.history.list");
    for t in ["messageAdded", "messageDeleted"] {
        assert!(
            history["parameters"]["historyTypes"]["enum"]
                .as_array()
                .is_some_and(|e| e.iter().any(|v| v == t))
        );
    }
}

#[tokio::test]
async fn every_answer_fits_the_documented_schema() {
    let doc = discovery();
    let emulator = Emulator::start().await.expect("emulator");
    let me = "ann@example.com";
    let token = emulator.access_token(me);
    let raw = b"From: bob@example.net\r\nTo: ann@example.com\r\nSubject: hi\r\n\r\nhello\r\n";
    let kept = emulator.deliver(me, raw, &["INBOX", "UNREAD"], 1_780_000_000);
    emulator.deliver(me, raw, &["SPAM"], 1_780_000_100);
    let gone = emulator.deliver(me, raw, &["INBOX"], 1_780_000_200);
    let http = reqwest::Client::new();
    let base = format!("{}/gmail/v1/users/me", emulator.url());
    let call = |method: reqwest::Method, url: String, body: Option<Value>| {
        let mut request = http.request(method, url).bearer_auth(&token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            let json: Value = response.json().await.expect("JSON");
            assert!(status.is_success(), "{status}: {json}");
            json
        }
    };
    let mut errors = Vec::new();
    // `request of ID` checks a request body, `ID` the method's answer.
    let mut validate = |id: &str, value: &Value| {
        let schema = match id.strip_prefix("request of ") {
            Some(m) => method(&doc, m)["request"].clone(),
            None => method(&doc, id)["response"].clone(),
        };
        check(&doc, &schema, value, id, &mut errors);
    };

    let profile = call(reqwest::Method::GET, format!("{base}/profile"), None).await;
    validate("gmail.users.getProfile", &profile);
    let start = profile["historyId"]
        .as_str()
        .expect("historyId")
        .to_string();

    let list = call(
        reqwest::Method::GET,
        format!("{base}/messages?q=after:1779999999&includeSpamTrash=false&maxResults=1"),
        None,
    )
    .await;
    validate("gmail.users.messages.list", &list);
    assert_eq!(list["messages"][0]["id"], gone, "newest first");
    assert_eq!(list["resultSizeEstimate"], 2, "spam left out");
    let token_2 = list["nextPageToken"].as_str().expect("a second page");
    let rest = call(
        reqwest::Method::GET,
        format!("{base}/messages?q=after:1779999999&maxResults=1&pageToken={token_2}"),
        None,
    )
    .await;
    assert_eq!(rest["messages"][0]["id"], kept);

    for format in ["raw", "minimal"] {
        let m = call(
            reqwest::Method::GET,
            format!("{base}/messages/{kept}?format={format}"),
            None,
        )
        .await;
        validate("gmail.users.messages.get", &m);
        assert_eq!(m["raw"].is_string(), format == "raw");
    }

    let sent_request = serde_json::json!({ "raw": "RnJvbTogYW5uQGV4YW1wbGUuY29tDQoNCmhp" });
    validate("request of gmail.users.messages.send", &sent_request);
    let sent = call(
        reqwest::Method::POST,
        format!("{base}/messages/send"),
        Some(sent_request),
    )
    .await;
    validate("gmail.users.messages.send", &sent);

    assert!(emulator.delete(me, &gone));
    let history = call(
        reqwest::Method::GET,
        format!("{base}/history?startHistoryId={start}&historyTypes=messageAdded&historyTypes=messageDeleted"),
        None,
    )
    .await;
    validate("gmail.users.history.list", &history);
    let records = history["history"].as_array().expect("records");
    assert!(
        records
            .iter()
            .any(|r| r["messagesAdded"][0]["message"]["id"] == sent["id"])
    );
    assert!(
        records
            .iter()
            .any(|r| r["messagesDeleted"][0]["message"]["id"] == gone)
    );
    assert!(
        errors.is_empty(),
        "answers that do not fit Google's schemas:\n{}",
        errors.join("\n")
    );
}
