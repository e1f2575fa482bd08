//! The file system: the one confined opener of everything below a served
//! root ([`source`]), the walk of a tree through directory descriptors
//! ([`walk`]), and the one output rule for every destination ([`output`]).

pub(crate) mod output;
pub(crate) mod source;
pub(crate) mod walk;
