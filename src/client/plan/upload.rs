//! Which local files a run of uploads sends (`shm_client --put [-r]`), and
//! where each goes below the server's `--accept` directory: planned once,
//! before anything is asked of a server. Every path the walk or the
//! arguments could not send is an item of the plan, named, with its
//! [`FailReason`]; remote paths are bytes, normalized by
//! [`normalize_path`]; two different local files bound for one remote path
//! are [`Error::SameRemote`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::client::delivery::Progress;
use crate::client::upload::{LocalSkipReason, LocalTree, PutOptions, UploadSession};
use crate::error::{Error, Result};
use crate::fs::output::names_a_directory;
use crate::protocol::{normalize_path, AsRemotePath, MAX_PATH_LEN};
use crate::transfer::outcome::{FailReason, Outcome};

/// A run of uploads, planned: the trees walked, and an item per file to
/// send and per path not sent, in the order of the names given (a tree's
/// entries left out, then its files, each sorted by path).
///
/// # Examples
///
/// ```
/// use shmxfer::upload::{UploadItem, UploadPlan};
///
/// let dir = tempfile::tempdir().unwrap();
/// let local = dir.path().join("report.txt");
/// std::fs::write(&local, b"all well\n").unwrap();
/// // `--put report.txt --to in -O today.txt`
/// let plan = UploadPlan::builder().to("in").name("today.txt").plan(&[&local])?;
/// let UploadItem::Send(file) = &plan.items()[0] else { panic!("a file to send") };
/// assert_eq!(file.remote, b"in/today.txt");
/// # Ok::<(), shmxfer::Error>(())
/// ```
#[derive(Debug)]
pub struct UploadPlan {
    trees: Vec<LocalTree>,
    items: Vec<UploadItem>,
    repeated: Vec<PathBuf>,
}

/// How to plan a run of uploads ([`UploadPlan::builder`]).
#[derive(Debug, Clone, Default)]
pub struct UploadPlanBuilder {
    to: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    recursive: bool,
}

/// One step of a run of uploads ([`UploadPlan::items`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum UploadItem {
    /// A file to send ([`UploadPlan::put_with`]).
    Send(ToSend),
    /// A name given that is not sent: not there, no file name in it, a
    /// directory when the plan is not recursive, a tree that cannot be
    /// opened, a path too long for a request.
    NotSent(Unsent),
    /// An entry of a tree that is not sent: a symlink, a FIFO, what could
    /// not be read, what lies too deep, a path too long for a request.
    Skipped(Unsent),
}

/// A file to send: the local path shown, where it goes, and where it
/// comes from (a name given, or a file of a tree the plan walked).
#[derive(Debug)]
#[non_exhaustive]
pub struct ToSend {
    /// The local path: as given, or the tree's directory joined with the
    /// file's path below it.
    pub local: PathBuf,
    /// Its path below the server's `--accept` directory.
    pub remote: Vec<u8>,
    /// Its size when planned (the walk's, or `stat`'s of a name given;
    /// `None` when it could not be had), for the run's progress: what is
    /// sent is what the file holds when it is read.
    pub size: Option<u64>,
    /// Its tree and its index there; `None`: a name given.
    tree: Option<(usize, usize)>,
}

/// A path a plan does not send, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct Unsent {
    /// The local path.
    pub local: PathBuf,
    /// Where it would have gone (empty when it has no file name).
    pub remote: Vec<u8>,
    /// Why, as a code.
    pub reason: FailReason,
    /// Why, in a few words.
    pub text: String,
}

impl UploadItem {
    /// The local path of the item.
    pub fn local(&self) -> &Path {
        match self {
            UploadItem::Send(file) => &file.local,
            UploadItem::NotSent(gap) | UploadItem::Skipped(gap) => &gap.local,
        }
    }

    /// Where the item goes (or would have gone) below the server's
    /// `--accept` directory.
    pub fn remote(&self) -> &[u8] {
        match self {
            UploadItem::Send(file) => &file.remote,
            UploadItem::NotSent(gap) | UploadItem::Skipped(gap) => &gap.remote,
        }
    }
}

impl ToSend {
    /// Whether the file is one of a tree's (else a name given).
    pub fn in_tree(&self) -> bool {
        self.tree.is_some()
    }
}

impl UploadPlanBuilder {
    /// Everything goes below the directory `to` of the server's `--accept`
    /// directory (`--to DIR`), normalized (`in//x/` is `in/x`, `.` is the
    /// accept directory itself).
    #[must_use]
    pub fn to(mut self, to: impl AsRemotePath) -> UploadPlanBuilder {
        self.to = Some(normalize_path(to.as_remote_path())).filter(|d| d != b".");
        self
    }

    /// A name given is stored as `name` (normalized) instead of its own
    /// last component (`-O NAME`): for a run of one file, and a name that
    /// names a file (not ending in `/`, `.` or `..`).
    #[must_use]
    pub fn name(mut self, name: impl AsRemotePath) -> UploadPlanBuilder {
        self.name = Some(name.as_remote_path().to_vec());
        self
    }

    /// Whether a directory given is sent with everything below it
    /// (`-r`: walked, keeping its own name, as `scp -r`), or is not sent.
    #[must_use]
    pub fn recursive(mut self, recursive: bool) -> UploadPlanBuilder {
        self.recursive = recursive;
        self
    }

    /// Plans the upload of `files`: each file with its remote path, each
    /// directory's tree walked when recursive, and an item for each path
    /// not sent. A file given twice is sent once
    /// ([`UploadPlan::repeated`]).
    ///
    /// # Errors
    ///
    /// [`Error::SameRemote`] when two different local files would go to
    /// one remote path, naming the first two; [`Error::InvalidConfig`] for
    /// a name given ([`UploadPlanBuilder::name`]) that names a directory,
    /// or with more or fewer files than one.
    pub fn plan(&self, files: &[impl AsRef<Path>]) -> Result<UploadPlan> {
        if let Some(name) = &self.name {
            let shown = crate::text::quote_bytes(name);
            if names_a_directory(Path::new(OsStr::from_bytes(name))) {
                return Err(Error::InvalidConfig(format!(
                    "{shown} names a directory, not the file to store"
                )));
            }
            if files.len() != 1 {
                return Err(Error::InvalidConfig(format!(
                    "one file is stored under {shown}, not {}",
                    files.len()
                )));
            }
        }
        let mut plan = UploadPlan { trees: Vec::new(), items: Vec::new(), repeated: Vec::new() };
        for local in files {
            let local = local.as_ref();
            let meta = std::fs::metadata(local);
            match meta {
                // Not there (or not reachable): said so, and no party to
                // a clash of remote paths.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let errno = e.raw_os_error().unwrap_or(libc::ENOENT);
                    let e = Error::local("open", &local.display().to_string(), errno_error(errno));
                    let remote = self.named_remote(local).unwrap_or_default();
                    plan.not_sent(local, remote, FailReason::Unreadable, e.with_causes());
                }
                Ok(meta) if meta.is_dir() && self.recursive => self.plan_tree(&mut plan, local),
                Ok(meta) if meta.is_dir() => {
                    let remote = self.named_remote(local).unwrap_or_default();
                    let text = "a directory, and the plan is not recursive";
                    plan.not_sent(local, remote, FailReason::IsDirectory, text.into());
                }
                _ => match self.named_remote(local) {
                    Some(remote) => {
                        let size = meta.as_ref().ok().map(std::fs::Metadata::len);
                        let file = ToSend { local: local.to_path_buf(), remote, size, tree: None };
                        plan.items.push(UploadItem::Send(file));
                    }
                    None => {
                        let text = "no file name in this path".into();
                        plan.not_sent(local, Vec::new(), FailReason::BadOutputName, text);
                    }
                },
            }
        }
        plan.refuse_long_paths();
        plan.check_collisions()?;
        Ok(plan)
    }

    /// Where a name given goes: below `to`, under its last component or the
    /// name given with [`UploadPlanBuilder::name`]. `None` for a path
    /// without a file name.
    fn named_remote(&self, local: &Path) -> Option<Vec<u8>> {
        match &self.name {
            Some(name) => Some(self.below_to(&normalize_path(name))),
            None => Some(self.below_to(local.file_name()?.as_bytes())),
        }
    }

    /// `rel` below `to`, when given.
    fn below_to(&self, rel: &[u8]) -> Vec<u8> {
        match &self.to {
            Some(dir) => [&dir[..], b"/", rel].concat(),
            None => rel.to_vec(),
        }
    }

    /// Walks the tree of the directory `local` into `plan`: its entries
    /// left out, then its files, below the tree's name ([`tree_name`]).
    fn plan_tree(&self, plan: &mut UploadPlan, local: &Path) {
        let base = match tree_name(local) {
            Some(name) => self.below_to(&name),
            None => self.to.clone().unwrap_or_default(),
        };
        let tree = match LocalTree::walk(local) {
            Ok(tree) => tree,
            Err(e) => return plan.not_sent(local, base, FailReason::Unreadable, e.with_causes()),
        };
        let join = |rel: &[u8]| {
            if rel.is_empty() {
                local.to_path_buf()
            } else {
                local.join(OsStr::from_bytes(rel))
            }
        };
        let below = |rel: &[u8]| match (base.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_vec(),
            (false, true) => base.clone(),
            (false, false) => [&base[..], b"/", rel].concat(),
        };
        for skip in &tree.skipped {
            plan.items.push(UploadItem::Skipped(Unsent {
                local: join(&skip.path),
                remote: below(&skip.path),
                reason: skip_reason(skip.reason),
                text: skip.text.clone(),
            }));
        }
        let index = plan.trees.len();
        for (i, file) in tree.files.iter().enumerate() {
            let (local, remote, size) = (join(&file.path), below(&file.path), Some(file.size));
            plan.items.push(UploadItem::Send(ToSend { local, remote, size, tree: Some((index, i)) }));
        }
        plan.trees.push(tree);
    }
}

/// An OS error of number `errno`.
fn errno_error(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

/// The name a tree keeps below `to` (`-r photos` → `photos/...`, as
/// `scp -r`): the directory's own name; for a path that has none (`.`,
/// `..`, `/`), the name it resolves to, else none (its contents go to
/// `to` itself).
fn tree_name(dir: &Path) -> Option<Vec<u8>> {
    match dir.file_name() {
        Some(name) => Some(name.as_bytes().to_vec()),
        None => std::fs::canonicalize(dir).ok()?.file_name().map(|n| n.as_bytes().to_vec()),
    }
}

/// The reason a skipped tree entry is given.
fn skip_reason(reason: LocalSkipReason) -> FailReason {
    match reason {
        LocalSkipReason::Symlink | LocalSkipReason::NotRegular => FailReason::NotRegular,
        LocalSkipReason::TooDeep => FailReason::TooDeep,
        LocalSkipReason::OverLimit => FailReason::OverLimit,
        LocalSkipReason::Unreadable(_) => FailReason::Unreadable,
    }
}

impl UploadPlan {
    /// A plan with no destination directory, no other name, and no
    /// directory walked: set them before [`UploadPlanBuilder::plan`].
    pub fn builder() -> UploadPlanBuilder {
        UploadPlanBuilder::default()
    }

    /// The steps of the run, in order.
    pub fn items(&self) -> &[UploadItem] {
        &self.items
    }

    /// Files given more than once, each sent once: one name per repetition.
    pub fn repeated(&self) -> &[PathBuf] {
        &self.repeated
    }

    /// The files to send.
    pub fn sends(&self) -> usize {
        self.items.iter().filter(|i| matches!(i, UploadItem::Send(_))).count()
    }

    /// The sizes of the files to send, in order, as planned
    /// ([`ToSend::size`]): the run's total from the start, for
    /// [`Progress::planned_sizes`].
    pub fn planned_sizes(&self) -> Vec<Option<u64>> {
        let sizes = self.items.iter().filter_map(|i| match i {
            UploadItem::Send(file) => Some(file.size),
            UploadItem::NotSent(_) | UploadItem::Skipped(_) => None,
        });
        sizes.collect()
    }

    /// Sends `file` of this plan through `session`, as
    /// [`UploadSession::put_file_with`] sends a name given and
    /// [`UploadSession::put_tree_file_with`] a file of a tree.
    ///
    /// # Errors
    ///
    /// As those two; [`Error::InvalidConfig`] for a file of another plan.
    pub fn put_with(
        &self,
        session: &mut UploadSession,
        file: &ToSend,
        options: &PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<Outcome> {
        let Some((tree, index)) = file.tree else {
            return session.put_file_with(&file.local, &file.remote, options, progress);
        };
        match self.trees.get(tree).and_then(|t| Some((t, t.files.get(index)?))) {
            Some((tree, walked)) => session.put_tree_file_with(tree, walked, &file.remote, options, progress),
            None => Err(Error::InvalidConfig("a file of another upload plan".into())),
        }
    }

    /// An item not sent.
    fn not_sent(&mut self, local: &Path, remote: Vec<u8>, reason: FailReason, text: String) {
        let local = local.to_path_buf();
        self.items.push(UploadItem::NotSent(Unsent { local, remote, reason, text }));
    }

    /// A file whose path below the `--accept` directory is longer than a
    /// `Put` carries is not sent: a tree's entry is skipped, a name given
    /// not sent, each saying why, and the run goes on with the next.
    fn refuse_long_paths(&mut self) {
        for item in &mut self.items {
            let UploadItem::Send(file) = item else { continue };
            if file.remote.len() <= MAX_PATH_LEN {
                continue;
            }
            let text = format!(
                "its path on the server is {} bytes, longer than the {MAX_PATH_LEN} a request carries",
                file.remote.len()
            );
            let gap = Unsent {
                local: std::mem::take(&mut file.local),
                remote: std::mem::take(&mut file.remote),
                reason: FailReason::PathTooLong,
                text,
            };
            *item = if file.in_tree() { UploadItem::Skipped(gap) } else { UploadItem::NotSent(gap) };
        }
    }

    /// No two different local files to one remote path; a file given twice
    /// is sent once ([`UploadPlan::repeated`] names it).
    fn check_collisions(&mut self) -> Result<()> {
        let mut seen: HashMap<&[u8], &Path> = HashMap::new();
        let mut twice = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            let UploadItem::Send(file) = item else { continue };
            match seen.get(&file.remote[..]) {
                Some(first) if *first == file.local => twice.push(i),
                Some(first) => {
                    return Err(Error::SameRemote {
                        first: first.to_path_buf(),
                        second: file.local.clone(),
                        remote: file.remote.clone(),
                    })
                }
                None => {
                    seen.insert(&file.remote, &file.local);
                }
            }
        }
        for i in twice.into_iter().rev() {
            let item = self.items.remove(i);
            self.repeated.insert(0, item.local().to_path_buf());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_keep_the_name_below_to() {
        let plain = UploadPlan::builder();
        assert_eq!(plain.named_remote(Path::new("a/b.txt")).unwrap(), b"b.txt");
        let below = UploadPlan::builder().to("in//x/");
        assert_eq!(below.named_remote(Path::new("b.txt")).unwrap(), b"in/x/b.txt");
        let dot = UploadPlan::builder().to(".");
        assert_eq!(dot.named_remote(Path::new("b.txt")).unwrap(), b"b.txt");
        assert_eq!(tree_name(Path::new("photos/")).unwrap(), b"photos");
        assert_eq!(UploadPlan::builder().to("in").below_to(b"photos"), b"in/photos");
        assert!(plain.named_remote(Path::new("/")).is_none());
    }

    #[test]
    fn two_files_bound_for_one_remote_path_are_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a", "b"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("f.txt"), sub).unwrap();
        }
        let (a, b) = (dir.path().join("a/f.txt"), dir.path().join("b/f.txt"));
        match UploadPlan::builder().to("in").plan(&[&a, &b]) {
            Err(e @ Error::SameRemote { .. }) => {
                let Error::SameRemote { first, second, remote } = &e else { unreachable!() };
                assert_eq!((first, second, &remote[..]), (&a, &b, &b"in/f.txt"[..]));
                assert!(e.to_string().ends_with("would both be sent to in/f.txt"), "{e}");
            }
            other => panic!("expected SameRemote, got {other:?}"),
        }
        // The same file twice is no clash: sent once.
        let plan = UploadPlan::builder().plan(&[&a, &a]).unwrap();
        assert_eq!((plan.sends(), plan.repeated()), (1, &[a.clone()][..]));
    }

    #[test]
    fn a_trees_symlink_is_an_item_named_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("photos");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("a.jpg"), b"a").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();
        let plan = UploadPlan::builder().to("in").recursive(true).plan(&[&tree]).unwrap();
        let [UploadItem::Skipped(gap), UploadItem::Send(file)] = plan.items() else {
            panic!("a gap, then a file: {:?}", plan.items())
        };
        assert_eq!(
            (&gap.local, &gap.remote[..], gap.reason),
            (&tree.join("link"), &b"in/photos/link"[..], FailReason::NotRegular)
        );
        assert!(gap.text.contains("symbolic link"), "{}", gap.text);
        assert_eq!(
            (&file.local, &file.remote[..], file.in_tree()),
            (&tree.join("a.jpg"), &b"in/photos/a.jpg"[..], true)
        );
        // Without -r, the directory is not sent, and says so.
        let plan = UploadPlan::builder().plan(&[&tree]).unwrap();
        let [UploadItem::NotSent(gap)] = plan.items() else { panic!("{:?}", plan.items()) };
        assert_eq!((&gap.remote[..], gap.reason), (&b"photos"[..], FailReason::IsDirectory));
    }

    #[test]
    fn a_name_that_names_a_directory_or_given_for_two_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        for name in ["new/", "new/.", ".."] {
            let planned = UploadPlan::builder().name(name).plan(&[&a]);
            assert!(matches!(planned, Err(Error::InvalidConfig(_))), "{name}: {planned:?}");
        }
        let two = UploadPlan::builder().name("one.txt").plan(&[&a, &b]);
        assert!(matches!(two, Err(Error::InvalidConfig(_))), "{two:?}");
    }

    #[test]
    fn a_name_given_renames_the_file_below_to() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("report.txt");
        std::fs::write(&local, b"r").unwrap();
        let plan = UploadPlan::builder().to("in").name("./sub//today.txt").plan(&[&local]).unwrap();
        let [UploadItem::Send(file)] = plan.items() else { panic!("{:?}", plan.items()) };
        assert_eq!(
            (&file.local, &file.remote[..], file.in_tree()),
            (&local, &b"in/sub/today.txt"[..], false)
        );
        // A file that is not there is an item, not an error.
        let gone = dir.path().join("gone.txt");
        let plan = UploadPlan::builder().name("x").plan(&[&gone]).unwrap();
        let [UploadItem::NotSent(gap)] = plan.items() else { panic!("{:?}", plan.items()) };
        assert_eq!((&gap.remote[..], gap.reason), (&b"x"[..], FailReason::Unreadable));
    }
}
