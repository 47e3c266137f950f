//! `sizeguard serve`: the registry webhook validator. Receivers turn
//! registry notifications into queued work; workers judge each pushed
//! image through the same app layer as `check`.

pub mod events;
pub mod policy;
pub mod store;
