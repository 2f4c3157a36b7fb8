//! Control characters (C0, DEL, C1: what terminals read as commands — clear screen, OSC 52
//! clipboard writes): removed from every stored string at validation, and escaped in every
//! human-readable output anyway, for data stored before this rule existed.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` without control characters; a tab or line break becomes a space so words stay apart.
pub fn strip_controls(s: Cow<'_, str>) -> String {
    if !s.chars().any(char::is_control) {
        return s.into_owned();
    }
    s.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Removes control characters from every string (and key) of a replay document, keeping tabs
/// and line breaks: in page text and style sheets they are layout (`<pre>` blocks), not commands.
/// Iterative, so depth cannot exhaust the stack.
pub fn strip_controls_in_document(value: &mut serde_json::Value) {
    use serde_json::Value;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => strip_in_place(s),
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                if map.keys().any(|k| k.chars().any(is_command)) {
                    let old = std::mem::take(map);
                    for (mut k, v) in old {
                        strip_in_place(&mut k);
                        map.insert(k, v);
                    }
                }
                stack.extend(map.values_mut());
            }
            _ => {}
        }
    }
}

fn strip_in_place(s: &mut String) {
    if s.chars().any(is_command) {
        s.retain(|c| !is_command(c));
    }
}

/// A control character other than tab, line feed and carriage return.
fn is_command(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// `s` for a terminal: every control character but the line feed written as `\u001b` (the
/// JSON escape, so `--json` output stays valid JSON).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_loses_its_controls() {
        let clear_and_clipboard = "a\u{1b}[2J\u{1b}]52;c;ZXZpbA==\u{7}b\u{9b}31mc\u{7f}";
        assert_eq!(strip_controls(clear_and_clipboard.into()), "a[2J]52;c;ZXZpbA==b31mc");
        assert_eq!(strip_controls("line\none\ttab\r".into()), "line one tab ");
        assert_eq!(strip_controls("plain — ünïcode".into()), "plain — ünïcode");
    }

    #[test]
    fn documents_keep_layout_whitespace() {
        let mut d =
            serde_json::json!({"a": [[0, 0, 1, ["pre", "fn main() {\n\tok\u{1b}[2J\r\n}"]]], "k\u{7}": "\u{85}x"});
        strip_controls_in_document(&mut d);
        assert_eq!(d, serde_json::json!({"a": [[0, 0, 1, ["pre", "fn main() {\n\tok[2J\r\n}"]]], "k": "x"}));
    }

    #[test]
    fn output_escapes_controls_but_keeps_lines() {
        assert_eq!(escape_controls("a\u{1b}[2Jb\u{9b}\nc\t"), "a\\u001b[2Jb\\u009b\nc\\u0009");
        assert!(matches!(escape_controls("plain\ntext"), Cow::Borrowed(_)));
        let json = format!("{{\"sel\":\"{}\"}}", escape_controls("x\u{9b}y"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap()["sel"], "x\u{9b}y");
    }
}
