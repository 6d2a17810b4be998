//! Every test that drives the library without the binaries: the sans-IO server, client and
//! peer cores over simulated networks with a fake clock, the parsers under generated input,
//! and the library's own files (ban file, history store). One binary, so the harness is
//! compiled once and nothing in it is dead code nobody notices.

mod peer_util;
mod util;

mod abuse;
mod banfile;
mod history;
mod lossy;
mod overload;
mod peers;
mod properties;
mod server_client;
mod social;
