//! The requests Mailroom's Exchange connector sends — each checked against
//! Microsoft's EWS schema — and what the emulator answers them: restricted,
//! paged listing; MIME; folder sync in bounded steps and an expired sync
//! state; sending with a copy saved; Basic sign-in by address or Exchange
//! username; POX Autodiscover; throttling.

mod schema;

use ews_emulator::requests::{create_item, envelope, find_item, get_item, standalone, sync};
use ews_emulator::{Emulator, Fault};

const CAROL: &str = "carol@contoso.test";
const PASSWORD: &str = "Exch-Passw0rd";

async fn call(ews: &Emulator, user: &str, password: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(ews.ews_url())
        .basic_auth(user, Some(password))
        .header("content-type", "text/xml; charset=utf-8")
        .body(envelope(body))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open)
        .skip(1)
        .filter_map(|s| s.split(close).next())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connectors_requests_fit_the_schema_and_get_exchanges_answers() {
    let ews = Emulator::start().await.expect("emulator");
    ews.add_user(CAROL, PASSWORD, Some("CONTOSO\\carol"));
    let now = 1_795_000_000;
    let mut ids = Vec::new();
    for i in 0..5 {
        let raw = format!("From: dave@client.test\r\nTo: {CAROL}\r\nSubject: m{i}\r\n\r\nbody\r\n");
        ids.push(ews.deliver(CAROL, "inbox", raw.as_bytes(), now - 86_400 * (5 - i)));
    }
    ews.deliver(
        CAROL,
        "inbox",
        b"Subject: old\r\n\r\nx\r\n",
        now - 400 * 86_400,
    );
    let since = "2026-11-01T00:00:00Z";
    let requests = [
        find_item("inbox", since, 0, 3),
        get_item(&[&ids[0]]),
        sync("inbox", "", 4),
        create_item("RnJvbTogY2Fyb2xAY29udG9zby50ZXN0DQpTdWJqZWN0OiBzZW50DQoNCmhp"),
    ];
    let docs: Vec<String> = requests.iter().map(|r| standalone(r)).collect();
    schema::validate_all(
        &docs
            .iter()
            .map(|d| ("request", d.as_str()))
            .collect::<Vec<_>>(),
    );

    // Sign-in: wrong password 401; the Exchange username works like the address.
    let (code, _) = call(&ews, CAROL, "wrong", &requests[0]).await;
    assert_eq!(code, 401);
    let (code, page) = call(&ews, "CONTOSO\\carol", PASSWORD, &requests[0]).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(r#"TotalItemsInView="5""#)
            && page.contains(r#"IncludesLastItemInRange="false""#),
        "{page}"
    );
    assert_eq!(between(&page, "<t:Subject>", "<").len(), 3);
    let (_, rest) = call(&ews, CAROL, PASSWORD, &find_item("inbox", since, 3, 3)).await;
    assert!(rest.contains(r#"IncludesLastItemInRange="true""#), "{rest}");

    let (_, got) = call(&ews, CAROL, PASSWORD, &requests[1]).await;
    let mime = between(&got, "<t:MimeContent CharacterSet=\"UTF-8\">", "<");
    assert_eq!(mime.len(), 1, "{got}");

    // Sync in steps of at most MaxChangesReturned, then an expired state.
    let (_, first) = call(&ews, CAROL, PASSWORD, &requests[2]).await;
    assert_eq!(between(&first, "<t:Create>", "</t:Create>").len(), 4);
    assert!(
        first.contains("<m:IncludesLastItemInRange>false<"),
        "{first}"
    );
    let state = between(&first, "<m:SyncState>", "<")[0].to_string();
    let (_, second) = call(&ews, CAROL, PASSWORD, &sync("inbox", &state, 4)).await;
    assert_eq!(between(&second, "<t:Create>", "</t:Create>").len(), 2);
    assert!(
        second.contains("<m:IncludesLastItemInRange>true<"),
        "{second}"
    );
    ews.expire_sync_states(CAROL);
    let (_, expired) = call(&ews, CAROL, PASSWORD, &sync("inbox", &state, 4)).await;
    assert!(expired.contains("ErrorInvalidSyncStateData"), "{expired}");

    let (_, sent) = call(&ews, CAROL, PASSWORD, &requests[3]).await;
    assert!(sent.contains(r#"ResponseClass="Success""#), "{sent}");
    assert_eq!(ews.messages(CAROL, "sentitems").len(), 1);

    // Throttling: ErrorServerBusy with the back-off.
    ews.fail_next(1, Fault::Busy(2000));
    let (_, busy) = call(&ews, CAROL, PASSWORD, &requests[0]).await;
    assert!(
        busy.contains("ErrorServerBusy") && busy.contains(">2000<"),
        "{busy}"
    );

    // POX Autodiscover names the EWS URL.
    let request = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{CAROL}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#
    );
    let found = reqwest::Client::new()
        .post(format!("{}/autodiscover/autodiscover.xml", ews.url()))
        .basic_auth(CAROL, Some(PASSWORD))
        .body(request)
        .send()
        .await
        .expect("autodiscover")
        .text()
        .await
        .expect("body");
    assert!(
        found.contains(&format!("<EwsUrl>{}</EwsUrl>", ews.ews_url())),
        "{found}"
    );

    // Everything answered fits the schema too.
    let exchanges = ews.exchanges();
    let answers: Vec<(&str, &str)> = exchanges
        .iter()
        .map(|(_, a)| ("answer", a.as_str()))
        .collect();
    schema::validate_all(&answers);
}
