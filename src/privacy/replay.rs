//! Replay documents (the `d` of `snap` and `mut` events): every string is scrubbed by where it
//! sits. URLs follow the URL rules, SVG geometry is kept as numbers, CSS keeps its numbers and
//! has its `url()`s normalised, page text is masked as the site asks and scrubbed; anything in a
//! shape this module does not know is scrubbed as free text. Canvas frames (`v`) are kept only
//! for sites that ask for them, and only as bounded JPEG or PNG `data:` URLs.
//!
//! The shape (js-snippet/src/replay/serialize.js): a snapshot is `{u: page URL, a: adds, …}`,
//! mutations are `{a: adds, m: [[id, {attr: value}]], x: [[id, text]], …}`; an add is
//! `[parent, before, first, node]`, a node is a text string or `[tag, attrs?, ...children]`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::scrub::scrub_in_place;
use super::url::{normalize_reference, normalize_srcset, normalize_url, UrlPolicy};
use crate::model::MaskText;

/// How a site's replay documents are treated.
#[derive(Debug, Clone, Copy)]
pub struct DocumentRules<'a> {
    pub urls: &'a UrlPolicy,
    pub mask: MaskText,
    /// Canvas frames are kept (`SiteSettings::canvas_frames`).
    pub canvas: bool,
}

/// What a value is, judged by where it sits in the document.
#[derive(Debug, Clone, Copy)]
enum Place {
    Root,
    Adds,
    Add,
    Node(Parent),
    Attrs,
    AttrChanges,
    TextChanges,
    /// Unknown shape: every string is free text.
    Any,
}

/// The element a text node sits in, as far as it decides how the text is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    Style,
    Textarea,
    Other,
    /// Not in this document (a text node added to, or changed in, an element sent earlier).
    Unknown,
}

/// Scrubs a replay document in place, iteratively so depth cannot exhaust the stack.
pub fn protect_document(d: &mut Value, rules: &DocumentRules) {
    let mut stack = vec![(d, Place::Root)];
    while let Some((value, place)) = stack.pop() {
        match (place, value) {
            (Place::Root, Value::Object(map)) => {
                scrub_keys(map);
                for (key, child) in map.iter_mut() {
                    match (key.as_str(), child) {
                        ("u", Value::String(u)) => *u = page_url(u, rules.urls),
                        ("a", child) => stack.push((child, Place::Adds)),
                        ("m", child) => stack.push((child, Place::AttrChanges)),
                        ("x", child) => stack.push((child, Place::TextChanges)),
                        // CSSOM rules ([id, css]): scrubbed as style sheets when they look like one
                        ("c", child) => stack.push((child, Place::TextChanges)),
                        ("v", child) => keep_canvas_frames(child, rules.canvas),
                        (_, child) => stack.push((child, Place::Any)),
                    }
                }
            }
            (Place::Adds, Value::Array(adds)) => stack.extend(adds.iter_mut().map(|a| (a, Place::Add))),
            (Place::Add, Value::Array(add)) => {
                let node_at = if add.len() >= 4 { 3 } else { usize::MAX };
                for (i, item) in add.iter_mut().enumerate() {
                    stack.push((item, if i == node_at { Place::Node(Parent::Unknown) } else { Place::Any }));
                }
            }
            (Place::Node(parent), Value::String(text)) => protect_text(text, parent, rules),
            (Place::Node(_), Value::Array(node)) => push_element(node, &mut stack),
            (Place::Attrs, Value::Object(attrs)) => {
                scrub_keys(attrs);
                for (name, value) in attrs.iter_mut() {
                    match value {
                        Value::String(v) => protect_attribute(name, v, rules),
                        other => stack.push((other, Place::Any)),
                    }
                }
            }
            (Place::AttrChanges, Value::Array(changes)) => {
                for change in changes {
                    let Value::Array(pair) = change else {
                        stack.push((change, Place::Any));
                        continue;
                    };
                    stack.extend(pair.iter_mut().map(|v| {
                        let place = if v.is_object() { Place::Attrs } else { Place::Any };
                        (v, place)
                    }));
                }
            }
            (Place::TextChanges, Value::Array(changes)) => {
                for change in changes {
                    let Value::Array(pair) = change else {
                        stack.push((change, Place::Any));
                        continue;
                    };
                    stack.extend(pair.iter_mut().map(|v| (v, Place::Node(Parent::Unknown))));
                }
            }
            (_, value) => push_any(value, &mut stack),
        }
    }
}

/// Longest canvas frame kept, in bytes of its `data:` URL (the snippet sends ≤ 30 000).
const MAX_CANVAS_FRAME: usize = 64 * 1024;

/// Canvas frames `[[id, "data:image/jpeg;base64,…"], …]`: all dropped unless the site asked for
/// them; otherwise only pairs whose image is a JPEG or PNG `data:` URL of bounded size survive,
/// so nothing but a raster image (no SVG, no markup, no text) travels this way.
fn keep_canvas_frames(v: &mut Value, allowed: bool) {
    let Value::Array(frames) = v else {
        *v = Value::Array(Vec::new());
        return;
    };
    if !allowed {
        frames.clear();
        return;
    }
    frames.retain(|f| match f.as_array().map(Vec::as_slice) {
        Some([Value::Number(id), Value::String(url)]) => id.is_u64() && is_image_data_url(url),
        _ => false,
    });
}

fn is_image_data_url(s: &str) -> bool {
    // the base64 of a JPEG's start-of-image marker, and of the PNG signature
    const PREFIXES: [&str; 2] = ["data:image/jpeg;base64,/9j/", "data:image/png;base64,iVBORw0KGgo"];
    let Some(data) = PREFIXES.iter().find_map(|p| s.strip_prefix(p)) else {
        return false;
    };
    s.len() <= MAX_CANVAS_FRAME
        && data.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// `[tag, attrs?, ...children]`: the children learn their parent from the tag.
fn push_element<'a>(node: &'a mut [Value], stack: &mut Vec<(&'a mut Value, Place)>) {
    let parent = match node.first() {
        Some(Value::String(tag)) if tag.eq_ignore_ascii_case("style") => Parent::Style,
        Some(Value::String(tag)) if tag.eq_ignore_ascii_case("textarea") => Parent::Textarea,
        _ => Parent::Other,
    };
    for (i, item) in node.iter_mut().enumerate() {
        let place = match (i, &*item) {
            (0, _) => Place::Any,
            (1, Value::Object(_)) => Place::Attrs,
            _ => Place::Node(parent),
        };
        stack.push((item, place));
    }
}

/// Free text anywhere: strings scrubbed, object keys too.
fn push_any<'a>(value: &'a mut Value, stack: &mut Vec<(&'a mut Value, Place)>) {
    match value {
        Value::String(s) => {
            scrub_in_place(s);
        }
        Value::Array(items) => stack.extend(items.iter_mut().map(|v| (v, Place::Any))),
        Value::Object(map) => {
            scrub_keys(map);
            stack.extend(map.values_mut().map(|v| (v, Place::Any)));
        }
        _ => {}
    }
}

fn scrub_keys(map: &mut Map<String, Value>) {
    if map.keys().any(|k| super::scrub::scrub_text(k) != k.as_str()) {
        let old = std::mem::take(map);
        for (mut k, v) in old {
            scrub_in_place(&mut k);
            map.insert(k, v);
        }
    }
}

/// The page URL of a snapshot: the view's URL rules; dropped (empty) when it is not a web URL.
fn page_url(raw: &str, urls: &UrlPolicy) -> String {
    normalize_url(raw, urls).map(|n| n.url).unwrap_or_default()
}

fn protect_text(text: &mut String, parent: Parent, rules: &DocumentRules) {
    let is_css = parent == Parent::Style || (parent == Parent::Unknown && looks_like_css(text));
    if is_css {
        scrub_css_in_place(text, rules.urls);
        return;
    }
    let mask = if parent == Parent::Textarea { MaskText::All } else { rules.mask };
    mask_in_place(text, mask);
    scrub_in_place(text);
}

/// A style sheet sent without its `<style>` element: rule blocks, ending with one.
fn looks_like_css(text: &str) -> bool {
    let t = text.trim();
    t.contains('{') && t.ends_with('}')
}

// ---------------------------------------------------------------------------------------------
// Attributes

/// Attributes holding one URL.
const URL_ATTRS: [&str; 11] = [
    "href",
    "src",
    "action",
    "formaction",
    "poster",
    "xlink:href",
    "background",
    "cite",
    "longdesc",
    "data",
    "manifest",
];

/// SVG geometry and other numeric presentation attributes: numbers, never personal data.
const GEOMETRY_ATTRS: [&str; 31] = [
    "d",
    "points",
    "viewbox",
    "transform",
    "gradienttransform",
    "patterntransform",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "fx",
    "fy",
    "dx",
    "dy",
    "width",
    "height",
    "offset",
    "pathlength",
    "stroke-width",
    "stroke-dasharray",
    "stroke-dashoffset",
    "opacity",
    "font-size",
    "rotate",
];

fn protect_attribute(name: &str, value: &mut String, rules: &DocumentRules) {
    let name = name.to_ascii_lowercase();
    let name = name.as_str();
    if URL_ATTRS.contains(&name) {
        *value = normalize_reference(value, rules.urls);
    } else if name == "srcset" || name == "imagesrcset" {
        *value = normalize_srcset(value, rules.urls);
    } else if name == "style" || name == "_css" {
        scrub_css_in_place(value, rules.urls);
    } else if is_text_attribute(name) {
        mask_in_place(value, rules.mask);
        scrub_in_place(value);
    } else if !(GEOMETRY_ATTRS.contains(&name) && is_numeric_geometry(value)) {
        scrub_in_place(value);
    }
}

/// Attributes that carry words a visitor may read (the snippet masks the same ones).
fn is_text_attribute(name: &str) -> bool {
    matches!(name, "value" | "placeholder" | "title" | "alt" | "label" | "content")
        || name.starts_with("aria-")
        || name.starts_with("data-")
}

/// Numbers with separators, path commands (`M`, `c`, `z`…), exponents, units and transform
/// functions — nothing a word, e-mail or name could be written in.
fn is_numeric_geometry(value: &str) -> bool {
    const WORDS: [&str; 12] =
        ["matrix", "translate", "scale", "rotate", "skewx", "skewy", "px", "em", "rem", "pt", "deg", "e"];
    let symbols_ok =
        value.chars().all(|c| c.is_ascii_alphanumeric() || c.is_ascii_whitespace() || ".,+-()%".contains(c));
    symbols_ok
        && value.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).all(|w| {
            w.bytes().all(|b| b"MmLlHhVvCcSsQqTtAaZzEe".contains(&b)) || WORDS.iter().any(|k| w.eq_ignore_ascii_case(k))
        })
}

// ---------------------------------------------------------------------------------------------
// CSS and text

static CSS_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)"#).expect("CSS url() pattern is valid")
});

/// CSS (a style sheet or a `style` attribute): every `url()` follows the URL rules, the text
/// between them is scrubbed (a decimal such as `53.28513035220995px` is no card number).
fn scrub_css_in_place(css: &mut String, urls: &UrlPolicy) {
    let mut out = String::with_capacity(css.len());
    let mut copied = 0;
    for caps in CSS_URL.captures_iter(css) {
        let whole = caps.get(0).expect("group 0 always matches");
        out.push_str(&super::scrub::scrub_text(&css[copied..whole.start()]));
        let (quote, inner) = match (caps.get(1), caps.get(2), caps.get(3)) {
            (Some(m), _, _) => ("\"", m.as_str()),
            (_, Some(m), _) => ("'", m.as_str()),
            (_, _, m) => ("", m.map_or("", |m| m.as_str())),
        };
        out.push_str("url(");
        out.push_str(quote);
        out.push_str(&normalize_reference(inner, urls));
        out.push_str(quote);
        out.push(')');
        copied = whole.end();
    }
    if copied == 0 {
        scrub_in_place(css);
        return;
    }
    out.push_str(&super::scrub::scrub_text(&css[copied..]));
    *css = out;
}

/// Masks page text as the site asks, keeping its length in characters (the layout survives):
/// `digits` replaces every word holding a digit or `@`, `all` every character but blanks.
pub fn mask_in_place(text: &mut String, mask: MaskText) {
    let needs = match mask {
        MaskText::All => text.chars().any(|c| !c.is_whitespace() && c != '*'),
        MaskText::Digits => text.split_whitespace().any(word_is_masked),
    };
    if !needs {
        return;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let blank_end = rest.find(|c: char| !c.is_whitespace()).unwrap_or(rest.len());
        out.push_str(&rest[..blank_end]);
        rest = &rest[blank_end..];
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..word_end];
        if mask == MaskText::All || word_is_masked(word) {
            out.extend(word.chars().map(|_| '*'));
        } else {
            out.push_str(word);
        }
        rest = &rest[word_end..];
    }
    *text = out;
}

fn word_is_masked(word: &str) -> bool {
    word.bytes().any(|b| b.is_ascii_digit() || b == b'@')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn protect(mut d: Value, mask: MaskText) -> Value {
        protect_document(&mut d, &DocumentRules { urls: &UrlPolicy::default(), mask, canvas: false });
        d
    }

    #[test]
    fn canvas_frames_only_for_sites_that_ask_and_only_jpeg_or_png() {
        let jpeg = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QEBD==";
        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let frames = json!({"v": [[7, jpeg], [8, "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="], [9, "data:text/html,<script>x()</script>"],
            [10, "https://evil.example/track.jpg"], ["11", jpeg], [12, format!("{jpeg}\"><script>")], [13, format!("{jpeg}{}", "A".repeat(70_000))],
            [14, png], [15, "data:image/png;base64,PHN2Zz48L3N2Zz4="]]});
        let urls = UrlPolicy::default();
        let mut on = frames.clone();
        protect_document(&mut on, &DocumentRules { urls: &urls, mask: MaskText::Digits, canvas: true });
        assert_eq!(on, json!({"v": [[7, jpeg], [14, png]]}), "a JPEG and a PNG survive unscrubbed, nothing else does");
        let mut off = frames;
        protect_document(&mut off, &DocumentRules { urls: &urls, mask: MaskText::Digits, canvas: false });
        assert_eq!(off, json!({"v": []}), "a site that did not ask keeps no frame");
        let mut odd = json!({"v": "data:image/jpeg;base64,/9j/AAAA"});
        protect_document(&mut odd, &DocumentRules { urls: &urls, mask: MaskText::Digits, canvas: true });
        assert_eq!(odd, json!({"v": []}));
    }

    #[test]
    fn hashed_asset_names_and_chart_paths_survive() {
        // The Rust book and AdminLTE/Tabler cases of issue #18.
        let path = "M0,53.28513035220995L10.5,28.513035220995C1.2.3.4 5,6 7,8Z";
        let snap = json!({"u": "https://doc.example/book/ch01.html", "w": 1280, "h": 720, "a": [[0, 0, 1,
            ["html", ["head", ["link", {"rel": "stylesheet", "href": "theme/semantic-notes-9b5766c0.css"}]],
             ["body", ["img", {"src": "rust-logo-9a9549ea.svg", "alt": "Logo"}],
              ["svg", {"viewBox": "0 0 320.4111111111111 100"},
               ["path", {"d": path, "transform": "translate(4111111111111111, 0) scale(1.5)", "fill": "url(#SvgjsLinearGradient10011)"}],
               ["polyline", {"points": "0,53.28513035220995 4.2851303522099,1"}],
               ["rect", {"x": "53.28513035220995", "width": "28513035220995"}]]]]]]});
        assert_eq!(protect(snap.clone(), MaskText::Digits), snap);
    }

    #[test]
    fn cssom_rules_are_scrubbed_as_css() {
        let d = json!({"a": [[1, 0, 2, ["style", {"_css": ".a{width:53.28513035220995px;background:url(/orders/98765432/x.png)}"}]]],
                       "c": [[0, ".b{height:4111111111111111px}"]]});
        let out = protect(d, MaskText::Digits);
        assert_eq!(out["a"][0][3][1]["_css"], ".a{width:53.28513035220995px;background:url(/orders/:id/x.png)}");
        assert_eq!(out["c"][0][1], ".b{height:4111111111111111px}");
    }

    #[test]
    fn css_keeps_numbers_and_normalises_urls() {
        let css =
            "a{left:53.28513035220995px;opacity:0.28513035220995;background:url('/u/98765432/bg-9a9549ea.png?uid=7')}\
                   .x{background:url(img/a.png#frag)} b::before{content:\"jane@example.com\"}";
        let snap = json!({"a": [[1, 0, 2, ["style", css]], [1, 0, 9, ["div", {"style": "width:53.28513035220995px;background:url(\"/orders/98765432/x.png\")"}]]]});
        let out = protect(snap, MaskText::All);
        assert_eq!(
            out["a"][0][3][1],
            "a{left:53.28513035220995px;opacity:0.28513035220995;background:url('/u/:id/bg-9a9549ea.png')}\
             .x{background:url(img/a.png#frag)} b::before{content:\"[email]\"}"
        );
        assert_eq!(out["a"][1][3][1]["style"], "width:53.28513035220995px;background:url(\"/orders/:id/x.png\")");
    }

    #[test]
    fn urls_inside_documents_follow_the_url_rules() {
        let snap = json!({"u": "https://shop.example/orders/98765432/invoice?uid=abc#top", "a": [[0, 0, 1,
            ["a", {"href": "/orders/98765432/invoice?uid=u-1&utm_source=mail"},
             ["img", {"srcset": "/u/98765432/a.png?sig=1 1x, b-9a9549ea.png 2x", "src": "https://cdn.example/u/jane@example.com/p.png"}],
             ["use", {"xlink:href": "#icon-star"}]]]]});
        let out = protect(snap, MaskText::Digits);
        assert_eq!(out["u"], "https://shop.example/orders/:id/invoice");
        let node = &out["a"][0][3];
        assert_eq!(node[0], "a");
        assert_eq!(node[1]["href"], "/orders/:id/invoice?utm_source=mail");
        assert_eq!(node[2][1]["srcset"], "/u/:id/a.png 1x, b-9a9549ea.png 2x");
        assert_eq!(node[2][1]["src"], "https://cdn.example/u/:id/p.png");
        assert_eq!(node[3][1]["xlink:href"], "#icon-star");
        let mutation =
            json!({"m": [[5, {"href": "/orders/98765432/invoice?uid=1", "title": "Jane's order 98765432"}]]});
        let out = protect(mutation, MaskText::Digits);
        assert_eq!(out["m"][0][1]["href"], "/orders/:id/invoice");
        assert_eq!(out["m"][0][1]["title"], "Jane's order ********");
    }

    #[test]
    fn page_text_is_masked_as_the_site_asks() {
        let snap = json!({"a": [[0, 0, 1, ["p", "Jane Doe, 12 Main St, jane@example.com"]], [1, 0, 3, "Call 192.168.1.20"]],
                          "x": [[3, "Ship to Jane Doe"]]});
        let digits = protect(snap.clone(), MaskText::Digits);
        assert_eq!(digits["a"][0][3][1], "Jane Doe, ** Main St, ****************");
        assert_eq!(digits["a"][1][3], "Call ************");
        assert_eq!(digits["x"][0][1], "Ship to Jane Doe");
        let all = protect(snap, MaskText::All);
        assert_eq!(all["a"][0][3][1], "**** **** ** **** *** ****************");
        assert_eq!(all["x"][0][1], "**** ** **** ***");
    }

    #[test]
    fn textarea_text_is_always_masked_whole() {
        let out = protect(json!({"a": [[0, 0, 1, ["textarea", "my secret note"]]]}), MaskText::Digits);
        assert_eq!(out["a"][0][3][1], "** ****** ****");
    }

    #[test]
    fn unknown_shapes_are_scrubbed_as_free_text() {
        let out = protect(
            json!({"html": "<p>jane@example.com 4111 1111 1111 1111</p>", "a": [["x"]], "m": "10.0.0.1"}),
            MaskText::Digits,
        );
        assert_eq!(out, json!({"html": "<p>[email] [card]</p>", "a": [["x"]], "m": "[ip]"}));
        let out = protect(json!(["jane@example.com", {"jane@example.com": 1}]), MaskText::Digits);
        assert_eq!(out, json!(["[email]", {"[email]": 1}]));
    }

    #[test]
    fn geometry_attributes_with_words_are_scrubbed() {
        let out = protect(
            json!({"m": [[1, {"d": "call jane@example.com", "width": "4111 1111 1111 1111 px wide"}]]}),
            MaskText::Digits,
        );
        assert_eq!(out["m"][0][1]["d"], "call [email]");
        assert_eq!(out["m"][0][1]["width"], "[card] px wide");
    }
}
