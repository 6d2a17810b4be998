//! Every test that drives the library without the binaries: the sans-IO server, client and
//! peer cores over one simulated network with a fake clock (`sim`), the parsers under
//! generated input, and the library's own files (ban file, history store) and the history's replay. One binary, so
//! the harness is compiled once and nothing in it is dead code nobody notices.

#[path = "../shared/impairment.rs"]
mod impairment;
#[path = "../shared/rng.rs"]
mod rng;
mod sim;

mod abuse;
mod banfile;
mod client_history;
mod history;
mod join_roster;
mod lossy;
mod overload;
mod packing;
mod peer_history;
mod peers;
mod presence;
mod properties;
mod replay;
mod server_client;
mod social;
