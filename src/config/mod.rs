//! The bundle's config.json as runlet loads it: `spec` reads and checks it
//! (errors name the file and the field), `compat` rewrites what runc
//! accepts and libcontainer refuses, `ids` answers what it asks of
//! namespaces and id mappings, and `process` completes a process's settings.

pub mod compat;
pub mod ids;
pub mod process;
pub mod spec;
