//! Format knowledge that both a reader and a writer need, kept here so that neither imports
//! the other: [`onnx`] (the element-type table). Modules here use only the IR below them.

pub mod onnx;
