//! Requested names that are patterns: `*`, `?`, `[…]` and `{a,b}` as
//! `globset` reads them, matched against the server's paths (bytes, as a
//! Unix name is) one component at a time: `*` and `?` do not cross `/`,
//! `**` as a whole component does. A pattern given with a trailing `/`
//! (`*/`, `logs/2*/`) matches directories only, as a shell reads it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::protocol::normalize_path;

/// The characters that make a requested name a pattern.
const META: [char; 4] = ['*', '?', '[', '{'];

/// Whether the requested `name` is a pattern: it holds `*`, `?`, `[` or
/// `{`. (One that does not parse as a pattern is then taken as a name.)
pub fn is_pattern(name: &str) -> bool {
    name.contains(META)
}

/// Whether the requested `name` was given with a trailing `/` (or `/.`):
/// it names a directory, as a shell reads it (`small.txt/` is no file:
/// "Not a directory"), though [`normalize_path`] drops the slash. A
/// pattern's trailing slash matches directories only.
pub(crate) fn names_directory(name: &[u8]) -> bool {
    name.ends_with(b"/") || name.ends_with(b"/.")
}

/// `text` compiled as every pattern is: `*` and `?` never match `/` (a
/// shell's and `scp`'s reading), `\` escapes, `{a,}` chooses an empty
/// alternative as a shell's braces do.
fn glob(text: &str) -> Option<GlobMatcher> {
    let built =
        GlobBuilder::new(text).literal_separator(true).backslash_escape(true).empty_alternates(true).build();
    built.ok().map(|g| g.compile_matcher())
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// One component of a pattern.
#[derive(Debug, Clone)]
enum Part {
    /// `**`: any number of components, none included.
    AnyDepth,
    /// A component matched on its own.
    One(GlobMatcher),
}

/// A requested name that is a pattern, normalized as every requested path
/// is ([`normalize_path`]: `./logs//*.txt` is `logs/*.txt`).
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    text: String,
    whole: GlobMatcher,
    /// Its components, each compiled alone; `None` when one does not
    /// compile alone (braces holding a `/`): then any entry left out may
    /// hold a match.
    parts: Option<Vec<Part>>,
    /// The directories before the first component that is a pattern.
    dir: Vec<u8>,
    /// Given with a trailing `/` (or `/.`): it matches directories only.
    dirs_only: bool,
}

impl Pattern {
    /// The requested `name` as a pattern, or `None` when it is a name: it
    /// has none of `*?[{`, or does not parse as a pattern (`[x`).
    pub(crate) fn parse(name: &[u8]) -> Option<Pattern> {
        // Splitting at '/' keeps UTF-8 whole; a name that is not UTF-8 is
        // no pattern.
        let text = String::from_utf8(normalize_path(name)).ok()?;
        if !is_pattern(&text) {
            return None;
        }
        let whole = glob(&text)?;
        let mut parts: Option<Vec<Part>> = Some(Vec::new());
        for part in text.split('/') {
            let next = match part {
                // `a/**/**/b` is `a/**/b`.
                "**" if matches!(parts.as_deref(), Some([.., Part::AnyDepth])) => continue,
                "**" => Some(Part::AnyDepth),
                part => glob(part).map(Part::One),
            };
            parts = parts.zip(next).map(|(mut parts, next)| {
                parts.push(next);
                parts
            });
        }
        let literal: Vec<&str> = text.split('/').take_while(|p| !is_pattern(p)).collect();
        let dir = if literal.is_empty() { b".".to_vec() } else { literal.join("/").into_bytes() };
        let dirs_only = names_directory(name);
        Some(Pattern { text, whole, parts, dir, dirs_only })
    }

    /// The pattern, normalized.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The directory whose listing holds every match: the components before
    /// the first that is a pattern (`logs/2024` of `logs/2024/*.txt`), `.`
    /// when the first is one.
    pub(crate) fn dir(&self) -> &[u8] {
        &self.dir
    }

    /// Whether it matches directories only (given with a trailing `/`).
    pub(crate) fn dirs_only(&self) -> bool {
        self.dirs_only
    }

    /// Whether `path` matches, whatever it names.
    fn matches(&self, path: &[u8]) -> bool {
        self.whole.is_match(as_path(path))
    }

    /// Whether the listed file `path` matches: never for a pattern of
    /// directories only.
    pub(crate) fn matches_file(&self, path: &[u8]) -> bool {
        !self.dirs_only && self.matches(path)
    }

    /// The directories holding the listed `files` that the pattern matches,
    /// each once, in order: what a pattern given without `-r` names when it
    /// matches no file (`dir*` of `dir0/a.txt` is `dir0`).
    pub(crate) fn directories<'a>(&self, files: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
        let mut found = std::collections::BTreeSet::new();
        for path in files {
            let ends = path.iter().enumerate().filter(|(_, &b)| b == b'/').map(|(i, _)| i);
            found.extend(ends.filter(|&end| self.matches(&path[..end])).map(|end| path[..end].to_vec()));
        }
        found.into_iter().collect()
    }

    /// The length of the shortest leading run of components of the listed
    /// `path` (`path` itself included, unless the pattern matches
    /// directories only) that matches: where the tree a recursive fetch of
    /// the pattern takes `path` from starts.
    pub(crate) fn root_of(&self, path: &[u8]) -> Option<usize> {
        let ends = path.iter().enumerate().filter(|(_, &b)| b == b'/').map(|(i, _)| i);
        let whole = (!self.dirs_only).then_some(path.len());
        ends.chain(whole).find(|&end| self.matches(&path[..end]))
    }

    /// Whether the entry `path`, left out of a listing, may be a match or
    /// hold one (a directory whose components match the pattern's first
    /// ones, or one a `**` reaches).
    pub(crate) fn may_hold(&self, path: &[u8]) -> bool {
        let Some(parts) = &self.parts else { return true };
        if self.matches(path) {
            return true;
        }
        let dir: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        // reach[i][j]: the first i parts of the pattern match the first j
        // components of the directory.
        let (n, m) = (parts.len(), dir.len());
        let mut reach = vec![vec![false; m + 1]; n + 1];
        reach[0][0] = true;
        for i in 0..n {
            for j in 0..=m {
                if !reach[i][j] {
                    continue;
                }
                match &parts[i] {
                    Part::AnyDepth => {
                        // None, or one more component (and so on).
                        reach[i + 1][j] = true;
                        if j < m {
                            reach[i][j + 1] = true;
                        }
                    }
                    Part::One(g) if j < m && g.is_match(as_path(dir[j])) => reach[i + 1][j + 1] = true,
                    Part::One(_) => {}
                }
            }
        }
        // Something below the whole directory is still to be matched by the
        // parts left (a `**` left at the end matches anything below).
        (0..n).any(|i| reach[i][m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text.as_bytes()).unwrap_or_else(|| panic!("{text} is a pattern"))
    }

    #[test]
    fn names_without_pattern_characters_or_that_do_not_parse_are_names() {
        for name in ["logs/a.txt", "[x", "a{b", "./plain//name"] {
            assert!(Pattern::parse(name.as_bytes()).is_none(), "{name}");
        }
    }

    #[test]
    fn a_pattern_is_normalized_as_every_requested_path() {
        for given in ["./logs/*.txt", "logs//*.txt", "logs/./*.txt/"] {
            let p = pattern(given);
            assert_eq!(p.text(), "logs/*.txt", "{given}");
            assert_eq!(p.dir(), b"logs", "{given}");
            assert!(p.matches(b"logs/a.txt") && !p.matches(b"logs/sub/a.txt"), "{given}");
        }
        assert_eq!(pattern("*.txt").dir(), b".");
        assert_eq!(pattern("a/b/c*/d").dir(), b"a/b");
    }

    #[test]
    fn braces_choose_and_may_be_empty() {
        let p = pattern("logs/{a,b}.txt");
        assert!(p.matches(b"logs/a.txt") && p.matches(b"logs/b.txt") && !p.matches(b"logs/c.txt"));
        let p = pattern("f{,.txt}");
        assert!(p.matches(b"f") && p.matches(b"f.txt"));
    }

    #[test]
    fn names_are_matched_as_bytes() {
        let p = pattern("d/x*");
        assert!(p.matches(b"d/x\xfe.dat"));
        let p = pattern("d/bad_*");
        assert!(p.matches(b"d/bad_\xff.txt") && p.matches(b"d/bad_\xef\xbf\xbd.txt"));
    }

    #[test]
    fn an_entry_left_out_matters_only_where_a_match_could_lie() {
        let p = pattern("logs/*.txt");
        assert!(p.may_hold(b"logs"), "the directory listed itself");
        assert!(p.may_hold(b"logs/x.txt"), "a file that would match");
        assert!(!p.may_hold(b"logs/sub"), "'*' does not reach below logs/sub");
        assert!(!p.may_hold(b"other"));
        let p = pattern("logs/**/*.txt");
        assert!(p.may_hold(b"logs/sub") && p.may_hold(b"logs/a/b/c"));
        assert!(!p.may_hold(b"other/sub"));
        let p = pattern("*/2024/*.log");
        assert!(p.may_hold(b"web") && p.may_hold(b"web/2024") && !p.may_hold(b"web/2023"));
        assert!(!p.may_hold(b"web/2024/deeper"), "past the pattern's depth");
        assert!(pattern("logs/**").may_hold(b"logs/a/b"), "a '**' at the end reaches all below");
        // Braces holding a '/': no component can be judged alone.
        assert!(pattern("logs/{a,sub/b}.txt").may_hold(b"logs/other"));
    }

    #[test]
    fn a_pattern_with_a_trailing_slash_matches_directories_only() {
        for given in ["*/", "*//", "*/."] {
            let p = pattern(given);
            assert!(p.dirs_only() && !p.matches_file(b"a.txt"), "{given}");
            assert_eq!(p.root_of(b"a.txt"), None, "{given}: a file at the top is no directory");
            assert_eq!(p.root_of(b"dir0/a.txt"), Some(4), "{given}");
        }
        let p = pattern("*");
        assert!(!p.dirs_only() && p.matches_file(b"a.txt") && p.root_of(b"a.txt") == Some(5));
    }

    #[test]
    fn the_directories_a_pattern_matches_are_named_once_each() {
        let files: [&[u8]; 4] = [b"dir0/a.txt", b"dir0/sub/b.txt", b"dir1/c", b"top.txt"];
        let dirs = pattern("dir*").directories(files.iter().copied());
        assert_eq!(dirs, [b"dir0".to_vec(), b"dir1".to_vec()]);
        assert_eq!(pattern("*/sub").directories(files.iter().copied()), [b"dir0/sub".to_vec()]);
        assert!(pattern("*.txt").directories(files.iter().copied()).is_empty());
    }

    #[test]
    fn a_tree_is_rooted_at_the_shortest_match() {
        let p = pattern("dir*");
        assert_eq!(p.root_of(b"dir0/sub/f"), Some(4));
        assert_eq!(p.root_of(b"dirx"), Some(4));
        assert_eq!(p.root_of(b"other/dir0"), None);
    }
}
