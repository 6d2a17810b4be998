//! Every test that runs the real `icq-server` and `icq-client` programs: on loopback, through
//! a lossy relay, in a pseudo-terminal, with their command lines. One binary, so the process
//! and relay helpers are compiled once.

#[path = "../shared/impairment.rs"]
mod impairment;
mod process;
mod relay;
#[path = "../shared/rng.rs"]
mod rng;

mod cli;
mod e2e;
mod guests_e2e;
mod history_e2e;
mod lossy_e2e;
mod pacing_e2e;
mod peers_e2e;
mod storm;
mod terminal;
mod wrong_address;
