//! The bottom layer: the raw OS calls (all `unsafe` but the region's copies
//! lives in [`sys`]) and the POSIX objects built on them — shared-memory
//! objects, named semaphores, the command queue, their names, the locks that
//! say who is alive, and the removal of names.

pub(crate) mod liveness;
pub(crate) mod names;
pub(crate) mod owned_name;
pub(crate) mod queue;
pub(crate) mod semaphore;
pub(crate) mod shm_object;
pub(crate) mod sys;
