//! The web view of `joblet serve`, at `/` on the API's own port and TLS: its page and
//! assets are embedded in the binary (`ui/`), nothing is fetched from elsewhere. A browser
//! signs in with the one-time code of the `web UI:` URL `serve` prints, or with the bearer
//! token pasted on the sign-in page; either gives it a session cookie (`Secure; HttpOnly;
//! SameSite=Strict`), never the token in a URL. With that cookie the page reads and writes
//! through the Kubernetes API itself, so it can do nothing the API does not allow; it
//! reads a Job's pods through a stream of its own (`job_stream`), signed in as the API is.

pub mod job_stream;

use std::collections::HashSet;
use std::sync::Mutex;

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

const COOKIE: &str = "joblet-session";
const PAGE: &str = include_str!("ui/index.html");
const SIGN_IN: &str = include_str!("ui/sign-in.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// Sign-in codes not yet used, and the sessions they and pasted tokens opened. Kept in
/// memory: a restarted server prints a new code, and browsers sign in again.
#[derive(Default)]
pub struct Sessions {
    codes: Mutex<HashSet<String>>,
    open: Mutex<HashSet<String>>,
}

impl Sessions {
    /// A new one-time sign-in code.
    pub fn new_code(&self) -> std::io::Result<String> {
        let code = random_hex()?;
        self.codes.lock().expect("codes").insert(code.clone());
        Ok(code)
    }

    fn redeem(&self, code: &str) -> bool {
        self.codes.lock().expect("codes").remove(code)
    }

    fn open_session(&self) -> std::io::Result<String> {
        let session = random_hex()?;
        self.open.lock().expect("sessions").insert(session.clone());
        Ok(session)
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(session) = session_cookie(headers) {
            self.open.lock().expect("sessions").remove(session);
        }
    }

    /// Whether the request carries the cookie of an open session.
    pub fn signed_in(&self, headers: &HeaderMap) -> bool {
        session_cookie(headers).is_some_and(|s| self.open.lock().expect("sessions").contains(s))
    }
}

fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 24];
    joblet_driver::random_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    (headers.get_all(header::COOKIE).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether the path is the web view's, served before the API's authentication (its
/// streams, under `/ui/api/`, come after it).
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || (path.starts_with("/ui/") && !path.starts_with("/ui/api/"))
}

/// A request for a page or asset of the web view, or a sign-in.
pub fn serve(
    sessions: &Sessions,
    token: &str,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let signed_in = sessions.signed_in(headers);
    match (method, path) {
        (&Method::GET, "/") => {
            let code = form_value(query.unwrap_or_default().as_bytes(), "code");
            match code {
                Some(code) if sessions.redeem(&code) => signed_in_redirect(sessions),
                Some(_) => sign_in_page(
                    StatusCode::UNAUTHORIZED,
                    "This sign-in link was used already or is not this server's: paste the token.",
                ),
                None if signed_in => html(StatusCode::OK, PAGE),
                None => sign_in_page(StatusCode::OK, ""),
            }
        }
        (&Method::POST, "/ui/sign-in") => {
            let given = form_value(body, "token").unwrap_or_default();
            if crate::api::same_token(given.trim(), token) {
                signed_in_redirect(sessions)
            } else {
                sign_in_page(StatusCode::UNAUTHORIZED, "That is not this server's token.")
            }
        }
        (&Method::POST, "/ui/sign-out") => {
            sessions.close(headers);
            let expired =
                format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/".to_string()),
                    (header::SET_COOKIE, expired),
                ],
            )
                .into_response()
        }
        (&Method::GET, "/ui/app.css") => asset("text/css; charset=utf-8", STYLE),
        (&Method::GET, "/ui/app.js") if signed_in => {
            asset("text/javascript; charset=utf-8", SCRIPT)
        }
        (&Method::GET, _) => (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "not supported").into_response(),
    }
}

fn signed_in_redirect(sessions: &Sessions) -> Response {
    let Ok(session) = sessions.open_session() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no random source").into_response();
    };
    let cookie = format!("{COOKIE}={session}; Path=/; Secure; HttpOnly; SameSite=Strict");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

fn sign_in_page(status: StatusCode, message: &str) -> Response {
    let message = message.replace('&', "&amp;").replace('<', "&lt;");
    html(status, &SIGN_IN.replace("{message}", &message))
}

fn html(status: StatusCode, body: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A field of an `application/x-www-form-urlencoded` body or query.
fn form_value(form: &[u8], name: &str) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(form).ok()?;
    fields
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_signs_in_once_and_the_session_cookie_is_checked() {
        let sessions = Sessions::default();
        let code = sessions.new_code().unwrap();
        let headers = HeaderMap::new();
        let open = |code: &str| {
            let query = format!("code={code}");
            serve(
                &sessions,
                "t",
                &Method::GET,
                "/",
                Some(&query),
                &headers,
                b"",
            )
        };
        let first = open(&code);
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        let cookie = first.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict"),
            "{cookie}"
        );
        let again = open(&code);
        assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
        let mut with_cookie = HeaderMap::new();
        let pair = cookie.split(';').next().unwrap();
        with_cookie.insert(header::COOKIE, format!("other=1; {pair}").parse().unwrap());
        assert!(sessions.signed_in(&with_cookie));
        with_cookie.insert(header::COOKIE, format!("{COOKIE}=forged").parse().unwrap());
        assert!(!sessions.signed_in(&with_cookie));
    }

    #[test]
    fn a_pasted_token_signs_in_and_a_wrong_one_does_not() {
        let sessions = Sessions::default();
        let headers = HeaderMap::new();
        let post = |body: &[u8]| {
            serve(
                &sessions,
                "s3cr%t",
                &Method::POST,
                "/ui/sign-in",
                None,
                &headers,
                body,
            )
        };
        assert_eq!(post(b"token=s3cr%25t").status(), StatusCode::SEE_OTHER);
        assert_eq!(post(b"token=s3cr").status(), StatusCode::UNAUTHORIZED);
        assert_eq!(post(b"").status(), StatusCode::UNAUTHORIZED);
    }
}
