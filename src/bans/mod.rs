//! The ban system: which client addresses are refused, kept in a text file that the operator
//! edits by hand while the server reads it and writes the console's `/ban` and `/unban` into
//! it. Three layers, each using only the ones before it:
//!
//! - [`list`]: the file's format — addresses and CIDR ranges ([`list::IpNet`]), comments,
//!   warnings for lines that are neither — and matching an address against a list of any
//!   size in O(log n). No I/O.
//! - [`file`]: the file as a shared document — reading it safely (a read that looks torn
//!   waits for the file to settle), noticing changes on disk, following symlinks, and the
//!   locked, checked, atomic rewrite that keeps every hand-written line.
//! - [`keeper`]: which bans are in force — the file as last read whole with the console's
//!   changes on top, saved or not — the reload policy, and what the operator is told.
//!
//! It does not own what happens to a banned client (the server and peer cores ask a
//! [`list::BanList`] and refuse or drop it) nor when the binary looks at the file (it calls
//! [`keeper::BanKeeper::poll`] on its own schedule).

pub mod file;
pub mod keeper;
pub mod list;
