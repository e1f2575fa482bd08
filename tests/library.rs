//! The library as a Rust program uses it, with a server of this process:
//! every name a listing gives is fetched (and sent back) as it is listed,
//! whatever its bytes, and a file's error names the file.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use shmxfer::upload::PutIfExists;
use shmxfer::{
    Client, ClientConfig, Clobber, Error, FailReason, FetchOptions, Outcome, OutputNames, Server, StopKind,
    UploadSession,
};

use crate::util::{assert_no_leftovers, Names};

/// The served tree: two of its names are not UTF-8.
const FILES: [(&[u8], &[u8]); 3] =
    [(b"plain.txt", b"plain\n"), (b"bad_\xff.txt", b"bad ff\n"), (b"sub/deep_\xfe.bin", b"deep fe\n")];

fn os(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// A persistent server of this process on the names' queue, serving a
/// root and taking uploads into an accept directory; stopped when dropped,
/// a failed test's too.
struct Serving<'a> {
    names: &'a Names,
    thread: Option<JoinHandle<shmxfer::Result<()>>>,
}

impl<'a> Serving<'a> {
    fn start(names: &'a Names, root: &Path, accept: &Path) -> Serving<'a> {
        let server = Server::builder()
            .queue(names.queue())
            .root(root)
            .accept(Some(accept.to_path_buf()))
            .persistent()
            .bind()
            .expect("the server binds");
        Serving { names, thread: Some(std::thread::spawn(move || server.run(Default::default()))) }
    }

    /// Stops the server and checks that nothing of it is left.
    fn stop(mut self) {
        self.end().expect("the server ran");
        assert_no_leftovers(self.names);
    }

    fn end(&mut self) -> shmxfer::Result<()> {
        let Some(thread) = self.thread.take() else { return Ok(()) };
        shmxfer::stop_server(&ClientConfig::new(self.names.queue()), StopKind::Now)?;
        thread.join().expect("the server's thread")
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

#[test]
fn library_fetches_and_sends_back_every_listed_name_whatever_its_bytes() {
    let names = Names::new("library_listed_names");
    let (root, inbox, out) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(root.path().join("sub")).unwrap();
    for dir in ["one", "files", "relative", "tree"] {
        std::fs::create_dir(out.path().join(dir)).unwrap();
    }
    for (name, bytes) in FILES {
        std::fs::write(root.path().join(os(name)), bytes).unwrap();
    }
    let serving = Serving::start(&names, root.path(), inbox.path());
    let config = ClientConfig::new(names.queue());

    let mut client = Client::connect(&config).expect("a session opens");
    let listing = client.list(None).expect("the server lists");
    let mut listed: Vec<&[u8]> = listing.files.iter().map(|e| e.path_bytes()).collect();
    listed.sort();
    let mut served: Vec<&[u8]> = FILES.iter().map(|(name, _)| *name).collect();
    served.sort();
    assert_eq!(listed, served, "the listing gives the names' bytes");

    for entry in &listing.files {
        let bytes = FILES.iter().find(|(name, _)| *name == entry.path_bytes()).expect("a served file").1;
        let shown = entry.path.display();
        // By reference to the entry's PathBuf, by &Path, by value.
        assert_eq!(client.fetch_vec(&entry.path).expect("fetch_vec"), bytes, "{shown}");
        let mut read = Vec::new();
        client.fetch_reader(entry.path.as_path()).expect("fetch_reader").read_to_end(&mut read).unwrap();
        assert_eq!(read, bytes, "{shown}");
        let mut written = Vec::new();
        let outcome = client.fetch_to(entry.path.clone(), &mut written).expect("fetch_to");
        assert_eq!((outcome, written.as_slice()), (Outcome::Delivered { bytes: bytes.len() as u64 }, bytes));

        let name = entry.path.file_name().expect("a file name");
        let dest = out.path().join("one").join(name);
        assert_eq!(
            client.fetch_file(&entry.path, &dest, Clobber::Replace).expect("fetch_file"),
            bytes.len() as u64
        );
        assert_eq!(std::fs::read(&dest).unwrap(), bytes, "{shown}");

        let dir = out.path().join("files");
        let report = client.fetch_files(&[&entry.path], &FetchOptions::new(&dir)).expect("fetch_files");
        assert!(report.all_delivered(), "{shown}: {report:?}");
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), bytes, "{shown}: written under its own bytes");
    }

    // All at once, as listed, and the tree that holds one.
    let paths: Vec<PathBuf> = listing.files.iter().map(|e| e.path.clone()).collect();
    let relative = out.path().join("relative");
    let report = client
        .fetch_files(&paths, &FetchOptions::new(&relative).names(OutputNames::Relative))
        .expect("fetch_files");
    assert!(report.all_delivered(), "{report:?}");
    let tree = out.path().join("tree");
    let report = client.fetch_tree(&[Path::new("sub")], &FetchOptions::new(&tree)).expect("fetch_tree");
    assert!(report.all_delivered(), "{report:?}");
    for (name, bytes) in FILES {
        assert_eq!(std::fs::read(relative.join(os(name))).unwrap(), bytes);
    }
    assert_eq!(std::fs::read(tree.join(os(FILES[2].0))).unwrap(), FILES[2].1);
    client.close().expect("the session closes");

    // Sent back under the names listed.
    let mut session = UploadSession::connect(&config).expect("an upload session opens");
    for entry in &listing.files {
        let local = out.path().join("relative").join(&entry.path);
        let outcome = session.put_file(&local, &entry.path, PutIfExists::Replace).expect("put_file");
        outcome.into_result(&entry.path).expect("stored");
        assert_eq!(std::fs::read(inbox.path().join(&entry.path)).unwrap(), std::fs::read(&local).unwrap());
    }
    session.close().expect("the session closes");
    // The one-call fetch takes a listed name too (it reads $SHMXFER_QUEUE,
    // which a test does not set).
    let _ = || shmxfer::fetch(&listing.files[0].path);
    serving.stop();
}

#[test]
fn library_upload_refused_names_the_remote_path() {
    let names = Names::new("library_upload_refused");
    let (root, inbox, here) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let serving = Serving::start(&names, root.path(), inbox.path());
    let local = here.path().join("report.txt");
    std::fs::write(&local, b"all well\n").unwrap();

    let mut session = UploadSession::connect(&ClientConfig::new(names.queue())).expect("a session opens");
    let remote = "../escape.txt";
    let outcome = session.put_file(&local, remote, PutIfExists::Replace).expect("answered");
    let error = outcome.into_result(remote).expect_err("refused");
    assert!(matches!(error, Error::Refused { reason: FailReason::OutsideRoot, .. }), "{error:?}");
    assert!(
        error.to_string().starts_with("refused by server: ../escape.txt: it would be written outside"),
        "{error}"
    );
    let nameless = session.put_file(&local, "", PutIfExists::Replace).expect("answered");
    assert_eq!(
        nameless.into_result("").expect_err("refused").to_string(),
        "refused by server: '': not a path of plain names below the server's --accept directory"
    );
    session.close().expect("the session closes");
    serving.stop();
}
