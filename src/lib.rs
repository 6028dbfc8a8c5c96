//! pve-entraid: Microsoft Entra ID sign-in for Proxmox VE.
//!
//! All protocol work (discovery, state, token exchange, ID-token validation, Graph group overage,
//! claim mapping) lives here; PVE's Perl code calls it through the JSON C ABI in [`ffi`].
//! No background threads and no global runtime: PVE daemons fork.
//! Public modules are what the C ABI, the benchmarks (bench/) and the fuzz targets (fuzz/) use;
//! the rest is private.

pub mod error;
mod typed;
pub mod config;
pub mod http;
pub mod jwt;
mod store;
pub mod discovery;
pub mod claims;
mod username;
pub mod state;
pub mod ratelimit;
pub mod request;
mod credential;
mod oidc;
pub mod flow;
mod workload;
mod graph;
mod mapping;
mod sync;
pub mod check;
pub mod ffi;
