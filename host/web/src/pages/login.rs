//! Signing in and out. The sign-in form is protected from cross-site
//! posting by a double-submit token: a random value both in a cookie
//! (readable by this site only) and in the form.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use mailroom_crm::users;
use serde::Deserialize;

use super::{PageError, local, render};
use crate::AppState;
use crate::auth::{cookie, end_session, open_session};

/// The cookie holding the sign-in form's token.
const LOGIN_COOKIE: &str = "mailroom_login";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

fn login_page(status: StatusCode, page: LoginPage) -> Response {
    let mut res = render(status, &page);
    let cookie = format!(
        "{LOGIN_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600",
        page.csrf
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// The sign-in form.
pub(crate) async fn form(Query(q): Query<Next>) -> Response {
    login_page(
        StatusCode::OK,
        LoginPage {
            csrf: hex::encode(rand::random::<[u8; 16]>()),
            next: local(q.next.as_deref().unwrap_or("/emails")).to_string(),
            email: String::new(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    email: String,
    password: String,
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Sign in: a session cookie and on to the page asked for.
pub(crate) async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = local(&f.next).to_string();
    let again = |error: &str| {
        login_page(
            StatusCode::UNAUTHORIZED,
            LoginPage {
                csrf: hex::encode(rand::random::<[u8; 16]>()),
                next: next.clone(),
                email: f.email.clone(),
                error: Some(error.into()),
            },
        )
    };
    if f.csrf.is_empty() || cookie(&headers, LOGIN_COOKIE).as_deref() != Some(f.csrf.as_str()) {
        return Ok(again(
            "This sign-in form has expired. Please enter your email and password again.",
        ));
    }
    let Some(user) = users::authenticate(&s.db, f.email.trim(), &f.password).await? else {
        return Ok(again(
            "Wrong email or password. Check both and try again; your administrator can reset the password.",
        ));
    };
    let (_, headers) = open_session(&s.db, &user).await?;
    Ok((headers, Redirect::to(&next)).into_response())
}

/// Sign out (a form, so that another site cannot sign anyone out).
pub(crate) async fn logout(
    State(s): State<AppState>,
    viewer: super::Viewer,
    headers: HeaderMap,
    Form(f): Form<super::Confirmed>,
) -> Result<Response, PageError> {
    viewer.check(&f.csrf)?;
    let cleared = end_session(&s.db, &headers).await?;
    Ok((cleared, Redirect::to("/login")).into_response())
}
