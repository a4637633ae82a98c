//! Format knowledge that both a reader and a writer need, kept here so that neither imports
//! the other: [`onnx`] (the element-type table), [`keras`] (opening Keras files, their
//! config model and weights, for the Keras reader and the TF.js layers writer),
//! [`tensor_bundle`] (TF's checkpoint format, for the SavedModel reader and writer) and
//! [`tf_json`] (GraphDefs in protobuf's JSON mapping, for the TF.js reader and the SavedModel
//! writer). Modules here use only the IR below them.

pub mod keras;
pub mod onnx;
pub mod tensor_bundle;
pub mod tf_json;
