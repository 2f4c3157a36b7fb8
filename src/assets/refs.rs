//! Which page assets a replay needs: the stylesheet, image and font URLs named in `snap`/`mut`
//! payloads (the snippet's replay format) and inside CSS text, resolved to absolute http(s) URLs.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;
use url::Url;

/// At most this many URLs are taken from one batch or one stylesheet.
pub const MAX_REFS: usize = 256;

/// What a reference points at: a stylesheet is captured with the assets it names in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Css,
    Other,
}

fn css_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?i)@import\s+(?:url\(\s*)?(?:"([^"]*)"|'([^']*)'|([^\s;)"']+))\s*\)?|url\(\s*(?:"([^"]*)"|'([^']*)'|([^)"'\s]*))\s*\)"#,
        )
        .expect("valid regex")
    })
}

fn css_ref<'t>(c: &regex::Captures<'t>) -> Option<(&'t str, Kind)> {
    let import = (1..=3).find_map(|i| c.get(i)).map(|m| (m.as_str(), Kind::Css));
    import.or_else(|| (4..=6).find_map(|i| c.get(i)).map(|m| (m.as_str(), Kind::Other)))
}

/// The URLs of CSS text (`url(…)` and `@import "…"`), raw as written.
pub fn css_urls(css: &str) -> impl Iterator<Item = (&str, Kind)> {
    css_re().captures_iter(css).filter_map(|c| css_ref(&c))
}

/// `css` with each reference replaced by `lookup(raw)` (a collector path), or emptied when
/// there is none; fragments and `data:` URLs stay as they are.
pub fn rewrite_css(css: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    css_re()
        .replace_all(css, |c: &regex::Captures<'_>| {
            let Some((raw, kind)) = css_ref(c) else { return c[0].to_owned() };
            let raw_t = raw.trim();
            if raw_t.starts_with('#') || raw_t.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
                return c[0].to_owned();
            }
            let target = lookup(raw).unwrap_or_default();
            match kind {
                Kind::Css => format!("@import url(\"{target}\")"),
                Kind::Other => format!("url(\"{target}\")"),
            }
        })
        .into_owned()
}

/// `raw` resolved against `base`, when it is a fetchable http(s) URL (fragment removed).
pub fn resolve(base: &Url, raw: &str) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.starts_with('#') {
        return None;
    }
    let mut u = base.join(raw).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return None;
    }
    u.set_fragment(None);
    Some(u)
}

/// Collects the asset URLs of replay payloads, resolved against the recorded page.
#[derive(Debug, Default)]
pub struct Refs {
    pub found: BTreeSet<(Url, Kind)>,
}

impl Refs {
    fn push(&mut self, base: &Url, raw: &str, kind: Kind) {
        if self.found.len() < MAX_REFS {
            if let Some(u) = resolve(base, raw) {
                self.found.insert((u, kind));
            }
        }
    }

    fn css(&mut self, base: &Url, text: &str) {
        for (raw, kind) in css_urls(text) {
            self.push(base, raw, kind);
        }
    }

    /// Adds the references of one `snap`/`mut` payload `d`; `base` is the recorded page.
    pub fn payload(&mut self, base: &Url, d: &Value) {
        for add in d.get("a").and_then(Value::as_array).into_iter().flatten() {
            if let Some(node) = add.get(3) {
                self.node(base, node, false);
            }
        }
        // Attribute changes: no tag is known, so only attributes that always load something.
        for m in d.get("m").and_then(Value::as_array).into_iter().flatten() {
            if let Some(attrs) = m.get(1).and_then(Value::as_object) {
                for (k, v) in attrs {
                    if let Some(v) = v.as_str() {
                        self.attr(base, "", k, v);
                    }
                }
            }
        }
        // New text of a <style> (CSS-in-JS) and rewritten stylesheets.
        for key in ["x", "c"] {
            for x in d.get(key).and_then(Value::as_array).into_iter().flatten() {
                if let Some(text) = x.get(1).and_then(Value::as_str).filter(|t| t.contains('{')) {
                    self.css(base, text);
                }
            }
        }
    }

    fn node(&mut self, base: &Url, node: &Value, in_style: bool) {
        let Some(items) = node.as_array() else {
            if let (true, Some(text)) = (in_style, node.as_str()) {
                self.css(base, text);
            }
            return;
        };
        let tag = items.first().and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
        let mut children = items.iter().skip(1);
        if let Some(attrs) = items.get(1).and_then(Value::as_object) {
            children.next();
            let stylesheet = attrs.get("rel").and_then(Value::as_str).is_some_and(|r| r.contains("stylesheet"));
            for (k, v) in attrs {
                match (v.as_str(), k.as_str()) {
                    (Some(v), "href") if tag == "link" && stylesheet => self.push(base, v, Kind::Css),
                    (Some(v), _) => self.attr(base, &tag, k, v),
                    (None, "_css") => self.css_list(base, v),
                    _ => {}
                }
            }
        }
        for child in children {
            self.node(base, child, tag == "style" || tag == "#shadow");
        }
    }

    fn css_list(&mut self, base: &Url, v: &Value) {
        for t in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
            self.css(base, t);
        }
    }

    fn attr(&mut self, base: &Url, tag: &str, name: &str, value: &str) {
        match name {
            "style" => self.css(base, value),
            "src" | "poster" | "background" if !matches!(tag, "iframe" | "frame" | "script" | "embed") => {
                self.push(base, value, Kind::Other)
            }
            "srcset" | "imagesrcset" => {
                for candidate in value.split(',') {
                    if let Some(u) = candidate.split_whitespace().next() {
                        self.push(base, u, Kind::Other);
                    }
                }
            }
            "href" | "xlink:href" if matches!(tag, "image" | "use" | "feimage") => self.push(base, value, Kind::Other),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn urls(d: Value) -> Vec<String> {
        let base = Url::parse("https://shop.example/docs/page.html").unwrap();
        let mut r = Refs::default();
        r.payload(&base, &d);
        r.found.into_iter().map(|(u, k)| format!("{k:?} {u}")).collect()
    }

    #[test]
    fn finds_stylesheets_images_and_css_urls_in_a_snapshot() {
        let tree = json!(["html", {}, ["head", {}, ["link", {"rel": "stylesheet", "href": "theme/notes-9b5766c0.css"}],
            ["link", {"rel": "canonical", "href": "/not-an-asset"}],
            ["style", {}, "@import 'print.css'; .a{background:url(\"img/a.png\")} .b{background:url( img/b.svg )}"]],
            ["body", {"style": "background-image:url('/bg.jpg')"},
                ["img", {"src": "logo.svg", "srcset": "logo.svg 1x, logo@2x.png 2x"}],
                ["a", {"href": "/elsewhere"}, "link"],
                ["iframe", {"src": "/frame"}],
                ["svg", {}, ["use", {"href": "#icon"}], ["image", {"href": "/pic.png"}]],
                ["img", {"src": "data:image/png;base64,AAAA"}], ["img", {"src": "javascript:x"}]]]);
        assert_eq!(
            urls(json!({"u": "https://shop.example/docs/page.html", "a": [[0, 0, 1, tree]]})),
            [
                "Other https://shop.example/bg.jpg",
                "Other https://shop.example/docs/img/a.png",
                "Other https://shop.example/docs/img/b.svg",
                "Other https://shop.example/docs/logo.svg",
                "Other https://shop.example/docs/logo@2x.png",
                "Css https://shop.example/docs/print.css",
                "Css https://shop.example/docs/theme/notes-9b5766c0.css",
                "Other https://shop.example/pic.png",
            ]
        );
    }

    #[test]
    fn mutations_count_too_but_not_links() {
        let found = urls(
            json!({"m": [[4, {"src": "/new.png", "href": "/page"}]], "x": [[9, ".x{background:url(/x.gif)}"], [10, "url(no-brace)"]]}),
        );
        assert_eq!(found, ["Other https://shop.example/new.png", "Other https://shop.example/x.gif"]);
    }

    #[test]
    fn stylesheets_are_rewritten_to_the_collector() {
        let css = "@import 'a.css'; .x{background:url( img/x.png )} .y{mask:url(#m)} .z{background:url(data:image/png;base64,AA)} .w{background:url(/gone.png)}";
        let out = rewrite_css(css, |raw| match raw {
            "a.css" => Some("/dashboard/asset/aa".into()),
            "img/x.png" => Some("/dashboard/asset/bb".into()),
            _ => None,
        });
        assert_eq!(
            out,
            "@import url(\"/dashboard/asset/aa\"); .x{background:url(\"/dashboard/asset/bb\")} .y{mask:url(#m)} .z{background:url(data:image/png;base64,AA)} .w{background:url(\"\")}"
        );
    }

    #[test]
    fn css_urls_in_a_stylesheet() {
        let css = "@import url(\"a.css\"); @font-face{src:url(f.woff2) format('woff2')} .x{background:url('#frag')}";
        let found: Vec<_> = css_urls(css).collect();
        assert_eq!(found, [("a.css", Kind::Css), ("f.woff2", Kind::Other), ("#frag", Kind::Other)]);
        let base = Url::parse("https://s.example/css/site.css").unwrap();
        assert_eq!(resolve(&base, "#frag"), None);
        assert_eq!(resolve(&base, "../f.woff2#x").unwrap().as_str(), "https://s.example/f.woff2");
        assert_eq!(resolve(&base, "ftp://s.example/x"), None);
    }
}
