//! A local stand-in for the GitHub REST API, enough for the pull-request
//! comment: list (paginated with `Link` headers), create and edit issue
//! comments, and list pull requests by head. It runs on the stand-ins'
//! server ([`super::http`]: HTTP/1.1 on 127.0.0.1, one connection per
//! request), every request recorded (method, path, query, headers, body)
//! for the tests to check.
//!
//! Who the token is, as GitHub answers it: `GET /user` names a user's token
//! ([`State::token_user`]); for an app installation's token (the default,
//! like a workflow's `GITHUB_TOKEN`) it answers 403 "Resource not accessible
//! by integration" and GraphQL's `viewer` names the app's bot
//! ([`State::app_login`]). Comments the token creates are signed by that
//! identity. GraphQL (`POST /graphql`, or `/api/graphql` beside `/api/v3`)
//! answers the one query sizeguard sends: `viewer { login }` and
//! `nodes(ids:) { ... on IssueComment { id isMinimized } }`; comments carry
//! a `node_id` and can be minimized ([`GithubStandin::minimize`]).
//!
//! Commit statuses (`POST /repos/{o}/{r}/statuses/{sha}`) are recorded in
//! [`State::statuses`] and answered 201 as GitHub does, 422 for a state or
//! a description GitHub refuses.
//!
//! Behaviours: a read-only token (403 on writes, as GitHub answers a fork's
//! `GITHUB_TOKEN`), queued rate-limit answers (primary: 403 with
//! `x-ratelimit-remaining: 0` and a reset time; secondary: 429 with
//! `retry-after`), a small page size to force pagination, and an API prefix
//! (`/api/v3`, as GitHub Enterprise Server serves it).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use super::http::Request;
use super::http::{read_request, respond};

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub user: String,
    pub minimized: bool,
}

/// A rate-limit answer given instead of the next request's real one.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// 403, `x-ratelimit-remaining: 0`, `x-ratelimit-reset` in `secs`.
    Primary { secs: u64 },
    /// 429 with `retry-after: secs`.
    Secondary { secs: u64 },
}

#[derive(Debug, Default)]
pub struct State {
    pub comments: Vec<Comment>,
    pub next_id: u64,
    pub read_only: bool,
    pub limits: Vec<Limit>,
    pub page_size: Option<usize>,
    /// Open pull requests: `(number, head label "owner:branch", head sha)`.
    pub pulls: Vec<(u64, String, String)>,
    pub requests: Vec<Request>,
    /// The user a user's token (a PAT) belongs to; `None`: the token is an
    /// app installation's, and `GET /user` answers 403.
    pub token_user: Option<String>,
    /// The bot an installation token writes as (`github-actions[bot]`).
    pub app_login: String,
    /// GraphQL answers 502 instead (to test what a missing answer does).
    pub graphql_down: bool,
    /// GraphQL answers 200 with an `errors` list and no data, as GitHub
    /// does for a query the token may not make.
    pub graphql_errors: bool,
    /// Commit statuses created: `(owner/repo, sha, body)`.
    pub statuses: Vec<(String, String, Value)>,
}

impl State {
    /// Who comments made with the token are signed by.
    pub fn identity(&self) -> String {
        self.token_user
            .clone()
            .unwrap_or_else(|| self.app_login.clone())
    }
}

pub struct GithubStandin {
    addr: SocketAddr,
    prefix: String,
    pub token: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl GithubStandin {
    /// The API at `http://127.0.0.1:PORT/`, accepting `token`.
    pub fn start(token: &str) -> Self {
        Self::start_with_prefix(token, "")
    }

    /// The API under a path prefix (`/api/v3`).
    pub fn start_with_prefix(token: &str, prefix: &str) -> Self {
        let listener = super::http::bind();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            next_id: 1_000_000,
            app_login: "github-actions[bot]".into(),
            ..Default::default()
        }));
        let prefix = prefix.trim_end_matches('/').to_string();
        let (shared, routed_prefix, accepted) = (state.clone(), prefix.clone(), token.to_string());
        let stop = super::http::serve_on(listener, move |conn| {
            let _ = serve(conn, addr, &routed_prefix, &accepted, &shared);
        });
        GithubStandin {
            addr,
            prefix,
            token: token.to_string(),
            state,
            stop,
        }
    }

    /// The value for `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.prefix)
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Adds a comment as if someone had written it; returns its id.
    pub fn seed(&self, issue: u64, user: &str, body: &str) -> u64 {
        let mut s = self.state();
        s.next_id += 1;
        let id = s.next_id;
        s.comments.push(Comment {
            id,
            issue,
            body: body.to_string(),
            user: user.to_string(),
            minimized: false,
        });
        id
    }

    /// Hides a comment as a maintainer does ("minimize": outdated, spam...).
    pub fn minimize(&self, id: u64) {
        let mut s = self.state();
        let c = s
            .comments
            .iter_mut()
            .find(|c| c.id == id)
            .expect("a comment");
        c.minimized = true;
    }

    pub fn comments(&self, issue: u64) -> Vec<Comment> {
        self.state()
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }
}

impl Drop for GithubStandin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
    }
}

fn serve(
    mut conn: TcpStream,
    addr: SocketAddr,
    prefix: &str,
    token: &str,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut conn) else {
        return Ok(());
    };
    let ans = {
        let mut s = state.lock().unwrap();
        s.requests.push(req.clone());
        route(&req, addr, prefix, token, &mut s)
    };
    let text = ans.body.to_string();
    let reason = match ans.status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        _ => "Other",
    };
    let mut headers = vec![(
        "Content-Type",
        "application/json; charset=utf-8".to_string(),
    )];
    headers.extend(ans.headers.iter().map(|(k, v)| (k.as_str(), v.clone())));
    respond(
        &mut conn,
        &format!("{} {reason}", ans.status),
        &headers,
        text.as_bytes(),
    )
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn node_id(id: u64) -> String {
    format!("IC_kwDO{id}")
}

fn comment_json(addr: SocketAddr, c: &Comment) -> Value {
    let kind = if c.user.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    json!({
        "id": c.id,
        "node_id": node_id(c.id),
        "body": c.body,
        "user": {"login": c.user, "type": kind},
        "html_url": format!("http://{addr}/o/r/pull/{}#issuecomment-{}", c.issue, c.id),
    })
}

fn route(req: &Request, addr: SocketAddr, prefix: &str, token: &str, s: &mut State) -> Answer {
    if let Some(limit) = (!s.limits.is_empty()).then(|| s.limits.remove(0)) {
        return rate_limited(limit);
    }
    let auth = req.header("authorization").unwrap_or_default();
    if auth != format!("Bearer {token}") && auth != format!("token {token}") {
        return answer(401, json!({"message": "Bad credentials"}));
    }
    if req.method == "POST" && req.path == graphql_path(prefix) {
        return graphql(req, s);
    }
    let Some(path) = req.path.strip_prefix(prefix) else {
        return answer(404, json!({"message": "Not Found"}));
    };
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), seg.as_slice()) {
        ("GET", ["repos", _, _, "issues", n, "comments"]) => list_comments(req, addr, n, s),
        ("POST", ["repos", _, _, "issues", n, "comments"]) => create_comment(req, addr, n, s),
        ("POST" | "PATCH", ["repos", _, _, "issues", "comments", id]) => {
            edit_comment(req, addr, id, s)
        }
        ("GET", ["repos", _, _, "pulls"]) => list_pulls(req, s),
        ("POST", ["repos", o, r, "statuses", sha]) => {
            create_status(req, &format!("{o}/{r}"), sha, s)
        }
        ("GET", ["user"]) => token_user(s),
        _ => answer(404, json!({"message": "Not Found"})),
    }
}

/// `/graphql` beside the REST root, `/api/graphql` beside `/api/v3`.
fn graphql_path(prefix: &str) -> String {
    match prefix.strip_suffix("/v3") {
        Some(api) if api.ends_with("/api") => format!("{api}/graphql"),
        _ => format!("{prefix}/graphql"),
    }
}

/// `GET /user`: the user of a user's token; 403 for an installation token,
/// as GitHub answers it.
fn token_user(s: &State) -> Answer {
    match &s.token_user {
        Some(login) => answer(200, json!({"login": login, "type": "User"})),
        None => answer(
            403,
            json!({"message": "Resource not accessible by integration",
                   "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
                   "status": "403"}),
        ),
    }
}

/// The one GraphQL query sizeguard sends: the viewer's login and whether
/// the comments with the given node ids are minimized (`null` for an id
/// that is no comment). Anything else is a GraphQL error.
fn graphql(req: &Request, s: &State) -> Answer {
    if s.graphql_down {
        return answer(502, json!({"message": "Server Error"}));
    }
    if s.graphql_errors {
        return answer(
            200,
            json!({"errors": [{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}]}),
        );
    }
    let body = req.json();
    let query = body["query"].as_str().unwrap_or_default();
    let ids = body.pointer("/variables/ids").and_then(Value::as_array);
    let understood = query.contains("viewer { login }")
        && query.contains("nodes(ids: $ids)")
        && query.contains("... on IssueComment { id isMinimized }");
    let (true, Some(ids)) = (understood, ids) else {
        return answer(
            200,
            json!({"errors": [{"message": "the stand-in answers only sizeguard's query"}]}),
        );
    };
    let nodes: Vec<Value> = ids
        .iter()
        .map(|id| {
            s.comments
                .iter()
                .find(|c| Some(node_id(c.id).as_str()) == id.as_str())
                .map_or(
                    Value::Null,
                    |c| json!({"id": node_id(c.id), "isMinimized": c.minimized}),
                )
        })
        .collect();
    answer(
        200,
        json!({"data": {"viewer": {"login": s.identity()}, "nodes": nodes}}),
    )
}

/// GitHub's primary (403, reset time) or secondary (429, retry-after) limit.
fn rate_limited(limit: Limit) -> Answer {
    match limit {
        Limit::Primary { secs } => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            Answer {
                status: 403,
                headers: vec![
                    ("x-ratelimit-limit".into(), "5000".into()),
                    ("x-ratelimit-remaining".into(), "0".into()),
                    ("x-ratelimit-used".into(), "5000".into()),
                    ("x-ratelimit-reset".into(), (now + secs).to_string()),
                ],
                body: json!({"message": "API rate limit exceeded for installation ID 1."}),
            }
        }
        Limit::Secondary { secs } => Answer {
            status: 429,
            headers: vec![("retry-after".into(), secs.to_string())],
            body: json!({"message": "You have exceeded a secondary rate limit."}),
        },
    }
}

/// One page of an issue's comments, with GitHub's `Link` header.
fn list_comments(req: &Request, addr: SocketAddr, n: &str, s: &State) -> Answer {
    let Ok(issue) = n.parse::<u64>() else {
        return answer(404, json!({"message": "Not Found"}));
    };
    let per_page = query_param(&req.query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .min(100)
        .min(s.page_size.unwrap_or(100));
    let page = query_param(&req.query, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let all: Vec<&Comment> = s.comments.iter().filter(|c| c.issue == issue).collect();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|c| comment_json(addr, c))
        .collect();
    let last = all.len().div_ceil(per_page).max(1);
    let mut headers = Vec::new();
    if page < last {
        let base = format!(
            "http://{addr}{}?per_page={}",
            req.path,
            query_param(&req.query, "per_page").unwrap_or("30")
        );
        headers.push((
            "link".into(),
            format!(
                "<{base}&page={}>; rel=\"next\", <{base}&page={last}>; rel=\"last\"",
                page + 1
            ),
        ));
    }
    Answer {
        status: 200,
        headers,
        body: Value::Array(items),
    }
}

fn create_comment(req: &Request, addr: SocketAddr, n: &str, s: &mut State) -> Answer {
    if s.read_only {
        return answer(
            403,
            json!({"message": "Resource not accessible by integration",
                   "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment"}),
        );
    }
    let (Ok(issue), Some(body)) = (
        n.parse::<u64>(),
        req.json()["body"].as_str().map(str::to_string),
    ) else {
        return answer(422, json!({"message": "Validation Failed"}));
    };
    s.next_id += 1;
    let c = Comment {
        id: s.next_id,
        issue,
        body,
        user: s.identity(),
        minimized: false,
    };
    let v = comment_json(addr, &c);
    s.comments.push(c);
    answer(201, v)
}

fn edit_comment(req: &Request, addr: SocketAddr, id: &str, s: &mut State) -> Answer {
    if s.read_only {
        return answer(
            403,
            json!({"message": "Resource not accessible by integration"}),
        );
    }
    let Some(body) = req.json()["body"].as_str().map(str::to_string) else {
        return answer(422, json!({"message": "Validation Failed"}));
    };
    let id = id.parse::<u64>().unwrap_or(0);
    match s.comments.iter_mut().find(|c| c.id == id) {
        Some(c) => {
            c.body = body;
            let c = c.clone();
            answer(200, comment_json(addr, &c))
        }
        None => answer(404, json!({"message": "Not Found"})),
    }
}

/// Pull requests, filtered by `head=OWNER:BRANCH` as GitHub does.
fn list_pulls(req: &Request, s: &State) -> Answer {
    let head = query_param(&req.query, "head")
        .map(|h| h.replace("%3A", ":").replace("%3a", ":"))
        .unwrap_or_default();
    let items: Vec<Value> = s
        .pulls
        .iter()
        .filter(|(_, label, _)| head.is_empty() || *label == head)
        .map(|(n, label, sha)| json!({"number": n, "head": {"label": label, "sha": sha}}))
        .collect();
    answer(200, Value::Array(items))
}

/// A commit status, validated as GitHub does: a known state, a
/// description of at most 140 characters, a 40-hex sha.
fn create_status(req: &Request, repo: &str, sha: &str, s: &mut State) -> Answer {
    if s.read_only {
        return answer(
            403,
            json!({"message": "Resource not accessible by integration"}),
        );
    }
    let body = req.json();
    let state_ok = matches!(
        body["state"].as_str(),
        Some("error" | "failure" | "pending" | "success")
    );
    let description_ok = body["description"]
        .as_str()
        .is_none_or(|d| d.chars().count() <= 140);
    let sha_ok = sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    if !sha_ok {
        return answer(
            422,
            json!({"message": format!("No commit found for SHA: {sha}")}),
        );
    }
    if !state_ok || !description_ok {
        return answer(422, json!({"message": "Validation Failed"}));
    }
    s.next_id += 1;
    let mut created = body.clone();
    created["id"] = s.next_id.into();
    s.statuses.push((repo.to_string(), sha.to_string(), body));
    answer(201, created)
}
