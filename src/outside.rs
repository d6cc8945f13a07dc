//! The one way out for text that came from elsewhere: HTTP bodies, headers and Socket.IO
//! errors from the gateway (which may be broken, or not ours), and AWS's free text (ECS event
//! messages, stopped-task reasons, task definition values). Such text is an [`Outside`], not a
//! `String`: it has no `Deref`/`AsRef<str>`, its `Display` is the escaped, capped form, and its
//! `Serialize` (JSON) is the text as it came, bounded. Every way out goes through here:
//!
//! - **terminal and log lines** ([`Outside`]'s `Display`, [`clean`] for whole lines): control
//!   characters (C0, DEL, C1), bidi controls and other format characters, line and paragraph
//!   separators and noncharacters are escaped visibly (`\n`, `\x1b`, `\u{202e}`); nothing
//!   can start a line with a GitHub Actions workflow command (`::` after spaces, `##[`
//!   anywhere); a field shows at most [`SHOW_CAP`] characters, then `… (N more bytes)`;
//! - **GitHub workflow commands** ([`annotation`]): `%`, `\r`, `\n` in the data and also `:`
//!   and `,` in properties percent-escaped, as the Actions runner unescapes them;
//! - **the step summary** ([`markdown_cell`]): cut first, then a code span (`|` escaped), so
//!   server text renders as text and nothing in it becomes a link;
//! - **JUnit** ([`xml_text`]): characters XML 1.0 forbids dropped, the rest escaped;
//! - **JSON**: lossless (serde escapes what JSON must) but at most [`KEEP_CAP`] bytes a field.
//!
//! Secrets never get out: every [`Outside`] is redacted when it is made, on the whole text
//! before anything is cut or formatted: the user info of every URL in it (`https://ci:…@host`,
//! found by [`user_info`]) and the secrets registered with [`register_secret`] (the gateway
//! token, the secret a token is minted from, a URL's password: see `gateway::token::Secret`)
//! are `***`. [`clean`] (every line printed, annotations, the summary, JUnit) and JSON redact
//! again on the way out, so text that never was an [`Outside`] is masked too.
//!
//! Depends on std and serde only, so the fuzz target (`fuzz/`) includes it by path.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

#[path = "outside/user_info.rs"]
pub mod user_info;

/// Characters of one outside field shown in a message, a log line, an annotation, a summary
/// cell or JUnit, before `… (N more bytes)`.
pub const SHOW_CAP: usize = 300;
/// Bytes of one outside field kept (and written to JSON), before `… (N more bytes)`.
pub const KEEP_CAP: usize = 4096;
/// Characters of one output line (our text with the outside fields in it) before it is cut.
pub const LINE_CAP: usize = 16 * 1024;
/// What a secret is replaced with.
pub const REDACTED: &str = "***";
/// Secrets shorter than this are not registered: replacing them would mangle ordinary words
/// (a one-character token turns "expires" into "e***pires"). The gateway token itself is
/// refused below 16 characters (`gateway::settings`).
pub const MIN_SECRET_LEN: usize = 6;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds `secret` to what every [`Outside`] and every cleaned line is redacted against, for the
/// life of the process. Longer secrets are replaced first, so one that contains another goes
/// whole.
pub fn register_secret(secret: &str) {
    if secret.chars().count() < MIN_SECRET_LEN {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|s| s == secret) {
        all.push(secret.to_string());
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret, then the user info of every URL in it, replaced by
/// [`REDACTED`]. Secrets first: a secret that itself looks like a URL goes whole.
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), REDACTED));
        }
    }
    match user_info::mask(&out, REDACTED) {
        Cow::Borrowed(_) => out,
        Cow::Owned(masked) => Cow::Owned(masked),
    }
}

// ---------------------------------------------------------------------------------------------
// The type

/// Text from a server or from AWS: redacted, at most [`KEEP_CAP`] bytes kept. `Display` is the
/// escaped form capped at [`SHOW_CAP`] characters; `Debug` the same in quotes; JSON the text
/// as it came (redacted, bounded, with the cut marked).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Outside {
    text: String,
    /// Bytes cut off when it was made.
    omitted: usize,
}

impl Outside {
    /// Redacts `text` whole, then keeps at most [`KEEP_CAP`] bytes.
    pub fn new(text: &str) -> Outside {
        let text = redact(text);
        let keep = floor_char_boundary(&text, KEEP_CAP);
        Outside {
            omitted: text.len() - keep,
            text: text[..keep].to_string(),
        }
    }

    /// Bytes as a server sent them: invalid UTF-8 becomes U+FFFD (nothing is cut first).
    pub fn from_bytes(bytes: &[u8]) -> Outside {
        Outside::new(&String::from_utf8_lossy(bytes))
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.omitted == 0
    }

    /// For decisions (`Session ID unknown`), never for output.
    pub fn contains(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }

    /// `f` applied to the text, for decisions that need more than [`Outside::contains`]; the
    /// text itself never leaves this way.
    pub fn test(&self, f: impl FnOnce(&str) -> bool) -> bool {
        f(&self.text)
    }

    /// Whether it is exactly `s` (for decisions).
    pub fn is(&self, s: &str) -> bool {
        self.omitted == 0 && self.text == s
    }

    /// Without trailing `c`: a sentence's full stop before our own punctuation.
    pub fn trim_end_matches(&self, c: char) -> Outside {
        Outside {
            text: self.text.trim_end_matches(c).to_string(),
            omitted: self.omitted,
        }
    }

    /// `prefix` (our words) followed by this text, still outside text (JSON stays lossless).
    pub fn with_prefix(&self, prefix: &str) -> Outside {
        Outside {
            text: format!("{prefix}{}", self.text),
            omitted: self.omitted,
        }
    }

    /// The escaped form, at most `max` characters of it, then `… (N more bytes)`.
    pub fn shown(&self, max: usize) -> String {
        let trimmed = self.text.trim_matches(char::is_whitespace);
        let mut out = Escaper::new(max);
        for (i, c) in trimmed.char_indices() {
            if !out.push(c) {
                let rest = trimmed.len() - i + self.omitted;
                return format!("{}… ({rest} more bytes)", out.text);
            }
        }
        if self.omitted > 0 {
            return format!("{}… ({} more bytes)", out.text, self.omitted);
        }
        out.text
    }

    /// The escaped form in double quotes, at most `max` characters inside.
    pub fn quoted(&self, max: usize) -> String {
        format!("\"{}\"", self.shown(max))
    }
}

impl From<&str> for Outside {
    fn from(s: &str) -> Outside {
        Outside::new(s)
    }
}

impl From<String> for Outside {
    fn from(s: String) -> Outside {
        Outside::new(&s)
    }
}

impl fmt::Display for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown(SHOW_CAP))
    }
}

impl fmt::Debug for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted(SHOW_CAP))
    }
}

impl serde::Serialize for Outside {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.omitted == 0 {
            s.serialize_str(&self.text)
        } else {
            s.serialize_str(&format!("{}… ({} more bytes)", self.text, self.omitted))
        }
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Escaping

/// Unicode format characters (general category Cf, Unicode 15.1): bidi controls, zero-width
/// characters, the BOM, tags and the like, which change how the text around them is shown.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160), // Hangul fillers: invisible (Lo, but used to hide text)
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E), // line and paragraph separators (Zl, Zp), then bidi embeddings
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0x3164, 0x3164),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is shown escaped: controls (C0, DEL, C1), format characters, line and
/// paragraph separators, noncharacters.
pub fn is_hidden(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
        || (0xFDD0..=0xFDEF).contains(&u)
        || u & 0xFFFE == 0xFFFE
}

/// The visible escape of a hidden character.
fn escape_char(c: char, out: &mut String) {
    use std::fmt::Write as _;
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// Builds one line's escaped form: hidden characters escaped, a `:` that would start the line
/// (after spaces) escaped, `[` after `##` escaped, at most `max` characters.
struct Escaper {
    text: String,
    chars: usize,
    max: usize,
    /// Only whitespace so far.
    at_start: bool,
}

impl Escaper {
    fn new(max: usize) -> Escaper {
        Escaper {
            text: String::new(),
            chars: 0,
            max,
            at_start: true,
        }
    }

    /// Appends `c` (escaped as needed); `false` when it does not fit.
    fn push(&mut self, c: char) -> bool {
        let mut piece = String::new();
        let command_start = (c == ':' && self.at_start) || (c == '[' && self.text.ends_with("##"));
        if is_hidden(c) || command_start {
            escape_char(c, &mut piece);
        } else {
            piece.push(c);
        }
        if !c.is_whitespace() {
            self.at_start = false;
        }
        let n = piece.chars().count();
        if self.chars + n > self.max {
            return false;
        }
        self.chars += n;
        self.text.push_str(&piece);
        true
    }

    /// Appends an ANSI SGR sequence (`ESC [ digits ; … m`) as it is.
    fn push_sgr(&mut self, seq: &str) {
        self.text.push_str(seq);
    }
}

/// The length of an ANSI SGR sequence at the start of `s` (`\x1b[1;31m`), if there is one.
fn sgr_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 3 || b[0] != 0x1b || b[1] != b'[' {
        return None;
    }
    let end = b[2..]
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == b';'))?
        + 2;
    (b[end] == b'm' && end <= 32).then_some(end + 1)
}

/// Text about to be printed (ours, with outside fields in it), made safe line by line: redacted,
/// hidden characters escaped, no workflow command at any line start, each line at most
/// [`LINE_CAP`] characters. `\n` separates lines and stays; `\r` is escaped. With `keep_ansi`
/// (colours on, a terminal), well-formed SGR colour sequences are kept.
pub fn clean(text: &str, keep_ansi: bool) -> String {
    let text = redact(text);
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut e = Escaper::new(LINE_CAP);
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if keep_ansi {
                if let Some(len) = sgr_len(rest) {
                    e.push_sgr(&rest[..len]);
                    rest = &rest[len..];
                    continue;
                }
            }
            if !e.push(c) {
                e.text.push_str(&format!("… ({} more bytes)", rest.len()));
                break;
            }
            rest = &rest[c.len_utf8()..];
        }
        out.push_str(&e.text);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions workflow commands

/// Longest annotation message written; the runner shows a few lines of one anyway.
pub const ANNOTATION_CAP: usize = 4096;

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command line, `::error title=…::message`: the message cleaned line by line
/// (see [`clean`]) and percent-escaped (`%`, `\r`, `\n`), the title also `:` and `,`. The only
/// way this tool writes a workflow command.
pub fn annotation(kind: &str, title: Option<&str>, message: &str) -> String {
    let mut msg = clean(message, false);
    if msg.len() > ANNOTATION_CAP {
        let cut = floor_char_boundary(&msg, ANNOTATION_CAP);
        let rest = msg.len() - cut;
        msg.truncate(cut);
        msg.push_str(&format!("… ({rest} more bytes)"));
    }
    let title = title
        .map(|t| format!(" title={}", escape_property(&clean(t, false))))
        .unwrap_or_default();
    format!("::{kind}{title}::{}", escape_data(&msg))
}

// ---------------------------------------------------------------------------------------------
// Markdown (the step summary) and XML (JUnit)

/// A table cell of the step summary: cleaned to one line, cut to `max` characters, then put in
/// a code span, where GitHub's renderer acts on nothing: no HTML, emphasis or links, and none
/// of its extended autolinks (`www.…`, `admin@…`, `https://…`), which it finds in the decoded
/// text, so entities (`&#64;`) do not stop them. The fence is one backtick longer than the
/// longest run inside; a `|` is `\|`, which the table takes out before the span is read, so
/// it never ends the cell. Cutting first means the escape is never split.
pub fn markdown_cell(text: &str, max: usize) -> String {
    let line = clean(text, false).replace('\n', " ");
    let line = line.trim();
    let (kept, rest) = match line.char_indices().nth(max) {
        Some((i, _)) => (line[..i].trim_end(), line.len() - i),
        None => (line, 0),
    };
    let mut out = String::new();
    if !kept.is_empty() {
        let longest = kept.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest + 1);
        out = format!("{fence} {} {fence}", kept.replace('|', "\\|"));
    }
    if rest > 0 {
        out.push_str(&format!(" … ({rest} more bytes)"));
    }
    out
}

/// Whether XML 1.0 allows `c` in a document.
pub fn xml_allowed(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Text for an XML attribute or element: characters XML forbids dropped, the rest cleaned
/// (see [`clean`]), cut to `max` characters, then `&<>"'` escaped.
pub fn xml_text(text: &str, max: usize) -> String {
    let allowed: String = text.chars().filter(|c| xml_allowed(*c)).collect();
    let cleaned = clean(&allowed, false);
    let mut out = String::with_capacity(cleaned.len());
    for (n, c) in cleaned.chars().enumerate() {
        if n == max {
            let rest = cleaned.len() - cleaned.char_indices().nth(n).map_or(0, |(i, _)| i);
            out.push_str(&format!("… ({rest} more bytes)"));
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for an HTML page (an element's text or a double-quoted attribute, inline SVG too):
/// the same cleaning, cut and `&<>"'` escaping as [`xml_text`], so `<script>` or `</svg>` in
/// a server's words stays text.
pub fn html_text(text: &str, max: usize) -> String {
    xml_text(text, max)
}

// ---------------------------------------------------------------------------------------------
// What the Actions runner would take as a command (for tests of every output)

/// The lines of `output` the GitHub Actions runner would parse as a workflow command: it reads
/// lines split at `\n`, `\r` or `\r\n`; a line is a command when, after leading whitespace, it
/// starts with `::` and has a second `::`, or anywhere it has `##[` with a `]` after it.
pub fn runner_commands(output: &str) -> Vec<&str> {
    output
        .split(['\n', '\r'])
        .filter(|line| {
            let t = line.trim_start();
            let v2 = t.starts_with("::") && t[2..].contains("::");
            let v1 = line
                .find("##[")
                .is_some_and(|i| line[i + 3..].contains(']'));
            v2 || v1
        })
        .collect()
}

/// `url` without user info (`http://admin:pw@host/x` is shown `http://host/x`); anything that
/// does not parse is shown up to its first `@` at most.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            let s = u.to_string();
            if url.ends_with('/') {
                s
            } else {
                s.trim_end_matches('/').to_string()
            }
        }
        Err(_) => match url.split_once('@') {
            Some((_, host)) => format!("(user info hidden)@{host}"),
            None => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_escaped_visibly() {
        let o = Outside::new("a\nb\rc\td\u{1b}[31me\u{7f}f\u{85}g\u{9b}h\u{202e}i\u{2066}j\u{200b}k\u{feff}l\u{fffe}m\u{2028}n");
        assert_eq!(
            o.to_string(),
            r"a\nb\rc\td\x1b[31me\x7ff\u{85}g\u{9b}h\u{202e}i\u{2066}j\u{200b}k\u{feff}l\u{fffe}m\u{2028}n"
        );
        // Printable text, accents and emoji pass unchanged.
        assert_eq!(
            Outside::new("gateway-2 é ✅ 中").to_string(),
            "gateway-2 é ✅ 中"
        );
        assert_eq!(Outside::new("  padded \n").to_string(), "padded");
        assert_eq!(format!("{:?}", Outside::new("x\"y")), "\"x\"y\"");
    }

    #[test]
    fn no_workflow_command_can_start_a_line() {
        assert_eq!(Outside::new("::error::x").to_string(), r"\x3a:error::x");
        assert_eq!(
            Outside::new(" \u{a0}::add-mask::x").to_string(),
            r"\x3a:add-mask::x"
        );
        assert_eq!(Outside::new("a ##[error]b").to_string(), r"a ##\x5berror]b");
        assert_eq!(Outside::new("a::b").to_string(), "a::b");
        for hostile in [
            "ok\n::add-mask::secret",
            "%0A::error::x",
            "x\r::stop-commands::tok",
            "\u{85}::error::x",
            "\u{2028}::error::x",
        ] {
            let shown = Outside::new(hostile).to_string();
            assert!(runner_commands(&shown).is_empty(), "{hostile:?} -> {shown}");
            assert!(runner_commands(&format!("  {shown}")).is_empty());
            let line = clean(&format!("event: {hostile}"), false);
            assert!(runner_commands(&line).is_empty(), "{line}");
        }
        // Whole lines: every line is neutralized, \n kept as the separator.
        assert_eq!(
            clean("one\n  ::error::two\nthree ##[x]", false),
            "one\n  \\x3a:error::two\nthree ##\\x5bx]"
        );
        assert_eq!(clean("a\rb", false), r"a\rb");
    }

    #[test]
    fn fields_are_capped_with_the_cut_marked() {
        let long = "x".repeat(10_000);
        let o = Outside::new(&long);
        let shown = o.to_string();
        assert!(shown.starts_with(&"x".repeat(SHOW_CAP)));
        assert!(shown.ends_with("… (9700 more bytes)"), "{shown}");
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.len() < KEEP_CAP + 64);
        assert!(json.contains(&format!("… ({} more bytes)", 10_000 - KEEP_CAP)));
        assert_eq!(Outside::new("abc").shown(2), "ab… (1 more bytes)");
        // An escape is never split.
        assert_eq!(Outside::new("a\u{1b}").shown(3), "a… (1 more bytes)");
        let line = clean(&"y".repeat(LINE_CAP + 5), false);
        assert!(line.ends_with("… (5 more bytes)"));
    }

    #[test]
    fn json_is_lossless() {
        let o = Outside::new("line\n\u{202e}::x");
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!("line\n\u{202e}::x")
        );
    }

    #[test]
    fn secrets_are_redacted_before_the_cut() {
        let token = format!("tok-{}", "z".repeat(206));
        register_secret(&token);
        register_secret("abc"); // too short: ignored
        let echoed = format!("{}{token}{}", "p".repeat(100), "q".repeat(500));
        let o = Outside::new(&echoed);
        let shown = o.shown(160);
        assert!(!shown.contains("zzzzzzzzzz"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        assert!(!serde_json::to_string(&o).unwrap().contains("zzzzzzzzzz"));
        assert_eq!(redact("expires abc"), "expires abc");
        // A secret shaped like a URL with user info goes whole, not only its user info.
        register_secret("sec://ret@part");
        assert_eq!(redact("a sec://ret@part b"), "a *** b");
        assert_eq!(redact("https://u:p@h"), "https://***@h");
        assert!(!clean(&format!("x {token}"), false).contains(&token));
        assert!(!annotation("error", None, &token).contains(&token));
    }

    #[test]
    fn ansi_colours_survive_only_when_asked() {
        let styled = "\u{1b}[32mPASS\u{1b}[0m ok";
        assert_eq!(clean(styled, true), styled);
        assert_eq!(clean(styled, false), r"\x1b[32mPASS\x1b[0m ok");
        assert_eq!(clean("\u{1b}]0;title\u{7}", true), r"\x1b]0;title\x07");
    }

    #[test]
    fn annotations_escape_data_and_properties() {
        assert_eq!(
            annotation("error", Some("verify: a,b"), "50% done\nnext\r::x"),
            "::error title=verify%3A a%2Cb::50%25 done%0Anext\\r::x"
        );
        assert_eq!(annotation("warning", None, "w"), "::warning::w");
        let huge = annotation("error", None, &"x".repeat(100_000));
        assert!(huge.len() < ANNOTATION_CAP + 64);
    }

    /// Whether every `|` of `cell` is escaped (`\|`), so the table never ends the cell there.
    fn pipes_escaped(cell: &str) -> bool {
        cell.match_indices('|')
            .all(|(i, _)| cell[..i].ends_with('\\'))
    }

    #[test]
    fn markdown_cells_are_code_spans() {
        let cell = markdown_cell(
            "<img src=x>[x](https://evil) admin@evil.example a|b \\|",
            200,
        );
        assert_eq!(
            cell,
            "` <img src=x>[x](https://evil) admin@evil.example a\\|b \\\\| `"
        );
        assert_eq!(markdown_cell("a `b` ``c", 50), "``` a `b` ``c ```");
        assert_eq!(markdown_cell("  \n ", 50), "");
        // Cut before escaping: the escape of a `|` is never split.
        let cut = markdown_cell(&format!("{}|", "a".repeat(9)), 10);
        assert_eq!(cut, "` aaaaaaaaa\\| `");
        let cut = markdown_cell(&format!("{}||", "a".repeat(9)), 10);
        assert_eq!(cut, "` aaaaaaaaa\\| ` … (1 more bytes)");
        assert!(pipes_escaped(&cut) && !pipes_escaped("a|b"));
    }

    #[test]
    fn xml_drops_what_xml_forbids() {
        let x = xml_text("a\u{fffe}b\u{ffff}c\u{0}d<e>&\"'", 100);
        assert_eq!(x, "abcd&lt;e&gt;&amp;&quot;&apos;");
        assert!(xml_text(&"x".repeat(50), 10).ends_with("… (40 more bytes)"));
    }

    #[test]
    fn runner_command_detection() {
        assert_eq!(
            runner_commands("a\n ::error::x\r::warning::y"),
            vec![" ::error::x", "::warning::y"]
        );
        assert_eq!(
            runner_commands("text ##[add-mask]v"),
            vec!["text ##[add-mask]v"]
        );
        assert!(runner_commands(":: no second\n##[ no bracket\nplain").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn shown_text_never_breaks_a_line_or_starts_a_command(s in "\\PC*|[\\x00-\\x1f\\x7f-\\x9f\\u{2028}\\u{202e}:#\\[\\] a]{0,40}") {
            for shown in [Outside::new(&s).to_string(), clean(&s.replace('\n', " "), false)] {
                let breaks = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];
                proptest::prop_assert!(!shown.contains(breaks));
                proptest::prop_assert!(runner_commands(&shown).is_empty(), "{:?} -> {:?}", s, shown);
                proptest::prop_assert!(!shown.chars().any(is_hidden));
            }
            let cleaned = clean(&s, false);
            proptest::prop_assert!(!cleaned.contains('\r'));
            proptest::prop_assert!(runner_commands(&cleaned).is_empty(), "{:?} -> {:?}", s, cleaned);
            let a = annotation("error", Some(&s), &s);
            proptest::prop_assert!(!a.contains(['\n', '\r']));
            proptest::prop_assert_eq!(runner_commands(&a).len(), 1);
            let cell = markdown_cell(&s, 50);
            proptest::prop_assert!(pipes_escaped(&cell) && !cell.contains('\n'), "{:?}", cell);
            proptest::prop_assert!(xml_text(&s, 50).chars().all(xml_allowed));
        }
    }
}
