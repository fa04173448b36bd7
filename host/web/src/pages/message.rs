//! One email in full. Its HTML is never served as it came: `ammonia`
//! keeps only harmless markup (no script, no event handler, no style, no
//! form, no frame), remote images are dropped until the reader asks for
//! them, and the result is shown in a sandboxed frame whose own Content
//! Security Policy forbids script and, until asked, any image but inline
//! ones. Attachments are listed by name, size and type, never served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailroom_crm::Id;
use mailroom_crm::timeline::{self, FullEmail};
use mailroom_mail::Role;
use serde::Deserialize;

use super::{Nav, PageError, Viewer, render, size, when};
use crate::AppState;
use crate::error::ApiError;

/// Markup safe to show, and how many remote images were held back.
pub(crate) fn sanitize(html: &str, remote_images: bool) -> (String, usize) {
    let blocked = Arc::new(AtomicUsize::new(0));
    let counter = blocked.clone();
    let clean = ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank")
        .attribute_filter(move |element, attribute, value| {
            if element == "img" && attribute == "src" && !remote_images {
                counter.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(value.into())
        })
        .clean(html)
        .to_string();
    (clean, blocked.load(Ordering::Relaxed))
}

#[derive(Deserialize)]
pub(crate) struct Images {
    images: Option<String>,
}

impl Images {
    fn shown(&self) -> bool {
        self.images.as_deref() == Some("1")
    }
}

async fn load(s: &AppState, viewer: &Viewer, id: Id) -> Result<FullEmail, PageError> {
    timeline::email(&s.db, id, viewer.user.id)
        .await?
        .ok_or_else(|| {
            PageError(ApiError::not_found(
                "no such email, or it is not yours to see",
            ))
        })
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    nav: Nav,
    id: Id,
    subject: String,
    from: String,
    to: String,
    cc: String,
    at: String,
    attachments: Vec<(String, String, String)>,
    html: bool,
    text: String,
    blocked: usize,
    images: bool,
}

fn names(e: &FullEmail, role: Role) -> String {
    e.email
        .participants
        .iter()
        .filter(|p| p.role == role)
        .map(|p| match &p.name {
            Some(n) => format!("{n} <{}>", p.address),
            None => p.address.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message page.
pub(crate) async fn page(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Id>,
    Query(q): Query<Images>,
) -> Result<Response, PageError> {
    let e = load(&s, &viewer, id).await?;
    let blocked = e.html.as_deref().map_or(0, |h| sanitize(h, false).1);
    let from = names(&e, Role::From);
    Ok(render(
        StatusCode::OK,
        &MessagePage {
            nav: viewer.nav(""),
            id,
            subject: if e.email.subject.is_empty() {
                "(no subject)".into()
            } else {
                e.email.subject.clone()
            },
            from: if from.is_empty() {
                e.email.from.clone()
            } else {
                from
            },
            to: names(&e, Role::To),
            cc: names(&e, Role::Cc),
            at: when(e.email.sent_at),
            attachments: e
                .attachments
                .iter()
                .map(|a| (a.name.clone(), size(a.size), a.content_type.clone()))
                .collect(),
            html: e.html.is_some(),
            text: e.email.body.clone(),
            blocked,
            images: q.shown(),
        },
    ))
}

/// The sanitised HTML body, for the sandboxed frame of the message page.
pub(crate) async fn body(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Id>,
    Query(q): Query<Images>,
) -> Result<Response, PageError> {
    let e = load(&s, &viewer, id).await?;
    let (clean, _) = sanitize(e.html.as_deref().unwrap_or_default(), q.shown());
    let images = if q.shown() {
        "data: https: http:"
    } else {
        "data:"
    };
    let policy = format!(
        "default-src 'none'; img-src {images}; style-src 'unsafe-inline'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    );
    let doc = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Message body</title></head><body>{clean}</body></html>"
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_SECURITY_POLICY, policy),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN".to_string()),
        ],
        doc,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = r#"<p onclick="steal()">Hi <b>there</b></p>
<script>window.owned = 1</script>
<img src="https://tracker.test/pixel.gif" onerror="steal()" alt="logo">
<a href="javascript:steal()">click</a> <a href="https://example.test/">site</a>
<iframe src="https://evil.test/"></iframe><form action="https://evil.test/"><input name=x></form>
<div style="background:url(https://tracker.test/bg.gif)">styled</div>
<svg onload="steal()"><script>steal()</script></svg>"#;

    #[test]
    fn scripts_handlers_frames_forms_and_styles_are_removed() {
        let (clean, _) = sanitize(HOSTILE, true);
        for gone in [
            "<script",
            "onclick",
            "onerror",
            "onload",
            "javascript:",
            "<iframe",
            "<form",
            "<input",
            "style=",
            "steal()",
            "<svg",
        ] {
            assert!(!clean.contains(gone), "`{gone}` survived: {clean}");
        }
        assert!(clean.contains("<b>there</b>"), "{clean}");
        assert!(clean.contains(r#"href="https://example.test/""#), "{clean}");
        assert!(clean.contains("noopener"), "{clean}");
    }

    #[test]
    fn remote_images_wait_until_the_reader_asks() {
        let (blocked, count) = sanitize(HOSTILE, false);
        assert_eq!(count, 1);
        assert!(!blocked.contains("tracker.test"), "{blocked}");
        let (shown, count) = sanitize(HOSTILE, true);
        assert_eq!(count, 0);
        assert!(shown.contains("https://tracker.test/pixel.gif"), "{shown}");
    }
}
