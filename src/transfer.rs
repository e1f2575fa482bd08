//! One file's way through a ring, in either direction: the sender (an opened
//! source → frames, [`send_file`]), the receivers (frames → a verified file:
//! [`delivery`] on the client, [`receive`] on the server), and what became
//! of the file ([`outcome`], [`reason`]).

pub(crate) mod delivery;
pub(crate) mod outcome;
pub(crate) mod reason;
pub(crate) mod receive;
pub(crate) mod send_file;
