//! Matching captured resources to variables. A TF2 function's captured inputs are listed, per
//! concrete function, as `bound_inputs`: ids of `SavedObjectGraph` nodes. The checkpoint's own
//! `TrackableObjectGraph` (stored in the bundle) gives each variable node its checkpoint key;
//! the two graphs are matched by the path of child names from the root, which is what
//! TensorFlow's loader relies on, falling back to equal node ids.

use prost::Message;
use std::collections::{HashMap, VecDeque};
use tract_tensorflow::tfpb::tensorflow::{saved_object, SavedObjectGraph, TrackableObjectGraph};

#[derive(Default)]
pub struct Objects {
    saved: Option<SavedObjectGraph>,
    ckpt: Option<TrackableObjectGraph>,
    /// The breadth-first tree of `saved` from the root, made once (every variable of a model
    /// is looked up in it; a search per variable was quadratic).
    tree: std::cell::OnceCell<Tree>,
}

/// Each node reached (in breadth-first order, up to the first child id that names no node,
/// where the search stops): its parent and the child name leading to it.
type Tree = HashMap<usize, Option<(usize, String)>>;

impl Objects {
    pub fn new(saved: Option<SavedObjectGraph>, ckpt_bytes: Option<&[u8]>) -> Result<Self, String> {
        let ckpt = match ckpt_bytes {
            Some(b) => Some(
                TrackableObjectGraph::decode(b)
                    .map_err(|e| format!("the checkpoint's object graph is corrupt ({e})"))?,
            ),
            None => None,
        };
        Ok(Objects {
            saved,
            ckpt,
            tree: std::cell::OnceCell::new(),
        })
    }

    /// Object ids captured by concrete function `f`, in the order of its trailing inputs.
    pub fn bound_inputs(&self, f: &str) -> Option<&[i32]> {
        let cf = self.saved.as_ref()?.concrete_functions.get(f)?;
        (!cf.bound_inputs.is_empty()).then_some(&cf.bound_inputs[..])
    }

    /// What object `id` is, for messages.
    pub fn describe(&self, id: i32) -> String {
        let node = self
            .saved
            .as_ref()
            .and_then(|s| s.nodes.get(usize::try_from(id).ok()?));
        match node.and_then(|n| n.kind.as_ref()) {
            Some(saved_object::Kind::Variable(v)) => format!("variable '{}'", v.name),
            Some(saved_object::Kind::Resource(_)) => format!("resource (object {id})"),
            Some(saved_object::Kind::Asset(_)) => format!("asset (object {id})"),
            _ => format!("object {id}"),
        }
    }

    /// The checkpoint key of variable object `id`.
    pub fn variable_key(&self, id: i32) -> Result<String, String> {
        let saved = self.saved.as_ref().ok_or("the model has no object graph")?;
        let ckpt = self
            .ckpt
            .as_ref()
            .ok_or("the checkpoint has no object graph")?;
        let idx = usize::try_from(id).map_err(|_| format!("bad object id {id}"))?;
        match saved.nodes.get(idx).and_then(|n| n.kind.as_ref()) {
            Some(saved_object::Kind::Variable(_)) => {}
            _ => {
                return Err(format!(
                    "captured {} is not a variable; only variables can be read",
                    self.describe(id)
                ))
            }
        }
        let key_of = |ck: usize| {
            ckpt.nodes.get(ck).and_then(|n| {
                n.attributes
                    .iter()
                    .find(|a| a.name == "VARIABLE_VALUE")
                    .map(|a| a.checkpoint_key.clone())
            })
        };
        let tree = self.tree.get_or_init(|| bfs_tree(saved));
        let by_path = path_to(tree, idx).and_then(|path| {
            let mut at = 0usize;
            for name in path {
                let next = ckpt
                    .nodes
                    .get(at)?
                    .children
                    .iter()
                    .find(|c| c.local_name == name)?;
                at = usize::try_from(next.node_id).ok()?;
            }
            Some(at)
        });
        by_path
            .and_then(key_of)
            .or_else(|| key_of(idx))
            .ok_or_else(|| format!("{} has no value in the checkpoint", self.describe(id)))
    }
}

/// The breadth-first tree of `g` from the root (see [`Tree`]).
fn bfs_tree(g: &SavedObjectGraph) -> Tree {
    let mut tree: Tree = HashMap::from([(0, None)]);
    let mut queue = VecDeque::from([0usize]);
    let mut visited = std::collections::HashSet::new();
    while let Some(n) = queue.pop_front() {
        let Some(node) = g.nodes.get(n) else {
            // A child id past the nodes: what the search had not visited yet is not reached.
            tree.retain(|k, _| visited.contains(k));
            break;
        };
        visited.insert(n);
        for c in &node.children {
            let Ok(id) = usize::try_from(c.node_id) else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(e) = tree.entry(id) {
                e.insert(Some((n, c.local_name.clone())));
                queue.push_back(id);
            }
        }
    }
    tree
}

/// The child names on a shortest path from the root to `target`.
fn path_to(tree: &Tree, target: usize) -> Option<Vec<String>> {
    let mut path = Vec::new();
    let mut at = target;
    while let Some((p, name)) = tree.get(&at)? {
        path.push(name.clone());
        at = *p;
    }
    path.reverse();
    Some(path)
}
