//! The pure model: what the projection holds and how events change it, with no database in
//! sight. `view` is the job summary and status-history entry and the step that applies one
//! event; `fold` runs that step over a batch for every caller (the write path, a rebuild and
//! `verify`); `metadata` is who acted; `paging` is how lists are asked for and answered.

pub mod fold;
pub mod metadata;
pub mod paging;
pub mod view;
