//! Contacts and deals as a user reads them: the lists, and each record with
//! its "Recent activities" tab (its emails among its other activities,
//! newest first) and its "Emails" tab (conversations, newest first), each
//! showing only what the viewer may see.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use mailroom_crm::Id;
use mailroom_crm::contacts::{self, Contact};
use mailroom_crm::deals::{self, Deal};
use mailroom_crm::sentiment;
use mailroom_crm::timeline::{self, Email, Record};
use serde::Deserialize;

use super::{Nav, PageError, Viewer, render, when};
use crate::AppState;

/// How many entries a list or a tab shows.
const SHOWN: i64 = 200;

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage {
    nav: Nav,
    contacts: Vec<Contact>,
}

#[derive(Template)]
#[template(path = "deals.html")]
struct DealsPage {
    nav: Nav,
    deals: Vec<DealRow>,
}

struct DealRow {
    deal: Deal,
    value: String,
    status: String,
    primary: Option<(Id, String)>,
}

/// Every contact (the first [`SHOWN`]).
pub(crate) async fn contacts(
    State(s): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let contacts = contacts::list(&s.db, SHOWN, 0).await?;
    Ok(render(
        StatusCode::OK,
        &ContactsPage {
            nav: viewer.nav("contacts"),
            contacts,
        },
    ))
}

async fn contact_name(s: &AppState, id: Id) -> Result<(Id, String), PageError> {
    Ok((id, contacts::get(&s.db, id).await?.name))
}

async fn deal_row(s: &AppState, deal: Deal) -> Result<DealRow, PageError> {
    let primary = match deal.primary_contact_id {
        Some(id) => Some(contact_name(s, id).await?),
        None => None,
    };
    Ok(DealRow {
        value: format!("{:.2} {}", deal.value, deal.currency),
        status: format!("{:?}", deal.status),
        primary,
        deal,
    })
}

/// Every deal (the first [`SHOWN`]).
pub(crate) async fn deals(
    State(s): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let mut rows = Vec::new();
    for deal in deals::list(&s.db, SHOWN, 0).await? {
        rows.push(deal_row(&s, deal).await?);
    }
    Ok(render(
        StatusCode::OK,
        &DealsPage {
            nav: viewer.nav("deals"),
            deals: rows,
        },
    ))
}

/// Which tab of a record.
#[derive(Deserialize)]
pub(crate) struct Tab {
    tab: Option<String>,
}

/// One line of "Recent activities".
struct Activity {
    at: String,
    sort: i64,
    what: String,
    /// The email it is, when it is one.
    message: Option<Id>,
    from: String,
}

/// One conversation of the "Emails" tab.
struct Thread {
    subject: String,
    last: String,
    emails: Vec<Line>,
}

struct Line {
    id: Id,
    from: String,
    at: String,
    snippet: String,
}

/// A record's page: what is shown above the tabs, then the chosen tab.
#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    nav: Nav,
    kind: &'static str,
    path: String,
    title: String,
    facts: Vec<(String, String)>,
    links: Vec<(String, String)>,
    emails_tab: bool,
    activities: Vec<Activity>,
    threads: Vec<Thread>,
}

fn snippet(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

fn threads(emails: Vec<Email>) -> Vec<Thread> {
    let mut out: Vec<(String, Thread)> = Vec::new();
    for e in emails {
        let line = Line {
            id: e.id,
            from: e.from.clone(),
            at: when(e.sent_at),
            snippet: snippet(&e.body),
        };
        match out.iter_mut().find(|(key, _)| *key == e.thread) {
            Some((_, t)) => t.emails.push(line),
            None => out.push((
                e.thread.clone(),
                Thread {
                    subject: if e.subject.is_empty() {
                        "(no subject)".into()
                    } else {
                        e.subject.clone()
                    },
                    last: when(e.sent_at),
                    emails: vec![line],
                },
            )),
        }
    }
    out.into_iter().map(|(_, t)| t).collect()
}

/// A record's sentiment as one line, when any of its mail the viewer may
/// see has been scored: `Positive (+0.62), improving (+0.30)`.
async fn sentiment_fact(
    s: &AppState,
    viewer: &Viewer,
    record: Record,
) -> Result<Option<(String, String)>, PageError> {
    let summary = sentiment::summary(&s.db, record, viewer.user.id).await?;
    let (Some(current), Some(label)) = (summary.current, summary.label) else {
        return Ok(None);
    };
    let mut text = format!(
        "{}{} ({current:+.2})",
        label[..1].to_uppercase(),
        &label[1..]
    );
    if let (Some(trend), Some(change)) = (summary.trend, summary.change) {
        text.push_str(&format!(", {trend} ({change:+.2})"));
    }
    text.push_str(&format!(
        " over the last {} scored emails",
        summary.recent.len().min(5)
    ));
    Ok(Some(("Sentiment".into(), text)))
}

/// The chosen tab's content for `record`, as `viewer` may see it.
async fn tab(
    s: &AppState,
    viewer: &Viewer,
    record: Record,
    emails_tab: bool,
    created: (i64, &str),
) -> Result<(Vec<Activity>, Vec<Thread>), PageError> {
    if emails_tab {
        let emails = timeline::emails(&s.db, record, viewer.user.id, SHOWN, 0).await?;
        return Ok((vec![], threads(emails)));
    }
    let mut activities: Vec<Activity> = timeline::activities(&s.db, record, viewer.user.id, SHOWN)
        .await?
        .into_iter()
        .map(|a| Activity {
            at: when(a.at),
            sort: a.at,
            what: a.summary,
            message: Some(a.message_id),
            from: a.from,
        })
        .collect();
    activities.push(Activity {
        at: when(created.0),
        sort: created.0,
        what: created.1.to_string(),
        message: None,
        from: String::new(),
    });
    activities.sort_by_key(|a| std::cmp::Reverse(a.sort));
    Ok((activities, vec![]))
}

/// A contact with its tabs.
pub(crate) async fn contact(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Id>,
    Query(t): Query<Tab>,
) -> Result<Response, PageError> {
    let c = contacts::get(&s.db, id).await?;
    let emails_tab = t.tab.as_deref() == Some("emails");
    let (activities, threads) = tab(
        &s,
        &viewer,
        Record::Contact(id),
        emails_tab,
        (c.created_at, "Contact added to the CRM"),
    )
    .await?;
    Ok(render(
        StatusCode::OK,
        &RecordPage {
            nav: viewer.nav("contacts"),
            kind: "Contact",
            path: format!("/contacts/{id}"),
            title: c.name.clone(),
            facts: [("Email addresses".to_string(), c.emails.join(", "))]
                .into_iter()
                .chain(sentiment_fact(&s, &viewer, Record::Contact(id)).await?)
                .collect(),
            links: vec![],
            emails_tab,
            activities,
            threads,
        },
    ))
}

/// A deal with its tabs.
pub(crate) async fn deal(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Id>,
    Query(t): Query<Tab>,
) -> Result<Response, PageError> {
    let row = deal_row(&s, deals::get(&s.db, id).await?).await?;
    let emails_tab = t.tab.as_deref() == Some("emails");
    let (activities, threads) = tab(
        &s,
        &viewer,
        Record::Deal(id),
        emails_tab,
        (row.deal.created_at, "Deal created"),
    )
    .await?;
    let mut links = Vec::new();
    if let Some((cid, name)) = &row.primary {
        links.push((
            format!("/contacts/{cid}"),
            format!("Primary contact: {name}"),
        ));
    }
    for cid in &row.deal.contact_ids {
        let (cid, name) = contact_name(&s, *cid).await?;
        links.push((format!("/contacts/{cid}"), format!("Contact: {name}")));
    }
    Ok(render(
        StatusCode::OK,
        &RecordPage {
            nav: viewer.nav("deals"),
            kind: "Deal",
            path: format!("/deals/{id}"),
            title: row.deal.title.clone(),
            facts: [
                ("Value".to_string(), row.value.clone()),
                ("Status".to_string(), row.status.clone()),
            ]
            .into_iter()
            .chain(sentiment_fact(&s, &viewer, Record::Deal(id)).await?)
            .collect(),
            links,
            emails_tab,
            activities,
            threads,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(id: Id, thread: &str, subject: &str, at: i64) -> Email {
        Email {
            id,
            subject: subject.into(),
            from: "ann@x.test".into(),
            participants: vec![],
            sent_at: at,
            thread: thread.into(),
            body: "word ".repeat(100),
        }
    }

    #[test]
    fn emails_group_into_conversations_in_the_order_of_their_newest() {
        let grouped = threads(vec![
            email(5, "b", "Re: Beta", 50),
            email(4, "a", "Re: Alpha", 40),
            email(3, "b", "Beta", 30),
            email(1, "a", "Alpha", 10),
        ]);
        let shape: Vec<(&str, Vec<Id>)> = grouped
            .iter()
            .map(|t| (t.subject.as_str(), t.emails.iter().map(|l| l.id).collect()))
            .collect();
        assert_eq!(shape, [("Re: Beta", vec![5, 3]), ("Re: Alpha", vec![4, 1])]);
        assert!(grouped[0].emails[0].snippet.ends_with('…'));
        assert!(grouped[0].emails[0].snippet.chars().count() <= 161);
    }
}
