//! What both programs print the same way: error chains, file names, sizes,
//! JSON strings.

// Each program uses a part of this module.
#![allow(dead_code)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose
/// text the line already holds (a library error that prints its OS error is
/// often followed by that same OS error as its source).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// [`chain`] for an `anyhow::Error`.
pub fn anyhow_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for c in err.chain() {
        let text = c.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Characters `ls` escapes in a name: ASCII controls, and Unicode controls
/// and direction overrides, which could make a name look like another.
fn is_odd(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A file name as it is printed in result lines and listings: unchanged
/// unless it holds a control character (newline, tab, ...) or starts with a
/// quote; then quoted the way `ls` quotes (`--quoting-style=shell-escape`),
/// so the line stays one line and can be pasted into a shell:
/// `'a'$'\n''b'`. Names that are printed plain never start with a quote, so
/// the two forms cannot be confused.
pub fn quote_name(name: &str) -> Cow<'_, str> {
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
    let mut out = String::from("'");
    let mut in_quote = true;
    let mut in_dollar = false;
    for c in name.chars() {
        if is_odd(c) {
            if in_quote {
                out.push('\'');
                in_quote = false;
            }
            if !in_dollar {
                out.push_str("$'");
                in_dollar = true;
            }
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
    Cow::Owned(out)
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

/// `s` as a JSON string, quotes included.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses a number of seconds (fractions allowed, not negative), for clap.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs < 0.0 {
        return Err("seconds cannot be negative; give a number >= 0 (see --help for what 0 means)".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a number of seconds >= 0"))
}

/// Checks a queue name with the library's rules, for clap.
pub fn parse_queue(s: &str) -> Result<String, String> {
    match shmxfer::names::validate_queue_name(s) {
        Ok(()) => Ok(s.to_owned()),
        Err(shmxfer::Error::InvalidName { reason, .. }) => {
            Err(format!("{reason} (a queue name looks like /name)"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `--completions SHELL`: the shell completion script of `cmd` on stdout.
pub fn print_completions(mut cmd: clap::Command, shell: clap_complete::Shell) {
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
}

/// `--man`: the man page of `cmd` (roff) on stdout.
pub fn print_man(cmd: clap::Command) -> std::process::ExitCode {
    let mut page = Vec::new();
    match clap_mangen::Man::new(cmd)
        .render(&mut page)
        .and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &page))
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writing the man page: {e}");
            std::process::ExitCode::from(1)
        }
    }
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
    fn sizes_read_as_people_expect() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn json_strings_escape_what_json_requires() {
        assert_eq!(json_string("a\"b\\c\nd\te\u{1}"), r#""a\"b\\c\nd\te\u0001""#);
        assert_eq!(json_string("ü"), "\"ü\"");
    }

    #[test]
    fn error_chains_print_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "open root files: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(chain(&e), "open root files: No such file or directory (os error 2)");
        let a = anyhow::Error::new(Outer(std::io::Error::from_raw_os_error(libc::ENOENT))).context("serving");
        assert_eq!(anyhow_chain(&a), "serving: open root files: No such file or directory (os error 2)");
    }
}
