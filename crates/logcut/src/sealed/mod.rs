//! After the seal: compression of sealed segments and the retention
//! limits, run by the keeper once a segment's seal entry is durable.

pub(crate) mod compress;
pub(crate) mod keeper;
pub(crate) mod retain;
