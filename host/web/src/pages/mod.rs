//! The web pages people use: sign-in, Connected emails, contact and deal
//! records with their Recent activities and Emails tabs, a message in full
//! (its HTML sanitised and its remote images held back), and the operators'
//! Plugins page.
//!
//! Pages are rendered on the server from `askama` templates (escaped by
//! default) and work with a keyboard and a screen reader; a little script
//! (`/assets/app.js`) saves dropdowns on change and refreshes sync status.
//! Every page needs a session, and every form carries the session's CSRF
//! token. Like the API, this layer only validates, authorises and
//! translates: it calls the same operations the JSON handlers call and
//! writes no table of its own.

mod emails;
mod login;
mod message;
mod plugins;
mod presets;
mod records;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mailroom_crm::users::{Role, User};

use crate::AppState;
use crate::error::ApiError;

/// The pages and their assets.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/emails") }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/emails", get(emails::page))
        .route("/emails/connect", post(emails::connect))
        .route(
            "/emails/connect/{provider}/oauth",
            post(emails::connect_oauth),
        )
        .route("/emails/presets", get(presets::lookup))
        .route("/emails/{id}/settings", post(emails::settings))
        .route("/emails/{id}/reauth", post(emails::reauth))
        .route("/emails/{id}/disconnect", post(emails::disconnect))
        .route("/contacts", get(records::contacts))
        .route("/contacts/{id}", get(records::contact))
        .route("/deals", get(records::deals))
        .route("/deals/{id}", get(records::deal))
        .route("/messages/{id}", get(message::page))
        .route("/messages/{id}/body", get(message::body))
        .route(
            "/plugins",
            get(plugins::page)
                .post(plugins::install)
                .layer(DefaultBodyLimit::max(crate::plugins::FILE_LIMIT)),
        )
        .route("/plugins/{name}/rollback", post(plugins::rollback))
        .route("/plugins/{name}/approve", post(plugins::approve))
        .route("/plugins/{name}/remove", post(plugins::remove))
        .route(
            "/assets/app.css",
            get(|| asset("text/css", include_str!("../../assets/app.css"))),
        )
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript", include_str!("../../assets/app.js"))),
        )
        .layer(axum::middleware::map_response(security_headers))
}

async fn asset(kind: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

/// What every page sets unless it set its own: no inline script, no framing,
/// no referrer, no sniffing, nothing cached.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let defaults: [(HeaderName, &str); 5] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

/// The signed-in person a page is for, with the token their forms carry.
pub(crate) struct Viewer {
    user: User,
    csrf: String,
}

impl Viewer {
    /// Refuse a form that does not carry this session's token.
    fn check(&self, presented: &str) -> Result<(), PageError> {
        if presented.is_empty() || presented != self.csrf {
            return Err(PageError(ApiError::forbidden(
                "this form has expired or did not come from Mailroom: reload the page and try again",
            )));
        }
        Ok(())
    }

    fn nav(&self, current: &'static str) -> Nav {
        Nav {
            name: if self.user.name.is_empty() {
                self.user.email.clone()
            } else {
                self.user.name.clone()
            },
            admin: self.user.role == Role::Admin,
            csrf: self.csrf.clone(),
            current,
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match crate::auth::session(state, &parts.headers).await {
            Ok(Some((user, token))) => Ok(Viewer {
                user,
                csrf: crate::auth::csrf_token(&token),
            }),
            Ok(None) => {
                let uri = OriginalUri::from_request_parts(parts, state)
                    .await
                    .map(|u| u.0.to_string())
                    .unwrap_or_else(|_| "/".into());
                let next: String = form_urlencoded::byte_serialize(uri.as_bytes()).collect();
                Err(Redirect::to(&format!("/login?next={next}")).into_response())
            }
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

/// A form that carries nothing but the session's token: a confirmation.
#[derive(serde::Deserialize)]
pub(crate) struct Confirmed {
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// The header of every signed-in page.
pub(crate) struct Nav {
    name: String,
    admin: bool,
    csrf: String,
    current: &'static str,
}

/// A page that could not be shown: a short page saying why.
pub(crate) struct PageError(ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    why: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, why) = self.0.into_parts();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        render(
            status,
            &ErrorPage {
                title: title.into(),
                why,
            },
        )
    }
}

/// A rendered template with its status.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// A Unix time as people read it: `Sun, 29 Nov 2026 12:41:00 GMT`.
fn when(at: i64) -> String {
    httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0) as u64),
    )
}

/// A size in bytes as people read it: `12 KB`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} bytes"),
        b if b < 1024 * 1024 => format!("{} KB", b.div_ceil(1024)),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// Where to go after a form: back to a page of ours, never elsewhere.
fn local(path: &str) -> &str {
    if path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\") {
        path
    } else {
        "/emails"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_a_form() {
        assert_eq!(local("/deals/3"), "/deals/3");
        assert_eq!(local("//evil.test/x"), "/emails");
        assert_eq!(local("/\\evil.test"), "/emails");
        assert_eq!(local("https://evil.test"), "/emails");
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size(12), "12 bytes");
        assert_eq!(size(2048), "2 KB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MB");
    }
}
