//! How names, sizes, durations and rates are shown in messages, the same way by the library's
//! log lines and the programs' output.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

/// Characters `ls` escapes in a name: ASCII controls, and Unicode controls
/// and direction overrides, which could make a name look like another.
fn is_odd(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Past this many bytes a name in a message is cut in its middle
/// ([`quote_bytes`]).
pub const MESSAGE_NAME_MAX: usize = 200;

/// A name as a message shows it: quoted as [`quote_whole`] quotes it, and
/// past 200 bytes cut in its middle with an ellipsis
/// (its first and last 100 bytes, whole characters, around `…`), so that a
/// message stays a line one reads whatever name was given (a pattern of
/// 100 KB). The one helper of every message that names a file, a pattern, a
/// directory or a queue; what is data (a listing's paths, a result line's,
/// a command to paste) is quoted whole.
pub fn quote_name(name: &str) -> Cow<'_, str> {
    quote_bytes(name.as_bytes())
}

/// [`quote_name`] for a name that is bytes (a Unix name need not be UTF-8).
pub fn quote_bytes(name: &[u8]) -> Cow<'_, str> {
    if name.len() <= MESSAGE_NAME_MAX {
        return quote_whole(name);
    }
    // Cut at the start of a character: a continuation byte goes with it.
    let starts_char = |i: usize| name.get(i).is_none_or(|b| b & 0xc0 != 0x80);
    let half = MESSAGE_NAME_MAX / 2;
    let head = (0..=half).rev().find(|&i| starts_char(i)).unwrap_or(0);
    let tail = (name.len() - half..=name.len()).find(|&i| starts_char(i)).unwrap_or(name.len());
    let cut = [&name[..head], "…".as_bytes(), &name[tail..]].concat();
    Cow::Owned(quote_whole(&cut).into_owned())
}

/// A file name as it is printed whole (result lines and listings, a
/// command to paste): unchanged unless it holds a control character
/// (newline, tab, ...) or starts with a quote; then quoted the way `ls`
/// quotes (`--quoting-style=shell-escape`), so the line stays one line and
/// can be pasted into a shell: `'a'$'\n''b'`. Names that are printed plain
/// never start with a quote, so the two forms cannot be confused. Bytes
/// that are not UTF-8 are escaped in octal the way `ls` escapes them
/// (`'bad_'$'\377'`).
pub fn quote_whole(name: &[u8]) -> Cow<'_, str> {
    if let Ok(name) = std::str::from_utf8(name) {
        return quote_str(name);
    }
    let pieces = name.utf8_chunks().flat_map(|chunk| {
        chunk.valid().chars().map(Piece::Char).chain(chunk.invalid().iter().map(|&b| Piece::Byte(b)))
    });
    Cow::Owned(quote_pieces(pieces))
}

/// [`quote_whole`] for text.
fn quote_str(name: &str) -> Cow<'_, str> {
    if !name.chars().any(is_odd) && !name.starts_with(['\'', '"']) {
        return Cow::Borrowed(name);
    }
    if !name.chars().any(is_odd) {
        // As ls: double quotes when that needs no escapes, else single ones.
        if name.contains('\'') && !name.contains(['"', '$', '`', '\\', '!']) {
            return Cow::Owned(format!("\"{name}\""));
        }
        return Cow::Owned(format!("'{}'", name.replace('\'', "'\\''")));
    }
    Cow::Owned(quote_pieces(name.chars().map(Piece::Char)))
}

/// A character of a name, or a byte that is not part of one.
enum Piece {
    Char(char),
    Byte(u8),
}

/// The `'…'$'\n''…'` form of a name that holds odd characters or bytes.
fn quote_pieces(pieces: impl Iterator<Item = Piece>) -> String {
    let mut out = String::from("'");
    let mut in_quote = true;
    let mut in_dollar = false;
    for piece in pieces {
        let c = match piece {
            Piece::Char(c) => c,
            Piece::Byte(b) => {
                if in_quote {
                    out.push('\'');
                    in_quote = false;
                }
                if !in_dollar {
                    out.push_str("$'");
                    in_dollar = true;
                }
                let _ = write!(out, "\\{b:03o}");
                continue;
            }
        };
        if is_odd(c) {
            if in_quote {
                out.push('\'');
                in_quote = false;
            }
            if !in_dollar {
                out.push_str("$'");
                in_dollar = true;
            }
            push_escape(&mut out, c);
            continue;
        }
        if in_dollar {
            out.push('\'');
            in_dollar = false;
        }
        if !in_quote {
            out.push('\'');
            in_quote = true;
        }
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    if in_dollar || in_quote {
        out.push('\'');
    }
    out
}

/// Appends the escape of the odd character `c` ([`is_odd`]) as `ls` and
/// `$'…'` write it: `\n`, `\033`, `\u202e`.
fn push_escape(out: &mut String, c: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if c.is_ascii() => {
            let _ = write!(out, "\\{:03o}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
    }
}

/// A text a peer sent to be read by a person (a refusal's or an error's
/// reason) with every odd character ([`is_odd`]: controls, direction
/// overrides) written as its escape (`\033`, `\r`, `\u202e`): whatever
/// the peer put in it, or a name in it holds, it moves no cursor and
/// clears no screen of whoever prints it. The rest is left as it is.
pub fn escape_odd(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_odd) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_odd(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape_odd`] of `text` in at most `max` bytes: a text that its
/// escapes make longer is cut between two characters (never inside an
/// escape) and ends with `…`. What comes out is what a text of at most
/// `max` bytes with nothing odd in it is: escaped again, cut again, it is
/// itself.
pub fn escape_odd_within(text: &str, max: usize) -> String {
    let escaped = escape_odd(text);
    if escaped.len() <= max {
        return escaped.into_owned();
    }
    const MARK: &str = "…";
    let room = max.saturating_sub(MARK.len());
    let mut out = String::with_capacity(max);
    let mut piece = String::new();
    for c in text.chars() {
        piece.clear();
        if is_odd(c) {
            push_escape(&mut piece, c);
        } else {
            piece.push(c);
        }
        if out.len() + piece.len() > room {
            break;
        }
        out.push_str(&piece);
    }
    if out.len() + MARK.len() <= max {
        out.push_str(MARK);
    }
    out
}

/// `1 byte`, `2 bytes`.
pub fn byte_count(n: u64) -> String {
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// `0.4 ms`, `12.3 s`, `2 min 5 s`, `3 h 4 min`.
pub(crate) fn duration_text(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{:.1} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{} h {} min", d.as_secs() / 3600, d.as_secs() % 3600 / 60)
    }
}

/// Below this many bytes a transfer's rate says nothing (it is the cost of
/// a request, not of the bytes).
const RATE_MIN_BYTES: u64 = 64 << 10;
/// Below this time a transfer's rate says nothing (clock granularity and
/// scheduling).
const RATE_MIN_TIME: Duration = Duration::from_millis(1);

/// `bytes` over `d` for people, in the unit that fits (`512.0 KiB/s`,
/// `353.8 MiB/s`, `1.4 GiB/s`); `None` when the rate would mean nothing:
/// fewer than 64 KiB, or less than a millisecond.
pub(crate) fn rate_text(bytes: u64, d: Duration) -> Option<String> {
    if bytes < RATE_MIN_BYTES || d < RATE_MIN_TIME {
        return None;
    }
    Some(format!("{}/s", human_size((bytes as f64 / d.as_secs_f64()) as u64)))
}

/// A size for people: `512 B`, `1.5 KiB`, `3.0 MiB`, ...
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_plain() {
        for name in ["hello.txt", "name with space.txt", "sub/dir/x", "ü.txt", "it's", "a\"b", ""] {
            assert_eq!(quote_name(name), name);
        }
    }

    #[test]
    fn odd_names_are_quoted_as_ls_quotes_them() {
        // Each expected form is what `ls --quoting-style=shell-escape` printed.
        let cases = [
            ("nl\nx", r"'nl'$'\n''x'"),
            ("\nx", r"''$'\n''x'"),
            ("x\t", r"'x'$'\t'"),
            ("a\n\nb", r"'a'$'\n\n''b'"),
            ("d\u{7f}e", r"'d'$'\177''e'"),
            ("c\u{1}d", r"'c'$'\001''d'"),
            ("e\u{1b}[31m", r"'e'$'\033''[31m'"),
            ("it's\nx", r"'it'\''s'$'\n''x'"),
            ("'\nq", r"''\'''$'\n''q'"),
            ("'x", r#""'x""#),
            ("'x\"", r#"''\''x"'"#),
            ("z\u{202e}y", r"'z'$'\u202e''y'"),
        ];
        for (name, want) in cases {
            assert_eq!(quote_name(name), want, "{name:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped_in_octal_as_ls_does() {
        assert_eq!(quote_bytes(b"plain"), "plain");
        assert_eq!(quote_bytes(b"bad_\xff\xfe.bin"), r"'bad_'$'\377\376''.bin'");
        assert_eq!(quote_bytes(b"latin1_\xe9t\xe9.txt"), r"'latin1_'$'\351''t'$'\351''.txt'");
        assert_eq!(quote_bytes(b"\xff\n"), r"''$'\377\n'");
    }

    #[test]
    fn a_long_name_in_a_message_is_cut_in_its_middle_and_kept_whole_elsewhere() {
        let pattern = format!("{}*{}", "a".repeat(100_000), "z".repeat(50));
        let shown = quote_name(&pattern);
        assert_eq!(shown, format!("{}…{}*{}", "a".repeat(100), "a".repeat(49), "z".repeat(50)));
        assert_eq!(quote_whole(pattern.as_bytes()), pattern);
        let at_most = "m".repeat(MESSAGE_NAME_MAX);
        assert_eq!(quote_name(&at_most), at_most, "up to the bound, whole");
        // Cut between characters, never inside one; quoted as a name is.
        let wide = "é".repeat(150);
        assert_eq!(quote_name(&wide), format!("{}…{}", "é".repeat(50), "é".repeat(50)));
        let odd = format!("{}\n{}", "x".repeat(150), "y".repeat(150));
        assert_eq!(quote_name(&odd), format!("{}…{}", "x".repeat(100), "y".repeat(100)));
        let odd = format!("\n{}", "x".repeat(300));
        assert_eq!(quote_name(&odd), format!("''$'\\n''{}…{}'", "x".repeat(99), "x".repeat(100)));
        let bytes = [b"\xff".repeat(300), b"ok".to_vec()].concat();
        assert_eq!(
            quote_bytes(&bytes),
            format!("''$'{}''…'$'{}''ok'", r"\377".repeat(100), r"\377".repeat(98))
        );
    }

    #[test]
    fn a_peers_text_has_its_odd_characters_escaped_and_the_rest_kept() {
        assert_eq!(escape_odd("plain text, é and 'quotes'"), "plain text, é and 'quotes'");
        assert_eq!(escape_odd("f\x1b[2J\r.txt is a FIFO"), r"f\033[2J\r.txt is a FIFO");
        assert_eq!(escape_odd("a\u{9b}2Jb\u{202e}c\n"), r"a\u009b2Jb\u202ec\n");
    }

    #[test]
    fn one_byte_is_singular() {
        assert_eq!(byte_count(0), "0 bytes");
        assert_eq!(byte_count(1), "1 byte");
        assert_eq!(byte_count(2), "2 bytes");
    }

    #[test]
    fn durations_read_as_people_expect() {
        assert_eq!(duration_text(Duration::from_micros(400)), "0.4 ms");
        assert_eq!(duration_text(Duration::from_millis(12_300)), "12.3 s");
        assert_eq!(duration_text(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(duration_text(Duration::from_secs(3 * 3600 + 240)), "3 h 4 min");
    }

    #[test]
    fn rates_show_only_when_they_mean_something_in_a_unit_that_fits() {
        assert_eq!(rate_text(111, Duration::from_micros(300)), None);
        assert_eq!(rate_text(111, Duration::from_secs(1)), None);
        assert_eq!(rate_text(1 << 30, Duration::from_micros(999)), None);
        assert_eq!(rate_text(64 << 10, Duration::from_millis(500)).as_deref(), Some("128.0 KiB/s"));
        assert_eq!(rate_text(700 << 20, Duration::from_secs(2)).as_deref(), Some("350.0 MiB/s"));
        assert_eq!(rate_text(3 << 30, Duration::from_secs(2)).as_deref(), Some("1.5 GiB/s"));
    }

    #[test]
    fn sizes_read_as_people_expect() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }
}
