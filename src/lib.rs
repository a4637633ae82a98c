//! mdeploy: read a trained model, check and transform it, write what a deployment target loads.
//!
//! Pipeline: a reader makes a [`ir::Graph`]; passes transform it (each verified); a writer
//! legalizes and writes it; [`eval`] runs graphs through tract to check results numerically.

pub mod accuracy;
pub mod cli;
pub mod error;
pub mod eval;
pub mod formats;
pub mod gen;
pub mod ir;
pub mod npy;
pub mod passes;
pub mod readers;
pub mod writers;
