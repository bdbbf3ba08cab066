//! Power-loss tests of logcut on a file system that can lose power.

mod cut;
mod faults;
mod fs;
mod kit;
