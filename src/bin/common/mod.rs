//! What both programs print the same way: error chains, file names, sizes,
//! JSON strings.

// Each program uses a part of this module.
#![allow(dead_code)]

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

#[allow(unused_imports)]
pub use shmxfer::text::{byte_count, quote_name};

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

/// The environment variable that sets the spin budget of either program, in
/// microseconds, for measurements (see the README's performance section).
pub const SPIN_ENV: &str = "SHMXFER_SPIN_US";

/// The spin budget `SHMXFER_SPIN_US` asks for, or the library's default when
/// it is not set or not a number of microseconds.
pub fn spin_budget_from_env() -> Duration {
    std::env::var(SPIN_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(shmxfer::pacing::DEFAULT_SPIN_BUDGET, Duration::from_micros)
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
/// Prints what `--completions SHELL` or `--man` ask for, if either was
/// given, and returns the exit code; `None` when neither was.
pub fn print_generated(
    cmd: clap::Command,
    completions: Option<clap_complete::Shell>,
    man: bool,
    environment: &[(&str, &str)],
) -> Option<std::process::ExitCode> {
    if let Some(shell) = completions {
        print_completions(cmd, shell);
        return Some(std::process::ExitCode::SUCCESS);
    }
    man.then(|| print_man(cmd, environment))
}

pub fn print_completions(mut cmd: clap::Command, shell: clap_complete::Shell) {
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
}

/// `text` for roff: backslashes and dashes escaped, no line starting as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// The sections of a man page made from `after_help`: its `Examples:`
/// paragraph as EXAMPLES (one tagged paragraph per command, so roff keeps
/// the lines), `Exit status:` as EXIT STATUS (one entry per code), any
/// other `Title: text` paragraph as a section of its own; then ENVIRONMENT
/// from `environment` (variable, meaning).
fn man_sections(after_help: &str, environment: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for para in after_help.split("\n\n") {
        let Some((title, body)) = para.split_once(':') else {
            let _ = writeln!(out, ".PP\n{}", roff(para.trim()));
            continue;
        };
        let _ = writeln!(out, ".SH \"{}\"", title.trim().to_uppercase());
        match title.trim() {
            "Examples" => {
                for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    // `command   what it does`: two spaces or more between.
                    match line.split_once("  ") {
                        Some((cmd, what)) => {
                            let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(cmd.trim()), roff(what.trim()));
                        }
                        None => {
                            let _ = writeln!(out, ".TP\n\\fB{}\\fR\n.", roff(line));
                        }
                    }
                }
            }
            "Exit status" => {
                // `0 meaning, 1 meaning (a, b), 2 meaning.`: a new entry at each `, ` before a digit.
                let body = body.trim().trim_end_matches('.');
                let mut entries = vec![String::new()];
                let mut rest = body;
                while let Some(at) = rest.find(", ") {
                    let (head, tail) = rest.split_at(at);
                    entries.last_mut().expect("one entry").push_str(head);
                    rest = &tail[2..];
                    if rest.starts_with(|c: char| c.is_ascii_digit()) {
                        entries.push(String::new());
                    } else {
                        entries.last_mut().expect("one entry").push_str(", ");
                    }
                }
                entries.last_mut().expect("one entry").push_str(rest);
                for entry in &entries {
                    let (code, meaning) = entry.split_once(' ').unwrap_or((entry, ""));
                    let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(code), roff(meaning));
                }
            }
            _ => {
                let _ = writeln!(out, ".PP\n{}", roff(body.trim()));
            }
        }
    }
    if !environment.is_empty() {
        out.push_str(".SH ENVIRONMENT\n");
        for (name, meaning) in environment {
            let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(name), roff(meaning));
        }
    }
    out
}

/// `--man`: the man page of `cmd` (roff) on stdout, its `after_help` made
/// into sections (see [`man_sections`]) and an ENVIRONMENT section.
pub fn print_man(mut cmd: clap::Command, environment: &[(&str, &str)]) -> std::process::ExitCode {
    let after_help = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    // The usage forms the help shows, with their value names, one per line.
    let usage = cmd.render_usage().to_string();
    let man = clap_mangen::Man::new(cmd);
    let mut page = Vec::new();
    let rendered = (|| {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        page.extend_from_slice(b".SH SYNOPSIS\n.nf\n");
        for line in usage.lines() {
            let line = line.trim();
            let line = line.strip_prefix("Usage:").unwrap_or(line).trim();
            page.extend_from_slice(format!("{}\n", roff(line)).as_bytes());
        }
        page.extend_from_slice(b".fi\n");
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        page.extend_from_slice(man_sections(&after_help, environment).as_bytes());
        man.render_version_section(&mut page)
    })();
    match rendered.and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &page)) {
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
