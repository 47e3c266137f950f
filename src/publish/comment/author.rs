//! Which comment holding the marker is ours. The marker is plain text
//! anyone can write into a comment of their own, so it only says which
//! comments to look at; the comment is ours when:
//!
//! - the token's own identity wrote it. A user's token (a PAT) names its
//!   user at `GET /user`. An app installation's token (a workflow's
//!   `GITHUB_TOKEN`, a GitHub App's) gets 403 there ("Resource not
//!   accessible by integration"); GraphQL's `viewer { login }` answers for
//!   those. Should GraphQL not answer for such a token, no marked comment
//!   is taken as ours (the token might be any app's, and
//!   `github-actions[bot]` writes for every workflow): a new comment is
//!   written instead;
//! - it is not minimized. REST does not say; GraphQL's `isMinimized` on the
//!   comment's `node_id` does. A minimized comment was hidden by someone
//!   with the right to: sizeguard writes a new one instead of editing text
//!   nobody sees. Should GraphQL not answer a user's token, that is said
//!   in a notice and comments are taken as not minimized (the author check
//!   stands).
//!
//! A marked comment by anyone else is never edited, never read as the
//! report already posted (`on-change`), and named in one notice.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{Api, Existing, Login, judge, notice};
use crate::error::{Error, Kind};

/// The login of comments made with a workflow's `GITHUB_TOKEN`.
const ACTIONS_BOT: &str = "github-actions[bot]";
/// Marked comments asked about at most: GraphQL's `nodes` takes 100 ids.
const MAX_ASKED: usize = 100;

const QUERY: &str = "query($ids: [ID!]!) { viewer { login } \
                     nodes(ids: $ids) { ... on IssueComment { id isMinimized } } }";

/// Who the token writes as.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Author {
    login: String,
    /// An app installation: GraphQL may name it by its slug, its comments
    /// are signed `slug[bot]`.
    app: bool,
}

impl Author {
    fn wrote(&self, login: &str) -> bool {
        login.eq_ignore_ascii_case(&self.login)
            || (self.app
                && login
                    .strip_suffix("[bot]")
                    .is_some_and(|slug| slug.eq_ignore_ascii_case(&self.login)))
    }
}

/// What GraphQL said about the comments asked about.
#[derive(Debug, Default, PartialEq, Eq)]
struct Graph {
    viewer: Option<String>,
    minimized: HashSet<String>,
}

fn read_graph(v: &Value) -> Graph {
    let viewer = v
        .pointer("/data/viewer/login")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let minimized = v
        .pointer("/data/nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|n| n.get("isMinimized").and_then(Value::as_bool) == Some(true))
        .filter_map(|n| n.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    Graph { viewer, minimized }
}

impl Api {
    /// The first of the `marked` comments that is ours (see the module).
    pub(super) async fn ours(&self, marked: Vec<Existing>) -> Result<Option<Existing>, Error> {
        if marked.is_empty() {
            return Ok(None);
        }
        let user = self.token_user().await?;
        // Only comments the identity could have written are asked about: a
        // user's own, or for an app token, bots'.
        let asked: Vec<&str> = marked
            .iter()
            .filter(|c| match &user {
                Some(login) => c.author.eq_ignore_ascii_case(login),
                None => c.author.ends_with("[bot]"),
            })
            .filter_map(|c| c.node_id.as_deref())
            .take(MAX_ASKED)
            .collect();
        let graph = if asked.is_empty() {
            Graph::default()
        } else {
            self.graph(&asked).await
        };
        let author = match user {
            Some(login) => Author { login, app: false },
            None => match graph.viewer.clone() {
                Some(login) => Author { login, app: true },
                None if asked.is_empty() => Author {
                    // No bot's comment to tell apart: the name is only
                    // for the notice below.
                    login: ACTIONS_BOT.to_string(),
                    app: true,
                },
                None => {
                    // An app installation's token and no answer from
                    // GraphQL: which bot the token writes as is unknown
                    // (`github-actions[bot]` is only the workflow token's;
                    // another app, or another workflow, writes as that
                    // too). No marked comment is taken as ours: a new one
                    // is written rather than someone else's edited.
                    notice(&format!(
                        "GitHub GraphQL did not say which app this token writes as: none of the {} \
                         comment(s) carrying sizeguard's marker is taken as its own (a new comment \
                         is written; they are never edited)",
                        marked.len()
                    ));
                    return Ok(None);
                }
            },
        };
        let (mine, others): (Vec<Existing>, Vec<Existing>) =
            marked.into_iter().partition(|c| author.wrote(&c.author));
        if let Some(first) = others.first() {
            notice(&format!(
                "ignored {} comment(s) carrying sizeguard's marker not written by {} \
                 (the first: {} by {}); they are never edited",
                others.len(),
                author.login,
                first.id,
                first.author
            ));
        }
        Ok(mine.into_iter().find(|c| {
            let minimized = c
                .node_id
                .as_ref()
                .is_some_and(|id| graph.minimized.contains(id));
            if minimized {
                tracing::info!("comment {} is minimized: a new one is written", c.id);
            }
            !minimized
        }))
    }

    /// The token's user, or `None` for an app installation's token.
    async fn token_user(&self) -> Result<Option<String>, Error> {
        let what = "reading the token's user";
        match self.client.get::<Login>(what, "/user", None).await? {
            Ok(user) if !user.login.is_empty() => Ok(Some(user.login)),
            Ok(_) => Err(Error::corrupt(format!(
                "GitHub API {what}: no login in the answer"
            ))),
            Err(refused) if refused.kind() == Kind::Unauthorized => Ok(None),
            // 403 is answered above; any other refusal is an error of its kind.
            Err(refused) => judge(refused, what).map(|_| None),
        }
    }

    /// The viewer's login and which of the comments `ids` are minimized.
    async fn graph(&self, ids: &[&str]) -> Graph {
        let body = json!({ "query": QUERY, "variables": { "ids": ids } });
        let answer = match self.client.graphql::<_, Value>(&body).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(r)) => Err(format!("{} {}", r.status, r.message)),
            Err(e) => Err(e.one_line()),
        };
        match answer {
            Ok(v) if v.pointer("/data/nodes").is_some() => read_graph(&v),
            Ok(v) => {
                notice(&format!(
                    "GitHub GraphQL did not say which comments are minimized ({}): \
                     taking none as minimized",
                    v.pointer("/errors/0/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no data")
                ));
                read_graph(&v)
            }
            Err(why) => {
                notice(&format!(
                    "GitHub GraphQL did not answer ({why}): taking no comment as minimized"
                ));
                Graph::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_match_by_login_and_apps_by_their_bot() {
        let user = Author {
            login: "Octo-Cat".into(),
            app: false,
        };
        assert!(user.wrote("octo-cat"));
        assert!(!user.wrote("octo-cat[bot]"));
        assert!(!user.wrote("mallory"));
        let app = Author {
            login: "size-bot".into(),
            app: true,
        };
        assert!(app.wrote("size-bot[bot]"));
        assert!(!app.wrote("size-bot-evil[bot]"));
        let actions = Author {
            login: ACTIONS_BOT.into(),
            app: true,
        };
        assert!(actions.wrote("github-actions[bot]"));
        assert!(!actions.wrote("github-actions"));
    }

    #[test]
    fn graphql_answers_are_read_leniently() {
        let v = json!({"data": {"viewer": {"login": "github-actions[bot]"},
            "nodes": [{"id": "IC_1", "isMinimized": true}, null, {"id": "IC_2", "isMinimized": false}]}});
        let g = read_graph(&v);
        assert_eq!(g.viewer.as_deref(), Some("github-actions[bot]"));
        assert_eq!(g.minimized, HashSet::from(["IC_1".to_string()]));
        assert_eq!(
            read_graph(&json!({"errors": [{"message": "x"}]})),
            Graph::default()
        );
    }
}
