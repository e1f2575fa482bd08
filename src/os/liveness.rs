//! Who is alive: locks that the kernel drops when their holder dies.
//!
//! * The server holds a write lock on its lock object `<queue>.lock`
//!   ([`ServerLock`]). Clients and `--cleanup` test it without taking it
//!   ([`ServerWatch`]). The lock object is created with `O_EXCL` by the
//!   server that holds it, so a watcher's descriptor names the inode of *that*
//!   server: when a new server replaces a dead one, it creates a new object and
//!   the watchers of the old one see its lock free.
//! * Each client holds a write lock on its region ([`client_alive`]).
//!
//! Locks are open-file-description locks (`F_OFD_SETLK`), probed with
//! `F_OFD_GETLK`, which takes nothing: pid reuse and zombies cannot fool them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::os::names::{lock_name, shm_path};
use crate::os::shm_object::{remove_shm, Access, ShmObject};
use crate::os::sys;
use crate::text::{quote_name, quote_whole};

/// How long one blocking wait lasts before the waiter looks at the peer and
/// the cancel flag again. Bounds the time to notice a dead peer or a signal.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Checks whether the peer is still there; called once per wait slice.
pub type Liveness = Box<dyn Fn() -> Result<()> + Send>;

/// Whether some other open file description holds a write lock on `obj`.
pub fn is_locked(obj: &ShmObject) -> Result<bool> {
    sys::is_write_locked(obj).map_err(|e| Error::os_named("fcntl(F_OFD_GETLK)", obj.name(), e))
}

/// The user ids whose objects a process of user `me` may use: its own, and
/// root's.
fn trusted_owner(uid: u32, me: u32) -> bool {
    uid == me || uid == 0
}

/// Why an object of `owner` (`nobody (uid 65534)`) is not trusted by a
/// process of user `me` ([`trusted_owner`]), as a refusal says it: `, not
/// to you or root`, or, for root (which may open it, and still uses no
/// other user's objects), `; root uses no other user's {what}`.
fn untrusted_owner(owner: &str, me: u32, what: &str) -> String {
    if me == 0 {
        format!("belongs to {owner}; root uses no other user's {what}")
    } else {
        format!("belongs to {owner}, not to you or root")
    }
}

/// The server's hold on its queue: a write-locked lock object that this
/// server created. Dropping it unlinks the name (if it still names this
/// object) and releases the lock.
#[derive(Debug)]
pub struct ServerLock {
    obj: ShmObject,
    ino: u64,
}

impl ServerLock {
    /// Takes the lock of `queue`: creates `<queue>.lock` with `O_EXCL`, mode
    /// 0600, write-locks it and writes this process's pid into it. A lock
    /// object left by a dead server of this user is removed first, or, while
    /// another process removes it (a `--cleanup`), waited for up to
    /// [`WAIT_FOR_REMOVAL`]; one that another user owns is never touched.
    ///
    /// # Errors
    ///
    /// [`Error::ServerRunning`] when a live server holds the lock;
    /// [`Error::Timeout`] when a dead server's lock is held longer than
    /// [`WAIT_FOR_REMOVAL`] by whoever removes it (a `--cleanup` stopped);
    /// [`Error::BadObject`] when the name is taken by something that is not
    /// this user's lock object; [`Error::Os`] from the calls.
    pub fn acquire(queue: &str) -> Result<ServerLock> {
        let name = lock_name(queue);
        let mut holder = None;
        let removal_deadline = Instant::now() + WAIT_FOR_REMOVAL;
        let mut tries = 0;
        // A few tries, and more while a dead server's lock is being removed.
        while tries < 20 || holder.is_some_and(|h: Holder| h.removing) && Instant::now() < removal_deadline {
            tries += 1;
            match ShmObject::create_exclusive(&name, 0) {
                Ok(obj) => {
                    if let Some(lock) = Self::hold(obj)? {
                        return Ok(lock);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => match DeadLock::take(queue)? {
                    Stale::Dead(dead) => {
                        dead.remove()?;
                        continue;
                    }
                    Stale::Absent => continue,
                    // A live server, or a `--cleanup` or a starting server
                    // removing a dead lock: asked again.
                    Stale::Held { pid } => holder = Some(Holder::of(pid)),
                },
                Err(e) => return Err(e),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match holder {
            // Its server is gone: whoever holds it is no server, and the
            // wait for it to let go ran out.
            Some(Holder { pid: Some(pid), removing: true }) => Err(Error::Timeout {
                what: format!(
                    "the lock {} of queue {queue}, left by a server (pid {pid}) that is gone, is still held \
                     by another process (a `shm_server --cleanup` removing it that has not finished, or is \
                     stopped); start the server again once it has let go",
                    quote_name(&shm_path(&name))
                ),
                after: WAIT_FOR_REMOVAL,
            }),
            _ => Err(Error::ServerRunning { queue: queue.to_owned(), pid: holder.and_then(|h| h.pid) }),
        }
    }

    /// Locks a freshly created lock object; `None` when the name no longer
    /// names it (a starting server took it for stale and removed it). On
    /// any failure the name is removed again: a server that fails to start
    /// leaves no lock.
    fn hold(mut obj: ShmObject) -> Result<Option<ServerLock>> {
        // The name is unlinked by `ServerLock`'s drop, and only after a check
        // that it still names this object.
        obj.disown();
        let name = obj.name().to_owned();
        let ino = obj.stat()?.ino();
        let held = Self::lock_and_mark(&obj, &name, ino);
        if !matches!(held, Ok(true)) && named_inode(&name) == Some(ino) {
            let _ = remove_shm(&name);
        }
        Ok(if held? { Some(ServerLock { obj, ino }) } else { None })
    }

    /// Write-locks `obj` and writes this process's pid into it: `false` when
    /// another holds it or the name `name` no longer names inode `ino`.
    fn lock_and_mark(obj: &ShmObject, name: &str, ino: u64) -> Result<bool> {
        if !sys::try_lock_exclusive(obj).map_err(|e| Error::os_named("fcntl(F_OFD_SETLK)", name, e))? {
            return Ok(false);
        }
        if named_inode(name) != Some(ino) {
            return Ok(false);
        }
        // One `pwrite` into the empty object: a reader sees it empty or
        // holding the whole line, never a size without its digits
        // (`lock_form` takes nothing else for a server's lock).
        File::from(obj.try_clone_fd()?)
            .write_all_at(pid_line(std::process::id()).as_bytes(), 0)
            .map_err(|e| Error::os_named("pwrite", name, e))?;
        Ok(true)
    }
}

/// How long a starting server waits for whoever removes a dead server's
/// lock (a `shm_server --cleanup`, another starting server): that takes
/// milliseconds, and a server started beside it should start, not take it
/// for a live server.
const WAIT_FOR_REMOVAL: Duration = Duration::from_secs(5);

/// Who holds a lock object that a starting server found taken.
#[derive(Debug, Clone, Copy)]
struct Holder {
    /// The pid its server wrote into it.
    pid: Option<u32>,
    /// That process is gone: the holder removes a dead server's lock.
    removing: bool,
}

impl Holder {
    fn of(pid: Option<u32>) -> Holder {
        Holder { pid, removing: pid.is_some_and(process_gone) }
    }
}

/// Whether no process `pid` exists (in this pid namespace). A pid that
/// cannot name one process (0, or beyond `pid_t`) is not known gone.
fn process_gone(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    raw > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) == Err(nix::errno::Errno::ESRCH)
}

/// What a lock object found under a queue's lock name is.
#[derive(Debug)]
pub enum Stale {
    /// Nothing under the name (or it changed while looked at).
    Absent,
    /// Someone holds its write lock: a live server (or, for a moment, a
    /// `--cleanup` or a starting server removing it), with the pid the
    /// server wrote into it.
    Held { pid: Option<u32> },
    /// Nobody held it: now the caller does.
    Dead(DeadLock),
}

/// The lock object of a dead server, write-locked by the caller: while it
/// is held, no starting server and no other `--cleanup` removes or replaces
/// it, so what the caller removes is what the dead server left.
#[derive(Debug)]
pub struct DeadLock {
    obj: ShmObject,
    ino: u64,
}

impl DeadLock {
    /// Looks at the lock object of `queue` and takes its write lock if
    /// nobody holds it. Only an object of the form a server gives its lock
    /// is taken ([`lock_form`]: this user's regular file, mode 0600, empty
    /// or holding its pid line), and a dead one only when no other program
    /// holds a `flock()` lock on it either.
    ///
    /// # Errors
    ///
    /// [`Error::BadObject`] for another user's object, one that is not a
    /// regular file (a FIFO, a directory) or not of a lock's form, or one
    /// that another program holds with `flock()`; [`Error::Os`].
    pub fn take(queue: &str) -> Result<Stale> {
        let name = lock_name(queue);
        let not_a_lock = |reason: String| {
            let path = shm_path(&name);
            Error::BadObject {
                // To act on: whole.
                reason: format!("{reason}; remove {} or choose another queue", quote_whole(path.as_bytes())),
                name: path,
            }
        };
        let obj = match ShmObject::open(&name, Access::ReadWrite) {
            Ok(obj) => obj,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Stale::Absent),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Err(others_lock(queue, &name, e)),
            // `shm_open` of a directory for writing: EISDIR from the kernel,
            // EINVAL from some C libraries.
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EISDIR | libc::EINVAL)) && is_directory(&name) =>
            {
                return Err(not_a_lock("a directory, not a regular file".into()))
            }
            Err(Error::BadObject { reason, .. }) => return Err(not_a_lock(reason)),
            Err(e) => return Err(e),
        };
        let meta = obj.stat()?;
        if meta.uid() != euid() {
            return Err(Error::BadObject {
                name: shm_path(&name),
                reason: format!(
                    "belongs to uid {}; it is not this server's to take; choose another queue",
                    meta.uid()
                ),
            });
        }
        lock_form(&obj, &meta).map_err(not_a_lock)?;
        if !sys::try_lock_exclusive(&obj).map_err(|e| Error::os_named("fcntl(F_OFD_SETLK)", &name, e))? {
            return Ok(Stale::Held { pid: read_pid(&obj) });
        }
        // Held from here to the drop (the lock goes with the descriptor),
        // so no `flock()` user takes it while it is removed.
        if !sys::try_flock_exclusive(&obj).map_err(|e| Error::os_named("flock", &name, e))? {
            return Err(not_a_lock("held with flock() by another program, not a server's lock".into()));
        }
        let dead = DeadLock { obj, ino: meta.ino() };
        if !dead.still_named() {
            return Ok(Stale::Absent);
        }
        Ok(Stale::Dead(dead))
    }

    /// Whether the lock name still names this object.
    pub fn still_named(&self) -> bool {
        named_inode(self.obj.name()) == Some(self.ino)
    }

    /// Removes the lock name if it still names this object, then lets the
    /// lock go; whether it removed it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_unlink`.
    pub fn remove(self) -> Result<bool> {
        if self.still_named() {
            remove_shm(self.obj.name())
        } else {
            Ok(false)
        }
    }
}

impl Drop for ServerLock {
    fn drop(&mut self) {
        // Unlink the name only while it still names our object: another
        // server may have replaced it.
        if named_inode(self.obj.name()) == Some(self.ino) {
            let _ = remove_shm(self.obj.name());
        }
    }
}

/// The inode that `name` names now, if any.
fn named_inode(name: &str) -> Option<u64> {
    ShmObject::open(name, Access::ReadOnly).and_then(|o| o.stat()).map(|m| m.ino()).ok()
}

/// The line a server writes into its lock object: its pid in decimal.
fn pid_line(pid: u32) -> String {
    format!("{pid}\n")
}

/// The longest contents a server's lock object has: a `u32` and a newline.
const MAX_LOCK_CONTENTS: usize = 11;

/// The first bytes of `obj` (at most one more than a lock holds), read at
/// offset 0 without moving the shared file offset.
fn head_of(obj: &ShmObject) -> Option<Vec<u8>> {
    let mut buf = [0u8; MAX_LOCK_CONTENTS + 1];
    let n = File::from(obj.try_clone_fd().ok()?).read_at(&mut buf, 0).ok()?;
    Some(buf[..n].to_vec())
}

/// The pid a server wrote into its lock object, if readable.
fn read_pid(obj: &ShmObject) -> Option<u32> {
    pid_of(&head_of(obj)?)
}

/// The pid in `contents` if they are exactly the line [`pid_line`] makes.
fn pid_of(contents: &[u8]) -> Option<u32> {
    let pid: u32 = std::str::from_utf8(contents).ok()?.strip_suffix('\n')?.parse().ok()?;
    (pid_line(pid).as_bytes() == contents).then_some(pid)
}

/// Whether `obj` (of status `meta`), found under a lock name, has the form a
/// server gives its lock: this user's regular file of mode 0600, empty (a
/// server between its `O_EXCL` create and its `pwrite`) or holding exactly
/// the line of a pid as [`ServerLock`] writes it. Anything else is another
/// program's object named like a lock: `Err` says why.
fn lock_form(obj: &ShmObject, meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != euid() {
        return Err(format!("belongs to uid {}", meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o600 {
        return Err(format!("has mode {mode:04o}, not the 0600 of a server's lock"));
    }
    if meta.len() > MAX_LOCK_CONTENTS as u64 {
        return Err(format!("holds {} bytes, not a server's pid", meta.len()));
    }
    let contents = head_of(obj).ok_or_else(|| "cannot be read".to_owned())?;
    if contents.is_empty() || pid_of(&contents).is_some() {
        Ok(())
    } else {
        Err("holds something other than a server's pid".into())
    }
}

/// Whether `name` names a directory in `/dev/shm` (not followed if a link).
fn is_directory(name: &str) -> bool {
    std::fs::symlink_metadata(shm_path(name)).is_ok_and(|m| m.is_dir())
}

/// A watch on the server of a queue: the lock object of the server that was
/// live when the watch was made. It reports that server's death even when
/// another server has taken the queue since.
#[derive(Debug)]
pub struct ServerWatch {
    obj: ShmObject,
    queue: String,
}

impl ServerWatch {
    /// Watches the live server of `queue`: `None` when there is no lock
    /// object or nobody holds it (no server, or a dead one).
    ///
    /// # Errors
    ///
    /// [`Error::BadObject`] when the lock object is not a regular file or
    /// belongs to a user other than this one or root; [`Error::Os`].
    pub fn find(queue: &str) -> Result<Option<ServerWatch>> {
        let name = lock_name(queue);
        let obj = match ShmObject::open(&name, Access::ReadOnly) {
            Ok(obj) => obj,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                return Err(other_users_server(queue, &name, e))
            }
            Err(Error::BadObject { name: path, reason }) => {
                return Err(Error::BadObject {
                    reason: format!("{reason}, not a server's lock; remove {path} or use another queue"),
                    name: path,
                })
            }
            Err(e) => return Err(e),
        };
        let uid = obj.stat()?.uid();
        if !trusted_owner(uid, euid()) {
            // Root may open it, and still trusts no other user's objects:
            // whose server it is, and what to do instead.
            let (owner, who, run_as) = match user_name(uid) {
                Some(user) => (format!("{user} (uid {uid})"), user.clone(), format!("sudo -u {user}")),
                None => (format!("uid {uid}"), format!("uid {uid}"), format!("sudo -u '#{uid}'")),
            };
            return Err(Error::BadObject {
                name: shm_path(&name),
                reason: format!(
                    "{}; not trusted as a server's lock: the server on queue {queue} runs as {who}; run the \
                     client as that user ({run_as} shm_client …), or start a server of your own on another \
                     queue (shm_server --queue /NAME, and --queue /NAME here)",
                    untrusted_owner(&owner, euid(), "server")
                ),
            });
        }
        if !is_locked(&obj)? {
            return Ok(None);
        }
        Ok(Some(ServerWatch { obj, queue: queue.to_owned() }))
    }

    /// Whether the watched server still lives.
    pub fn is_alive(&self) -> bool {
        is_locked(&self.obj).unwrap_or(true)
    }

    /// `Ok` while the watched server lives, else [`Error::PeerGone`].
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`] once the server is gone.
    pub fn check(&self) -> Result<()> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(Error::PeerGone(format!("the server of queue {} died or stopped", self.queue)))
        }
    }
}

/// The lock of `queue`'s server, `name`, could not be opened (`opening`,
/// `EACCES`): [`Error::OtherUsersServer`] naming its owner, else `opening`.
fn other_users_server(queue: &str, name: &str, opening: Error) -> Error {
    let Ok(meta) = std::fs::metadata(shm_path(name)) else { return opening };
    let uid = meta.uid();
    if uid == euid() {
        return opening;
    }
    Error::OtherUsersServer { queue: queue.to_owned(), uid, user: user_name(uid) }
}

/// The lock `name` of `queue`, which this user may not open (`opening`,
/// `EACCES`), taken or cleaned up after: [`Error::BadObject`] saying whose
/// it is and what to do, else `opening`. Its server runs as that user, or
/// died and left it: only that user (or root) may stop it or clean up.
fn others_lock(queue: &str, name: &str, opening: Error) -> Error {
    let Ok(meta) = std::fs::metadata(shm_path(name)) else { return opening };
    let uid = meta.uid();
    let (who, as_owner) = match user_name(uid) {
        Some(user) => {
            (format!("{user} (uid {uid})"), format!("sudo -u {user} shm_server --cleanup --queue {queue}"))
        }
        None => (format!("uid {uid}"), format!("shm_server --cleanup --queue {queue} as uid {uid}")),
    };
    Error::BadObject {
        name: shm_path(name),
        reason: format!(
            "the lock of queue {queue} belongs to {who}, and this user may not open it: a server of that user \
             serves the queue, or died and left it; as that user, `{as_owner}` cleans up after a dead one"
        ),
    }
}

/// The name of the user `uid`, if the user database has one.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
}

/// Checks that the queue behind `mq` belongs to this user or root: a client
/// talks to no other user's queue.
///
/// # Errors
///
/// [`Error::BadObject`] naming the owner otherwise; [`Error::Os`] from `fstat`.
pub fn check_queue_owner(queue: &str, mq: &impl AsRawFd) -> Result<()> {
    let uid = queue_identity(queue, mq)?.0;
    if trusted_owner(uid, euid()) {
        Ok(())
    } else {
        Err(Error::BadObject {
            name: queue.to_owned(),
            reason: format!(
                "the queue {}; not trusted",
                untrusted_owner(&format!("uid {uid}"), euid(), "queue")
            ),
        })
    }
}

/// The uid that owns the queue behind `mq`, and its inode.
///
/// # Errors
///
/// [`Error::Os`] from `fstat`.
pub fn queue_identity(queue: &str, mq: &impl AsRawFd) -> Result<(u32, u64)> {
    sys::owner_and_inode(mq).map_err(|e| Error::os_named("fstat", queue, e))
}

/// The uid of this process.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A server's lock object of this user found in `/dev/shm`
/// ([`servers_of_this_user`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundServer {
    /// The queue the lock belongs to (`<queue>.lock`).
    pub queue: String,
    /// Whether a server holds the lock.
    pub state: ServerState,
}

/// Whether a found lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// A live server holds it; the pid it wrote, if readable.
    Live { pid: Option<u32> },
    /// Nobody holds it: a server died and left it (and maybe its queue and
    /// sessions' objects).
    Dead,
}

/// Every server of this user on this machine, live or dead, found through
/// the lock objects in `/dev/shm` (`<queue>.lock`, regular files owned by
/// this user's effective uid; another user's, root's included, are never
/// looked at), sorted by queue.
///
/// # Errors
///
/// [`Error::Os`] when `/dev/shm` cannot be read.
pub fn servers_of_this_user() -> Result<Vec<FoundServer>> {
    let dir = std::path::Path::new(crate::os::names::SHM_DIR);
    let entries = std::fs::read_dir(dir).map_err(|e| Error::os_named("read_dir", "/dev/shm", e))?;
    let me = euid();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(queue) = entry.file_name().to_str().and_then(queue_of_lock_file) else { continue };
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if !meta.is_file() || meta.uid() != me {
            continue;
        }
        // Replaced meanwhile by something else, or another program's
        // object named like a lock: not a server's.
        let Some(state) = server_state(&queue) else { continue };
        found.push(FoundServer { queue, state });
    }
    found.sort_by(|a, b| a.queue.cmp(&b.queue));
    Ok(found)
}

/// Whether the server of `queue` lives, judged by its lock object: `None`
/// when there is none, or the object there is not of a lock's form
/// ([`lock_form`]), or another program holds it with `flock()`. A lock that
/// is not write-locked is dead only if its `flock()` lock is free too
/// (taken for the probe and let go at once).
fn server_state(queue: &str) -> Option<ServerState> {
    let obj = ShmObject::open(&lock_name(queue), Access::ReadOnly).ok()?;
    let meta = obj.stat().ok()?;
    lock_form(&obj, &meta).ok()?;
    if is_locked(&obj).ok()? {
        return Some(ServerState::Live { pid: read_pid(&obj) });
    }
    if !sys::try_flock_exclusive(&obj).ok()? {
        return None;
    }
    let _ = sys::flock_unlock(&obj);
    Some(ServerState::Dead)
}

/// The queue whose lock object has the `/dev/shm` file name `file_name`,
/// if it is one (`<stem>.lock` with a valid queue name `/<stem>`; a
/// semaphore's `sem.` file is none).
fn queue_of_lock_file(file_name: &str) -> Option<String> {
    if file_name.starts_with("sem.") {
        return None;
    }
    let queue = format!("/{}", file_name.strip_suffix(".lock")?);
    (crate::os::names::validate_queue_name(&queue).is_ok() && lock_name(&queue) == format!("/{file_name}"))
        .then_some(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_queue(tag: &str) -> String {
        format!("/sxlive_{tag}_{}_{:x}", std::process::id(), sys::random_u64().unwrap())
    }

    #[test]
    fn a_held_lock_is_seen_alive_and_a_second_holder_is_refused() {
        let queue = unique_queue("held");
        assert!(ServerWatch::find(&queue).unwrap().is_none());
        let lock = ServerLock::acquire(&queue).unwrap();
        let watch = ServerWatch::find(&queue).unwrap().expect("a live server");
        assert_eq!(read_pid(&watch.obj), Some(std::process::id()));
        // Each holder has an open file description of its own, so a second
        // acquire in this process sees the first.
        assert!(matches!(ServerLock::acquire(&queue), Err(Error::ServerRunning { .. })));
        drop(lock);
        assert!(!watch.is_alive());
        assert!(ShmObject::open(&lock_name(&queue), Access::ReadOnly).is_err(), "the name is removed");
    }

    #[test]
    fn a_watch_follows_its_own_server_not_the_next_one() {
        let queue = unique_queue("next");
        // The first server, by hand as `ServerLock::hold` makes it: a
        // locked object whose name nobody unlinks, so that dropping it is a
        // death (the kernel releases the lock, the name stays).
        let mut first = ShmObject::create_exclusive(&lock_name(&queue), 0).unwrap();
        first.disown();
        assert!(sys::try_lock_exclusive(&first).unwrap());
        let first_ino = first.stat().unwrap().ino();
        let old_watch = ServerWatch::find(&queue).unwrap().expect("a live first server");
        assert!(old_watch.is_alive());
        drop(first);
        assert!(!old_watch.is_alive(), "the first server died");
        assert_eq!(named_inode(&lock_name(&queue)), Some(first_ino), "its lock object stays");

        let second = ServerLock::acquire(&queue).unwrap();
        assert_ne!(second.ino, first_ino, "a new server makes a new lock object");
        assert!(!old_watch.is_alive(), "the old watch follows the dead server, not the next one");
        assert!(old_watch.check().is_err());
        let new_watch = ServerWatch::find(&queue).unwrap().expect("a live second server");
        assert!(new_watch.is_alive());
        drop(second);
        assert!(!new_watch.is_alive());
        assert!(!old_watch.is_alive());
    }

    #[test]
    fn a_stale_lock_of_this_user_is_replaced() {
        let queue = unique_queue("stale");
        let name = lock_name(&queue);
        let stale = ShmObject::create_exclusive(&name, 0).unwrap();
        let stale_ino = stale.stat().unwrap().ino();
        let mut stale = stale;
        stale.disown();
        drop(stale); // unlocked, name left behind: a dead server's
        let lock = ServerLock::acquire(&queue).unwrap();
        assert_ne!(lock.ino, stale_ino);
        drop(lock);
        assert!(ShmObject::open(&name, Access::ReadOnly).is_err());
    }

    /// A dead server's lock object: created, left unlocked, name kept.
    fn dead_lock_object(name: &str) -> u64 {
        let mut dead = ShmObject::create_exclusive(name, 0).unwrap();
        dead.disown();
        dead.stat().unwrap().ino()
    }

    #[test]
    fn a_dead_lock_taken_by_a_cleaner_keeps_starting_servers_off_until_it_is_removed() {
        let queue = unique_queue("cleaner");
        let name = lock_name(&queue);
        let dead_ino = dead_lock_object(&name);
        let Stale::Dead(dead) = DeadLock::take(&queue).unwrap() else { panic!("not taken as dead") };
        assert!(matches!(DeadLock::take(&queue).unwrap(), Stale::Held { .. }), "a second cleaner keeps off");
        assert!(
            matches!(ServerLock::acquire(&queue), Err(Error::ServerRunning { .. })),
            "a starting server does not take over a lock a cleaner holds"
        );
        assert_eq!(named_inode(&name), Some(dead_ino));
        assert!(dead.remove().unwrap());
        let lock = ServerLock::acquire(&queue).unwrap();
        drop(lock);
        assert_eq!(named_inode(&name), None);
    }

    #[test]
    fn a_dead_lock_never_removes_the_object_that_replaced_it() {
        let queue = unique_queue("replaced");
        let name = lock_name(&queue);
        dead_lock_object(&name);
        let Stale::Dead(dead) = DeadLock::take(&queue).unwrap() else { panic!("not taken as dead") };
        // The name is replaced under the holder (by hand: a server takes
        // a dead lock only through `DeadLock` too).
        remove_shm(&name).unwrap();
        let next_ino = dead_lock_object(&name);
        assert!(!dead.still_named());
        assert!(!dead.remove().unwrap(), "only the object judged dead is removed");
        assert_eq!(named_inode(&name), Some(next_ino), "the new object stays");
        remove_shm(&name).unwrap();
    }

    #[test]
    fn a_lock_object_of_another_user_is_never_taken() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to chown an object to another user");
            return;
        }
        let queue = unique_queue("foreign");
        let name = lock_name(&queue);
        let mut foreign = ShmObject::create_exclusive(&name, 0).unwrap();
        let path = format!("/dev/shm/{}", &name[1..]);
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let err = ServerLock::acquire(&queue).unwrap_err();
        assert!(matches!(err, Error::BadObject { .. }), "{err}");
        assert!(err.to_string().contains("uid 65534"), "{err}");
        assert!(std::path::Path::new(&path).exists(), "another user's object is left alone");
        foreign.remove().unwrap();
    }

    /// A lock object of `queue` left by no live server: mode `mode`,
    /// holding `contents`.
    fn object_under_lock_name(queue: &str, mode: u32, contents: &[u8]) -> String {
        use std::os::unix::fs::PermissionsExt;
        let name = lock_name(queue);
        dead_lock_object(&name);
        let obj = ShmObject::open(&name, Access::ReadWrite).unwrap();
        File::from(obj.try_clone_fd().unwrap()).write_all_at(contents, 0).unwrap();
        std::fs::set_permissions(shm_path(&name), std::fs::Permissions::from_mode(mode)).unwrap();
        name
    }

    #[test]
    fn only_an_object_of_the_form_a_server_gives_its_lock_is_taken_for_one() {
        let cases: [(u32, &[u8]); 6] = [
            (0o644, b"4242\n"),
            (0o600, b"state of another program\n"),
            (0o600, b"4242"),
            (0o600, b"04242\n"),
            (0o600, b"4242\n4243\n"),
            (0o600, b"\0\0\0\0\0"),
        ];
        for (mode, contents) in cases {
            let queue = unique_queue("form");
            let name = object_under_lock_name(&queue, mode, contents);
            let what = format!("mode {mode:o}, {contents:?}");
            assert_eq!(server_state(&queue), None, "not listed: {what}");
            let err = DeadLock::take(&queue).unwrap_err();
            assert!(matches!(err, Error::BadObject { .. }), "{what}: {err}");
            assert!(named_inode(&name).is_some(), "left alone: {what}");
            remove_shm(&name).unwrap();
        }
        for contents in [&b""[..], b"4242\n"] {
            let queue = unique_queue("form");
            let name = object_under_lock_name(&queue, 0o600, contents);
            assert_eq!(server_state(&queue), Some(ServerState::Dead), "{contents:?}");
            let Stale::Dead(dead) = DeadLock::take(&queue).unwrap() else { panic!("not taken as dead") };
            assert!(dead.remove().unwrap());
            assert_eq!(named_inode(&name), None);
        }
    }

    #[test]
    fn a_lock_that_another_program_holds_with_flock_is_not_taken_for_a_dead_one() {
        let queue = unique_queue("flock");
        let name = object_under_lock_name(&queue, 0o600, b"4242\n");
        let other = File::open(shm_path(&name)).unwrap();
        assert!(sys::try_flock_exclusive(&other).unwrap());
        assert_eq!(server_state(&queue), None, "not listed as a dead server");
        let err = DeadLock::take(&queue).unwrap_err();
        assert!(err.to_string().contains("flock"), "{err}");
        assert!(named_inode(&name).is_some(), "left alone");
        drop(other);
        assert_eq!(server_state(&queue), Some(ServerState::Dead), "once let go, a dead server's");
        remove_shm(&name).unwrap();
    }

    #[test]
    fn a_live_server_writes_its_pid_as_the_form_wants_it() {
        let queue = unique_queue("pidline");
        let lock = ServerLock::acquire(&queue).unwrap();
        assert_eq!(server_state(&queue), Some(ServerState::Live { pid: Some(std::process::id()) }));
        assert!(matches!(DeadLock::take(&queue).unwrap(), Stale::Held { pid: Some(_) }));
        drop(lock);
        assert_eq!(pid_of(b"4242\n"), Some(4242));
        for odd in [&b"4242"[..], b" 4242\n", b"+4242\n", b"04242\n", b"4242\n\n", b"99999999999\n"] {
            assert_eq!(pid_of(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn lock_file_names_give_their_queue_and_nothing_else_does() {
        assert_eq!(queue_of_lock_file("shmxfer.lock").as_deref(), Some("/shmxfer"));
        assert_eq!(queue_of_lock_file("a.lock.lock").as_deref(), Some("/a.lock"));
        for other in ["shmxfer", "sem.shmxfer.lock", ".lock", "shmxfer.4242.0123456789abcdef", "x.lockx"] {
            assert_eq!(queue_of_lock_file(other), None, "{other}");
        }
    }
}
