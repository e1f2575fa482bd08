//! What became of one requested file, and why it did not arrive: typed, so
//! that a caller decides on the reason and prints the text.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::protocol::AsRemotePath;
pub use crate::reason::{FailReason, SkipReason};
use crate::text::quote_bytes;

/// What became of one requested file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Written, verified and (into a directory) given its name.
    Delivered { bytes: u64 },
    /// Not fetched, by choice: the copy there is kept. A success.
    Skipped { reason: SkipReason },
    /// The server has no such file.
    NotFound,
    /// The server will not send it: why, and the server's words.
    Refused { reason: FailReason, text: String },
    /// It did not arrive intact or could not be written: why, and what
    /// happened.
    Failed { reason: FailReason, text: String },
    /// The server's listing left it out, so it was never asked for (a
    /// recursive fetch): why, and the reason in words. A failure.
    LeftOut { reason: FailReason, text: String },
}

impl Outcome {
    pub(crate) fn failed(reason: FailReason, text: impl Into<String>) -> Outcome {
        Outcome::Failed { reason, text: text.into() }
    }

    /// Whether the file arrived.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }

    /// Whether the file arrived or was skipped by choice: nothing went
    /// wrong.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Delivered { .. } | Outcome::Skipped { .. })
    }

    /// The reason a file that did not arrive did not, if it was refused or
    /// failed.
    pub fn reason(&self) -> Option<FailReason> {
        match self {
            Outcome::Refused { reason, .. }
            | Outcome::Failed { reason, .. }
            | Outcome::LeftOut { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// The bytes delivered (0 for a skipped file), or the reason as an
    /// [`Error`], for `?`. `path` is the file's path on the server (any
    /// [`AsRemotePath`]: the name it was fetched or sent by, a listed
    /// path), which the error names: [`Error::NotFound`] in its `path`,
    /// [`Error::Refused`] and [`Error::Failed`] at the head of their
    /// `text`, before the words of the outcome (`../x.txt: it would be
    /// written outside …`), quoted as `ls` quotes a name (an empty path as
    /// `''`). So `?` on an upload or a fetch prints which file it was,
    /// whatever the server's words say.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Refused`] or [`Error::Failed`] for a
    /// file that did not arrive.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::{Error, FailReason, Outcome};
    ///
    /// assert_eq!(Outcome::Delivered { bytes: 6 }.into_result("a.txt")?, 6);
    /// let missing = Outcome::NotFound.into_result("b.txt").unwrap_err();
    /// assert!(matches!(&missing, Error::NotFound { path } if path.as_os_str() == "b.txt"));
    /// assert_eq!(missing.to_string(), "b.txt: not found");
    ///
    /// let refused = Outcome::Refused { reason: FailReason::PermissionDenied, text: "permission denied".into() };
    /// let refused = refused.into_result("secret.txt").unwrap_err();
    /// assert!(matches!(&refused, Error::Refused { reason: FailReason::PermissionDenied, .. }));
    /// assert_eq!(refused.to_string(), "refused by server: secret.txt: permission denied");
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    pub fn into_result(self, path: impl AsRemotePath) -> Result<u64> {
        let path = path.as_remote_path();
        let named = |text: String| {
            let shown = if path.is_empty() { "''".into() } else { quote_bytes(path) };
            format!("{shown}: {text}")
        };
        match self {
            Outcome::Delivered { bytes } => Ok(bytes),
            Outcome::Skipped { .. } => Ok(0),
            Outcome::NotFound => Err(Error::NotFound { path: PathBuf::from(OsStr::from_bytes(path)) }),
            Outcome::Refused { reason, text } => Err(Error::Refused { reason, text: named(text) }),
            Outcome::Failed { reason, text } | Outcome::LeftOut { reason, text } => {
                Err(Error::Failed { reason, text: named(text) })
            }
        }
    }
}

/// What became of one file of a run ([`Client::fetch_files`](crate::Client::fetch_files)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileResult {
    /// The path asked of the server, normalized (`./a//b` → `a/b`); a
    /// name need not be UTF-8.
    pub path: PathBuf,
    /// The name the user reads: the output name, or for a tree the path
    /// below the output directory (bytes: quote it to show it, as `ls`
    /// quotes names).
    pub name: PathBuf,
    /// What became of it.
    pub outcome: Outcome,
    /// For a file delivered by resuming a partial file an earlier run kept
    /// ([`Partial::Keep`](crate::Partial::Keep)): the bytes it kept, which
    /// were not sent again.
    pub resumed_at: Option<u64>,
}

impl FileResult {
    /// [`Outcome::into_result`] for this file's path.
    ///
    /// # Errors
    ///
    /// As [`Outcome::into_result`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::{Client, ClientConfig, FetchOptions, Server};
    ///
    /// # fn main() -> Result<(), shmxfer::Error> {
    /// # let root = tempfile::tempdir().unwrap();
    /// # std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    /// # let queue = format!("/shmxfer_doctest_file_result_{}", std::process::id());
    /// # let server = Server::builder().queue(&queue).root(root.path()).stall_timeout(None).bind()?;
    /// # let serving = std::thread::spawn(move || server.run(Default::default()));
    /// let out = tempfile::tempdir().unwrap();
    /// let mut client = Client::connect(&ClientConfig::new(&queue))?;
    /// let report = client.fetch_files(&["hello.txt", "gone.txt"], &FetchOptions::new(out.path()))?;
    /// client.close()?;
    /// let mut files = report.into_result()?.into_iter();
    /// assert_eq!(files.next().unwrap().into_result()?, 6);
    /// let gone = files.next().unwrap().into_result().unwrap_err();
    /// assert_eq!(gone.to_string(), "gone.txt: not found");
    /// # serving.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_result(self) -> Result<u64> {
        self.outcome.into_result(&self.path)
    }
}
