//! After the seal: the search index, compression and shipping of sealed
//! segments and the retention limits, run by the keeper once a segment's seal entry is
//! durable.

pub(crate) mod compress;
pub(crate) mod index;
pub(crate) mod keeper;
pub(crate) mod retain;
pub(crate) mod ship;
pub(crate) mod task;
pub(crate) mod turn;
pub(crate) mod work;
