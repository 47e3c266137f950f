//! A check report as an HTML fragment, for the dashboard of `sizeguard
//! serve`: the same reading as the Markdown report (headline verdict,
//! findings, costs per platform, layers) over [`CheckView`], which the
//! server reads back from its store with [`CheckView::from_json`] and
//! never trusts further. Every string from the report goes through
//! [`escape`], the one HTML escape of the charts and the pages.

use std::borrow::Cow;

use serde::Serialize;

use super::json::CheckView;
use crate::units::{human_bytes, human_delta};

/// Text made inert in an HTML element's content and in a quoted
/// attribute value: `& < > " '` become references, and control
/// characters (which no tag or digest has, and which would only hide
/// text) are dropped.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| matches!(c, '&' | '<' | '>' | '"' | '\'') || c.is_control())
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The serialized name of an enum (`warn`, `node_bytes`, `added`): what
/// the JSON says, so the page and the document agree.
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn verdict_badge(verdict: &str) -> String {
    let v = escape(verdict);
    format!("<span class=\"badge {v}\">{v}</span>")
}

/// The report as an HTML fragment (a `<section>`), to be placed in a page
/// that styles it.
pub fn check_html(view: &CheckView) -> String {
    let mut out = String::new();
    out.push_str("<section class=\"report\">\n");
    out.push_str(&format!(
        "<h2>{} <code>{}</code></h2>\n",
        verdict_badge(&view.verdict.to_string()),
        escape(&view.candidate)
    ));
    if let Some(b) = &view.baseline {
        out.push_str(&format!(
            "<p class=\"muted\">compared with <code>{}</code></p>\n",
            escape(b)
        ));
    }
    if let Some(n) = &view.node {
        out.push_str(&format!(
            "<p>Node <strong>{}</strong>: {} available of {}; image GC headroom {}, eviction headroom {}.</p>\n",
            escape(&n.label),
            human_bytes(n.available_bytes),
            human_bytes(n.capacity_bytes),
            human_delta(n.gc_headroom),
            human_delta(n.eviction_headroom)
        ));
    }

    out.push_str("<h3>Findings</h3>\n");
    if view.findings.is_empty() {
        out.push_str("<p class=\"muted\">No rule was crossed.</p>\n");
    } else {
        out.push_str("<ul class=\"findings\">\n");
        for f in &view.findings {
            let level = name_of(&f.level);
            out.push_str(&format!(
                "<li>{} <code>{}</code> {}</li>\n",
                verdict_badge(&level),
                escape(&name_of(&f.rule)),
                escape(&f.message)
            ));
        }
        out.push_str("</ul>\n");
    }

    out.push_str("<h3>Cost per platform</h3>\n<table>\n<thead><tr><th>platform</th><th>verdict</th>\
        <th class=\"num\">pull</th><th class=\"num\">disk</th><th class=\"num\">node</th>\
        <th class=\"num\">inodes</th><th class=\"num\">layers</th><th class=\"num\">GC headroom left</th></tr></thead>\n<tbody>\n");
    for p in &view.platforms {
        let c = &p.candidate_cost;
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\" data-bytes=\"{}\">{}</td>\
             <td class=\"num\" data-bytes=\"{}\">{}</td><td class=\"num\" data-bytes=\"{}\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&p.platform),
            verdict_badge(&p.verdict.to_string()),
            c.pull_bytes,
            human_bytes(c.pull_bytes),
            c.disk_bytes,
            human_bytes(c.disk_bytes),
            c.node_bytes,
            human_bytes(c.node_bytes),
            c.node_inodes,
            c.layers,
            p.gc_headroom_left
                .map_or_else(|| "–".to_string(), human_delta),
        ));
    }
    out.push_str("</tbody>\n</table>\n");

    for p in &view.platforms {
        out.push_str(&format!(
            "<h3>Layers of <code>{}</code></h3>\n",
            escape(&p.platform)
        ));
        if !p.layers.is_empty() {
            out.push_str("<table>\n<thead><tr><th>#</th><th>change</th><th>digest</th>\
                <th class=\"num\">compressed</th><th class=\"num\">disk</th><th class=\"num\">disk growth</th></tr></thead>\n<tbody>\n");
            for row in &p.layers {
                let digest = row
                    .candidate_digest
                    .as_deref()
                    .or(row.baseline_digest.as_deref())
                    .unwrap_or("");
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td>\
                     <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                    row.index,
                    escape(&name_of(&row.change)),
                    escape(short_digest(digest)),
                    human_bytes(row.candidate_compressed_bytes),
                    human_bytes(row.candidate_disk_bytes),
                    human_delta(row.disk_growth()),
                ));
            }
        } else {
            out.push_str(
                "<table>\n<thead><tr><th>#</th><th>digest</th><th class=\"num\">compressed</th>\
                <th class=\"num\">disk</th><th>created by</th></tr></thead>\n<tbody>\n",
            );
            for (i, l) in p.candidate.layers.iter().enumerate() {
                out.push_str(&format!(
                    "<tr><td>{i}</td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                     <td class=\"created-by\">{}</td></tr>\n",
                    escape(short_digest(&l.digest)),
                    human_bytes(l.figures.compressed_bytes),
                    l.figures.disk_bytes.map_or_else(|| "–".to_string(), human_bytes),
                    escape(l.created_by.as_deref().unwrap_or("")),
                ));
            }
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");
    out
}

/// `sha256:` and the first 12 hex digits: enough to tell layers apart.
fn short_digest(d: &str) -> &str {
    let end = d.find(':').map_or(0, |i| i + 1) + 12;
    d.get(..end.min(d.len())).unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_and_attributes_is_inert() {
        assert_eq!(escape("v1.2"), Cow::Borrowed("v1.2"));
        assert_eq!(
            escape("<script>alert('x')</script>&\"\u{7}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn a_hostile_report_renders_as_text() {
        let text = include_str!("../../tests/golden/check-fixture.json");
        let mut doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        doc["candidate"] = hostile.into();
        doc["platforms"][0]["platform"] = hostile.into();
        let view = CheckView::from_json(&doc.to_string()).unwrap();
        let html = check_html(&view);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;"), "{html}");
    }
}
