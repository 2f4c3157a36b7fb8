//! User-Agent reduction: the raw header is never stored, only a device class and browser family, and bots are told apart.
//!
//! Cheap by construction: the bot patterns (isbot's maintained list) compiled once, then
//! plain `str::contains` checks in a fixed order; nothing allocates.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Device class of a human visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
}

impl Device {
    pub fn as_str(&self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Browser family of a human visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Browser {
    Chrome,
    Firefox,
    Safari,
    Edge,
    Opera,
    Samsung,
    Other,
}

impl Browser {
    pub fn as_str(&self) -> &'static str {
        match self {
            Browser::Chrome => "chrome",
            Browser::Firefox => "firefox",
            Browser::Safari => "safari",
            Browser::Edge => "edge",
            Browser::Opera => "opera",
            Browser::Samsung => "samsung",
            Browser::Other => "other",
        }
    }
}

impl fmt::Display for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// All that may be kept of a human visitor's User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientClass {
    pub device: Device,
    pub browser: Browser,
}

/// Whether a request comes from a person's browser (and which kind) or from a bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UaVerdict {
    Human(ClientClass),
    Bot,
}

/// Classifies a User-Agent header; a missing or blank one is a bot. Headless Chrome counts as
/// a human Chrome (the project's own browser tests drive it).
pub fn classify(user_agent: Option<&str>) -> UaVerdict {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else {
        return UaVerdict::Bot;
    };
    if let Some(verdict) = VERDICTS.get(ua) {
        return verdict;
    }
    let verdict = if BOTS.is_match(ua) {
        UaVerdict::Bot
    } else {
        UaVerdict::Human(ClientClass { device: device(ua), browser: browser(ua) })
    };
    VERDICTS.put(ua, verdict);
    verdict
}

/// Verdicts of recently seen User-Agents. The look-around patterns run on `fancy-regex`'s
/// backtracking VM, one by one, which cost ~13 % of a collect's CPU in the load run's profile;
/// the same few hundred User-Agents send nearly every batch, so each is classified once.
static VERDICTS: LazyLock<VerdictCache> = LazyLock::new(VerdictCache::default);

#[derive(Default)]
struct VerdictCache(std::sync::Mutex<std::collections::HashMap<Box<str>, UaVerdict>>);

impl VerdictCache {
    /// Bounds memory whatever clients send: at most this many entries of at most `MAX_KEY` bytes.
    const MAX_ENTRIES: usize = 4096;
    const MAX_KEY: usize = 512;

    fn get(&self, ua: &str) -> Option<UaVerdict> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(ua).copied()
    }

    fn put(&self, ua: &str, verdict: UaVerdict) {
        if ua.len() > Self::MAX_KEY {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX_ENTRIES {
            // Crude but bounded: a flood of distinct User-Agents only costs re-classification.
            map.clear();
        }
        map.insert(ua.into(), verdict);
    }
}

/// The `isbot` npm package's maintained list of crawler, link-preview, HTTP-library and monitor
/// patterns, as it comes (JavaScript syntax; `scripts/update-bot-patterns.sh` refreshes it).
const ISBOT_PATTERNS: &str = include_str!("bot_patterns.txt");

/// isbot patterns not used here, each with why.
const LEFT_OUT: [&str; 1] = [
    "headless", // the project's own browser tests drive headless Chromium: it counts as Chrome
];

/// isbot's patterns compiled: the plain ones as one alternation (one lazy-DFA pass), the few
/// with look-around (`(?<! cu)bots?`, `java(?!;)`) one by one with `fancy-regex`.
struct BotPatterns {
    plain: Regex,
    look_around: Vec<fancy_regex::Regex>,
}

impl BotPatterns {
    fn is_match(&self, ua: &str) -> bool {
        self.plain.is_match(ua) || self.look_around.iter().any(|r| r.is_match(ua).unwrap_or(false))
    }
}

static BOTS: LazyLock<BotPatterns> = LazyLock::new(|| {
    let (plain, look_around): (Vec<String>, Vec<&str>) = (Vec::new(), Vec::new());
    let (plain, look_around) = isbot_patterns().fold((plain, look_around), |(mut plain, mut fancy), p| {
        match plain_pattern(p) {
            Some(rust) => plain.push(rust),
            None => fancy.push(p),
        }
        (plain, fancy)
    });
    BotPatterns {
        plain: Regex::new(&format!("(?i){}", plain.join("|"))).expect("each part compiled on its own"),
        look_around: look_around.into_iter().filter_map(look_around_pattern).collect(),
    }
});

fn isbot_patterns() -> impl Iterator<Item = &'static str> {
    ISBOT_PATTERNS.lines().filter(|l| !l.is_empty() && !l.starts_with('#') && !LEFT_OUT.contains(l))
}

/// The pattern in the `regex` crate's syntax, when it has one. JavaScript's `\b` (without the
/// `u` flag) is ASCII, and so is it here: the lazy DFA then never gives up on non-ASCII input.
fn plain_pattern(p: &str) -> Option<String> {
    let rust = format!("(?:{})", from_javascript(p).replace(r"\b", r"(?-u:\b)"));
    Regex::new(&format!("(?i){rust}")).is_ok().then_some(rust)
}

fn look_around_pattern(p: &str) -> Option<fancy_regex::Regex> {
    fancy_regex::RegexBuilder::new(&from_javascript(p)).case_insensitive(true).build().ok()
}

/// JavaScript reads a `-` right after a class escape (`[\w\d-.]`) as itself; Rust wants it escaped.
fn from_javascript(p: &str) -> String {
    ["w", "d", "s", "W", "D", "S"].iter().fold(p.to_owned(), |p, c| p.replace(&format!("\\{c}-"), &format!("\\{c}\\-")))
}

/// iPad and Android without "Mobi" are tablets; iPhone, iPod and anything "Mobi" are mobiles.
fn device(ua: &str) -> Device {
    if ua.contains("iPad") {
        Device::Tablet
    } else if ua.contains("Android") {
        if ua.contains("Mobi") {
            Device::Mobile
        } else {
            Device::Tablet
        }
    } else if contains_any(ua, &["iPhone", "iPod", "Mobi"]) {
        Device::Mobile
    } else {
        Device::Desktop
    }
}

/// Chromium derivatives name themselves besides "Chrome/", and nearly everyone says "Safari/",
/// so the order matters: the most specific token first.
fn browser(ua: &str) -> Browser {
    const TOKENS: [(Browser, &[&str]); 5] = [
        (Browser::Edge, &["Edg/", "EdgA/", "EdgiOS/", "Edge/"]),
        (Browser::Opera, &["OPR/", "OPiOS/", "Opera"]),
        (Browser::Samsung, &["SamsungBrowser"]),
        (Browser::Chrome, &["Chrome/", "CriOS", "Chromium/"]),
        (Browser::Firefox, &["Firefox/", "FxiOS"]),
    ];
    if let Some((browser, _)) = TOKENS.iter().find(|(_, tokens)| contains_any(ua, tokens)) {
        return *browser;
    }
    // The old Android stock browser says "Safari/" too.
    if ua.contains("Safari/") && !ua.contains("Android") {
        Browser::Safari
    } else {
        Browser::Other
    }
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|needle| haystack.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(device: Device, browser: Browser) -> UaVerdict {
        UaVerdict::Human(ClientClass { device, browser })
    }

    fn check(ua: &str, expected: UaVerdict) {
        assert_eq!(classify(Some(ua)), expected, "{ua}");
    }

    #[test]
    fn desktop_browsers() {
        use Browser::*;
        let desktop = |b| human(Device::Desktop, b);
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
            desktop(Chrome),
        );
        check("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", desktop(Firefox));
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
             Version/18.1 Safari/605.1.15",
            desktop(Safari),
        );
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            desktop(Edge),
        );
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
            desktop(Opera),
        );
        check("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", desktop(Firefox));
        check("Lynx/2.9.0dev.12 libwww-FM/2.14 SSL-MM/1.4.1 GNUTLS/3.7.8", desktop(Other));
    }

    #[test]
    fn headless_chrome_is_human() {
        check(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             HeadlessChrome/131.0.0.0 Safari/537.36",
            human(Device::Desktop, Browser::Chrome),
        );
    }

    #[test]
    fn mobile_browsers() {
        use Browser::*;
        let mobile = |b| human(Device::Mobile, b);
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
             Version/18.1 Mobile/15E148 Safari/604.1",
            mobile(Safari),
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
             CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            mobile(Chrome),
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
             FxiOS/132.0 Mobile/15E148 Safari/605.1.15",
            mobile(Firefox),
        );
        check(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Mobile Safari/537.36",
            mobile(Chrome),
        );
        check(
            "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) \
             SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
            mobile(Samsung),
        );
        check("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", mobile(Firefox));
        check(
            "Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
            mobile(Edge),
        );
        check(
            "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/120.0.0.0 Mobile Safari/537.36",
            mobile(Chrome),
        );
    }

    #[test]
    fn tablets() {
        check(
            "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
             Version/17.5 Mobile/15E148 Safari/604.1",
            human(Device::Tablet, Browser::Safari),
        );
        check(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
            human(Device::Tablet, Browser::Chrome),
        );
    }

    #[test]
    fn bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "curl/8.5.0",
            "Wget/1.21.4",
            "python-requests/2.32.3",
            "Go-http-client/1.1",
            "okhttp/4.12.0",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36 PTST/241115.180523",
            "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
            "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        ] {
            check(ua, UaVerdict::Bot);
        }
    }

    #[test]
    fn every_isbot_pattern_compiles() {
        let all = isbot_patterns().count();
        assert!(all > 150, "{all} patterns: is src/privacy/bot_patterns.txt complete?");
        let broken: Vec<&str> =
            isbot_patterns().filter(|p| plain_pattern(p).is_none() && look_around_pattern(p).is_none()).collect();
        assert!(broken.is_empty(), "compiled by neither regex engine: {broken:?}");
        let fancy = isbot_patterns().filter(|p| plain_pattern(p).is_none()).count();
        assert!(fancy < 20, "{fancy} look-around patterns: each is a backtracking search");
    }

    #[test]
    fn more_bots_from_the_maintained_list() {
        for ua in [
            "Mozilla/5.0 (compatible; StatusCake)",
            "Datadog/Synthetics",
            "Mozilla/5.0 (compatible; Google-InspectionTool/1.0)",
            "axios/1.7.2",
            "Java/17.0.2",
            "Scrapy/2.11.2 (+https://scrapy.org)",
            "WhatsApp/2.23.20.0",
            "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)",
            "Mozilla/5.0 (compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
            "ab",
        ] {
            check(ua, UaVerdict::Bot);
        }
    }

    #[test]
    fn missing_or_blank_is_a_bot() {
        assert_eq!(classify(None), UaVerdict::Bot);
        assert_eq!(classify(Some("")), UaVerdict::Bot);
        assert_eq!(classify(Some("   ")), UaVerdict::Bot);
    }

    #[test]
    fn names() {
        assert_eq!(Device::Tablet.as_str(), "tablet");
        assert_eq!(Browser::Samsung.to_string(), "samsung");
        let all = [Browser::Chrome, Browser::Firefox, Browser::Safari, Browser::Edge, Browser::Opera, Browser::Other];
        assert!(all.iter().all(|b| b.as_str().chars().all(|c| c.is_ascii_lowercase())));
    }

    #[test]
    fn cached_verdicts_equal_fresh_ones_and_the_cache_stays_bounded() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let crawler = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        for _ in 0..3 {
            assert_eq!(classify(Some(chrome)), human(Device::Desktop, Browser::Chrome));
            assert_eq!(classify(Some(crawler)), UaVerdict::Bot);
        }
        for n in 0..(VerdictCache::MAX_ENTRIES + 10) {
            classify(Some(&format!("Mozilla/5.0 Firefox/{n}")));
        }
        assert!(VERDICTS.0.lock().unwrap().len() <= VerdictCache::MAX_ENTRIES);
        assert_eq!(classify(Some(crawler)), UaVerdict::Bot);
    }
}
