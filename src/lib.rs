//! pve-entraid: Microsoft Entra ID sign-in for Proxmox VE.
//!
//! All protocol work (discovery, state, token exchange, ID-token validation, Graph group overage,
//! claim mapping) lives here; PVE's Perl code calls it through the JSON C ABI in [`ffi`].
//! No background threads and no global runtime: PVE daemons fork.
#![allow(non_camel_case_types)]

pub mod error;
pub mod config;
pub mod http;
pub mod jwt;
pub mod store;
pub mod discovery;
pub mod claims;
pub mod state;
pub mod request;
pub mod credential;
pub mod oidc;
pub mod flow;
pub mod graph;
pub mod mapping;
pub mod sync;
pub mod check;
pub mod ffi;
