//! A model loaded once and run many times from many threads (`mdeploy serve`): tract's model
//! is built once, and planned once per distinct set of input shapes (a small cache), each plan
//! shared by every request of those shapes.

use super::{check_declared, control, load, plan_for, run_plan, specialize, Plan};
use crate::error::{failed, Result};
use crate::ir::{Graph, Tensor, TensorType};
use std::sync::Mutex;
use tract_onnx::prelude as tp;

/// Plans kept per engine: a server sees few distinct shapes (batch sizes); each plan holds its
/// own packed weights, so the cache stays small and drops the least recently used one.
const MAX_PLANS: usize = 4;

type Shapes = Vec<Vec<usize>>;

/// A graph ready to run concurrently. See the module documentation.
pub struct Engine {
    how: How,
    declared: Vec<(String, TensorType)>,
    /// Most recently used last.
    plans: Mutex<Vec<(Shapes, Plan)>>,
}

enum How {
    /// One tract model, planned per input shapes.
    Planned(tp::InferenceModel),
    /// Control flow or operands bound per run: every run goes through [`super::run`], which
    /// handles those (slower: it plans on each run).
    General(Box<Graph>),
}

impl Engine {
    /// Builds the engine; the graph is not kept unless it needs [`How::General`].
    pub fn new(g: &Graph) -> Result<Engine> {
        let declared = g
            .outputs
            .iter()
            .map(|&v| (g.value(v).name.clone(), g.ty(v).clone()))
            .collect();
        // A cell-clipped LSTM over a run-time length becomes a Loop when prepared for tract
        // (`prepare::for_tract`), which a planned model cannot run: evaluated as control flow.
        let general = control::has_control(g)
            || crate::passes::rnn::any_cell_clip(g)
            || !specialize::operand_inputs(g).is_empty();
        // One tract model whatever the weights' size: a server holds them for as long as it
        // serves (evaluation elsewhere runs large graphs in pieces to bound its memory, but
        // re-plans every run that way: 30–50× slower per request on a 106 MB MLP).
        let how = if general {
            How::General(Box::new(g.clone()))
        } else {
            let mut legal = g.clone();
            crate::writers::onnx::legalize(&mut legal)?;
            How::Planned(load(&legal)?)
        };
        Ok(Engine {
            how,
            declared,
            plans: Mutex::new(Vec::new()),
        })
    }

    /// Runs the graph on `inputs` (in graph input order).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let out = match &self.how {
            How::General(g) => super::run(g, inputs)?,
            How::Planned(model) => {
                let plan = self.plan(model, inputs)?;
                run_plan(&plan, inputs)?
            }
        };
        check_declared(&self.declared, &out)?;
        Ok(out)
    }

    fn plan(&self, model: &tp::InferenceModel, inputs: &[Tensor]) -> Result<Plan> {
        let shapes: Shapes = inputs.iter().map(|t| t.shape.clone()).collect();
        {
            let mut plans = self
                .plans
                .lock()
                .map_err(|_| failed("plan cache poisoned"))?;
            if let Some(i) = plans.iter().position(|(s, _)| *s == shapes) {
                let entry = plans.remove(i);
                let plan = entry.1.clone();
                plans.push(entry);
                return Ok(plan);
            }
        }
        // Planned outside the lock: requests of other shapes go on meanwhile.
        let plan = plan_for(model.clone(), inputs)?;
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| failed("plan cache poisoned"))?;
        if !plans.iter().any(|(s, _)| *s == shapes) {
            if plans.len() >= MAX_PLANS {
                plans.remove(0);
            }
            plans.push((shapes, plan.clone()));
        }
        Ok(plan)
    }
}
