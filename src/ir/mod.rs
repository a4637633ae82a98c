//! The intermediate representation every reader produces and every writer consumes.
//! Invariants and glossary: docs/architecture.md.

mod display;
pub mod fold;
mod graph;
mod inline;
pub mod layout;
pub mod limits;
pub mod mapped;
pub mod op;
pub mod ops;
pub mod quant;
pub mod strided;
pub mod tensor;
mod verify;

pub use graph::{Graph, Names, Node, Value, ValueId};
pub use layout::{KernelLayout, Layout};
pub use op::Op;
pub use quant::QuantParams;
pub use tensor::{fixed_shape, shape_fixed, shape_text, DType, Dim, Shape, Tensor, TensorType};
