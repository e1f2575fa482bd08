use super::partial::umask;
use super::*;
use std::os::unix::fs::PermissionsExt;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn path(p: &str, relative: bool) -> OutputPath {
    OutputPath::for_request(p, names(relative)).unwrap()
}

fn names(relative: bool) -> OutputNames {
    if relative {
        OutputNames::Relative
    } else {
        OutputNames::Basename
    }
}

/// A sink of the kind `named` asks for: a named temporary file stands
/// in for a filesystem without `O_TMPFILE`.
fn sink(dir: &OutDir, out: &OutputPath, mode: u32, named: bool) -> Sink {
    let mut sink = dir.create(out, mode).unwrap();
    if named && sink.temp.is_none() {
        let name = temp_name().unwrap();
        let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = openat(&sink.dir, name.as_os_str(), flags, Mode::from_bits_truncate(mode)).unwrap();
        sink.temp = Some(Temp::of(name, &fd).unwrap());
        sink.file = Some(File::from(fd));
    }
    sink
}

#[test]
fn both_kinds_of_sink_create_replace_and_refuse_to_clobber() {
    for named in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let f = path("f", false);
        let put = |bytes: &[u8], clobber: Clobber| {
            let mut s = sink(&dir, &f, 0o600, named);
            s.write_all(bytes).unwrap();
            s.persist(clobber)
        };
        put(b"one", Clobber::Replace).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"one");
        put(b"two", Clobber::Replace).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"two");
        let err = put(b"three", Clobber::Keep).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"two");
        // A sink dropped unpersisted leaves nothing.
        let mut s = sink(&dir, &f, 0o600, named);
        s.write_all(b"partial").unwrap();
        drop(s);
        assert_eq!(entries(tmp.path()), ["f"]);
    }
}

#[test]
fn replacing_keeps_the_mode_of_the_file_replaced() {
    for named in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let target = tmp.path().join("f");
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut s = sink(&dir, &path("f", false), 0o4755, named);
        s.write_all(b"new").unwrap();
        s.persist(Clobber::Replace).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "named: {named}");
        assert_eq!(entries(tmp.path()), ["f"]);
    }
}

#[test]
fn temporary_names_fit_beside_the_longest_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutDir::open(tmp.path()).unwrap();
    let long = "n".repeat(255);
    for _ in 0..2 {
        let mut s = sink(&dir, &path(&long, false), 0o644, false);
        s.write_all(b"x").unwrap();
        s.persist(Clobber::Replace).unwrap();
    }
    assert_eq!(entries(tmp.path()), [long]);
    assert!(temp_name().unwrap().len() < 32);
}

#[test]
fn relative_paths_create_directories_and_never_follow_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("link")).unwrap();
    let dir = OutDir::open(&out).unwrap();
    let mut s = dir.create(&path("a/b/c", true), 0o644).unwrap();
    s.write_all(b"deep").unwrap();
    s.persist(Clobber::Replace).unwrap();
    assert_eq!(std::fs::read(out.join("a/b/c")).unwrap(), b"deep");
    let err = dir.create(&path("link/x", true), 0o644).unwrap_err();
    assert!(err.to_string().contains("not followed"), "{err}");
    assert!(entries(&elsewhere).is_empty());
    assert!(!dir.exists(&path("link/x", true)));
}

#[test]
fn a_kept_partial_is_the_users_alone_and_resumed_gets_the_sources_mode() {
    let stamp = Stamp { size: 10, mtime_ns: 7 };
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutDir::open(tmp.path()).unwrap();
    let f = path("f", false);
    let mut s = dir.create_partial(&f, 0o755, stamp).unwrap();
    s.write_all(b"half").unwrap();
    s.keep_partial().unwrap();
    let mode = |name: &str| std::fs::metadata(tmp.path().join(name)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(".shmxfer-partial.f"), 0o600);
    assert_eq!(mode(".shmxfer-partial.f.source"), 0o600);
    let Found::Kept(kept) = dir.kept(&f) else { panic!("the client's own partial is taken") };
    assert_eq!((kept.len, kept.stamp), (4, stamp));
    let mut s = dir.resume(&f, kept, 0o4755).unwrap();
    s.write_all(b" more").unwrap();
    s.persist(Clobber::Replace).unwrap();
    assert_eq!(mode("f"), 0o755 & !umask());
    assert_eq!(entries(tmp.path()), ["f"]);
}

/// A sink not started as a partial file never had the partial's names:
/// it keeps nothing (it would have taken them from whoever had them).
#[test]
fn a_sink_not_started_as_a_partial_keeps_nothing() {
    for named in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let mut s = sink(&dir, &path("f", false), 0o644, named);
        s.write_all(b"half").unwrap();
        assert_eq!(s.keep_partial().unwrap_err().kind(), io::ErrorKind::Unsupported);
        assert!(entries(tmp.path()).is_empty(), "named: {named}");
    }
}

/// A partial that a sink is writing is another client's live transfer:
/// not resumed, not removed, not replaced by a new partial, and its names
/// left to it by a file delivered under its final name.
#[test]
fn a_partial_being_written_is_left_to_its_writer() {
    let stamp = Stamp { size: 10, mtime_ns: 7 };
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutDir::open(tmp.path()).unwrap();
    let f = path("f", false);
    let mut writing = dir.create_partial(&f, 0o644, stamp).unwrap();
    writing.write_all(b"half").unwrap();
    assert!(matches!(dir.kept(&f), Found::Busy));
    dir.discard_kept(&f);
    let err = dir.create_partial(&f, 0o644, stamp).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy, "{err}");
    let mut whole = dir.create(&f, 0o644).unwrap();
    whole.write_all(b"whole file").unwrap();
    whole.persist(Clobber::Replace).unwrap();
    assert_eq!(entries(tmp.path()), [".shmxfer-partial.f", ".shmxfer-partial.f.source", "f"]);
    writing.write_all(b" more").unwrap();
    writing.persist(Clobber::Replace).unwrap();
    assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"half more");
    assert_eq!(entries(tmp.path()), ["f"]);
}

#[test]
fn a_partial_linked_elsewhere_or_writable_by_others_or_not_a_file_is_unusable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutDir::open(tmp.path()).unwrap();
    let f = path("f", false);
    let (partial, record) =
        (tmp.path().join(".shmxfer-partial.f"), tmp.path().join(".shmxfer-partial.f.source"));
    assert!(matches!(dir.kept(&f), Found::Nothing));
    std::fs::write(&record, "10 7\n").unwrap();
    std::fs::write(&partial, "half").unwrap();
    assert!(matches!(dir.kept(&f), Found::Kept(_)));
    std::fs::hard_link(&partial, tmp.path().join("elsewhere")).unwrap();
    assert!(matches!(dir.kept(&f), Found::Unusable), "two links");
    std::fs::remove_file(tmp.path().join("elsewhere")).unwrap();
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert!(matches!(dir.kept(&f), Found::Unusable), "group-writable");
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&record).unwrap();
    nix::unistd::mkfifo(&record, Mode::from_bits_truncate(0o600)).unwrap();
    assert!(matches!(dir.kept(&f), Found::Unusable), "a FIFO as the record, opened without blocking");
    dir.discard_kept(&f);
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn a_dest_naming_a_directory_has_no_file_name() {
    for bad in ["new/", "out/new/", "out/.", "out/..", ".", "..", "/", ""] {
        assert!(dest_parts(Path::new(bad)).is_err(), "{bad:?}");
    }
    assert_eq!(dest_parts(Path::new("out/new")).unwrap(), (OsStr::new("new"), PathBuf::from("out")));
    assert_eq!(dest_parts(Path::new("new")).unwrap(), (OsStr::new("new"), PathBuf::from(".")));
    let bad = OsStr::from_bytes(b"bad_\xff");
    assert_eq!(dest_parts(&Path::new("out").join(bad)).unwrap(), (bad, PathBuf::from("out")));
}

#[test]
fn output_paths_keep_or_drop_directories() {
    assert_eq!(path("a/b/c.txt", false).shown(), "c.txt");
    assert_eq!(path("a//./b/c.txt", true).shown(), "a/b/c.txt");
    assert_eq!(path("/abs/x", true).shown(), "abs/x");
    assert!(OutputPath::for_request("d1/../x", OutputNames::Relative).is_err());
    assert_eq!(OutputPath::below("a/b/c").unwrap().shown(), "a/b/c");
    for bad in ["", "/a", "a//b", "a/./b", "a/../b", "a/"] {
        assert!(OutputPath::below(bad).is_err(), "{bad:?}");
    }
    assert_eq!(path("../x", false).shown(), "x");
    for none in ["", ".", "..", "a/", "a/..", "a/."] {
        for relative in [false, true] {
            assert!(OutputPath::for_request(none, names(relative)).is_err(), "{none:?}");
        }
    }
}

/// The directories kept open between files (`reached`) are each checked
/// still at their names: one moved away and replaced by a symlink, or by
/// a file, gets none of the next files, nor does what the symlink names.
#[test]
fn a_kept_directory_moved_and_replaced_gets_no_more_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, away) = (tmp.path().join("out"), tmp.path().join("away"));
    std::fs::create_dir_all(out.join("a/b")).unwrap();
    let dir = OutDir::open(&out).unwrap();
    let put = |p: &str| {
        let mut s = dir.create(&path(p, true), 0o600)?;
        s.write_all(b"x")?;
        s.persist(Clobber::Replace).map_err(|e| io::Error::other(e.to_string()))
    };
    put("a/b/one").unwrap();
    std::fs::rename(out.join("a/b"), &away).unwrap();
    std::os::unix::fs::symlink(&away, out.join("a/b")).unwrap();
    let err = put("a/b/two").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
    std::fs::remove_file(out.join("a/b")).unwrap();
    std::fs::write(out.join("a/b"), b"").unwrap();
    put("a/b/three").unwrap_err();
    std::fs::remove_file(out.join("a/b")).unwrap();
    put("a/b/four").unwrap();
    assert_eq!(entries(&away), ["one"]);
    assert_eq!(entries(&out.join("a/b")), ["four"]);
}
