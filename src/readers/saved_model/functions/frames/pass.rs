//! The pass giving every node of a graph the context its outputs live in (frames.rs says how).

use super::{all_inputs, data_inputs, frame_name, kind, split_ref, Ctx, Kind, Level};
use std::collections::{HashMap, HashSet};
use tract_tensorflow::tfpb::tensorflow::NodeDef;

/// Union-find over cond Switches (by name).
#[derive(Default)]
pub struct Union<'a>(HashMap<&'a str, &'a str>);

impl<'a> Union<'a> {
    pub fn find(&self, mut s: &'a str) -> &'a str {
        while let Some(&p) = self.0.get(s) {
            if p == s {
                break;
            }
            s = p;
        }
        s
    }
    fn join(&mut self, a: &'a str, b: &'a str) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0.insert(a, b);
        }
    }
}

/// The pass computing contexts.
pub struct Pass<'a, 'n> {
    pub nodes: &'n HashMap<&'a str, &'a NodeDef>,
    pub level: HashMap<&'a str, Level<'a>>,
    pub loop_switch: HashSet<&'a str>,
    pub errors: HashMap<&'a str, String>,
    pub union: Union<'a>,
    /// The canonical predicate of each cond Switch.
    pub pred: HashMap<&'a str, (&'a str, usize)>,
    /// Per cond Merge: the Switch its deepest input is behind and, per input, its side.
    pub merges: Vec<(&'a str, &'a str, Vec<bool>)>,
}

/// Nodes in dependency order over data and control edges, NextIteration back edges left out
/// (nodes on other cycles are left out: the import reports the cycle).
pub fn topo_order<'a>(
    nodes: &'a [NodeDef],
    by_name: &HashMap<&'a str, &'a NodeDef>,
) -> Vec<&'a NodeDef> {
    let mut pending: HashMap<&str, usize> = HashMap::new();
    let mut users: HashMap<&str, Vec<&'a NodeDef>> = HashMap::new();
    for def in nodes {
        let mut n = 0;
        for i in all_inputs(def) {
            let (src, _) = split_ref(i);
            match by_name.get(src) {
                Some(s) if kind(&s.op) != Kind::Next => {
                    users.entry(s.name.as_str()).or_default().push(def);
                    n += 1;
                }
                _ => {}
            }
        }
        pending.insert(def.name.as_str(), n);
    }
    let mut ready: Vec<&NodeDef> = nodes
        .iter()
        .filter(|d| pending[d.name.as_str()] == 0)
        .collect();
    ready.reverse();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(def) = ready.pop() {
        order.push(def);
        for &u in users.get(def.name.as_str()).map_or(&[][..], |v| &v[..]) {
            // Checked: a malformed graph may name two nodes alike.
            if let Some(p) = pending.get_mut(u.name.as_str()).filter(|p| **p > 0) {
                *p -= 1;
                if *p == 0 {
                    ready.push(u);
                }
            }
        }
    }
    order
}

/// Follows Identity nodes back from reference `r` to the tensor they forward (`node:port`).
pub fn canonical<'a>(nodes: &HashMap<&'a str, &'a NodeDef>, r: &'a str) -> (&'a str, usize) {
    let mut r = r;
    // Bounded: a malformed graph may loop through Identities.
    for _ in 0..nodes.len() {
        match nodes.get(split_ref(r).0) {
            Some(d) if d.op == "Identity" => match data_inputs(d).next() {
                Some(i) => r = i,
                None => break,
            },
            _ => break,
        }
    }
    split_ref(r)
}

impl<'a> Pass<'a, '_> {
    fn def(&self, r: &str) -> Option<&'a NodeDef> {
        self.nodes.get(split_ref(r).0).copied()
    }

    fn tensor_level(&self, r: &'a str) -> Level<'a> {
        let (node, port) = split_ref(r);
        let Some((&name, &def)) = self.nodes.get_key_value(node) else {
            return Vec::new();
        };
        let mut l = self.level.get(name).cloned().unwrap_or_default();
        if kind(&def.op) == Kind::Switch && !self.loop_switch.contains(name) {
            l.push(Ctx::Branch(name, port == 1));
        }
        l
    }

    /// Whether two contexts are the same, joining cond Switches on one predicate that meet.
    fn same(&mut self, a: &Ctx<'a>, b: &Ctx<'a>) -> bool {
        match (a, b) {
            (Ctx::Loop(x), Ctx::Loop(y)) => x == y,
            (Ctx::Branch(s, p), Ctx::Branch(t, q)) if p == q => {
                if self.union.find(s) == self.union.find(t) {
                    return true;
                }
                if self.pred.contains_key(s) && self.pred.get(s) == self.pred.get(t) {
                    self.union.join(s, t);
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// Whether `l` is (the same contexts as) a prefix of `of`.
    fn prefix(&mut self, l: &[Ctx<'a>], of: &[Ctx<'a>]) -> bool {
        l.len() <= of.len() && l.iter().zip(of).all(|(a, b)| self.same(a, b))
    }

    /// The deepest of `levels`, which must all be prefixes of it.
    fn combine(&mut self, levels: &[Level<'a>]) -> Result<Level<'a>, String> {
        let Some(deepest) = levels.iter().max_by_key(|l| l.len()).cloned() else {
            return Ok(Vec::new());
        };
        for l in levels {
            if !self.prefix(l, &deepest) {
                return Err(
                    "reads values of two different tf.cond branches or loop frames \
                            without a Merge or Exit between them"
                        .into(),
                );
            }
        }
        Ok(deepest)
    }

    pub fn visit(&mut self, def: &'a NodeDef) {
        let name = def.name.as_str();
        let k = kind(&def.op);
        if k == Kind::Switch {
            let pred = canonical(self.nodes, data_inputs(def).nth(1).unwrap_or(""));
            if self
                .def(pred.0)
                .is_some_and(|d| kind(&d.op) == Kind::LoopCond)
            {
                self.loop_switch.insert(name);
            } else {
                self.pred.insert(name, pred);
            }
        }
        let is_next = |i: &str| self.def(i).is_some_and(|d| kind(&d.op) == Kind::Next);
        let is_loop_merge = k == Kind::Merge && data_inputs(def).any(is_next);
        let levels: Vec<Level<'a>> = all_inputs(def)
            .filter(|i| !(is_loop_merge && is_next(i)))
            .map(|i| self.tensor_level(i))
            .collect();
        let result = match k {
            Kind::Merge if !is_loop_merge => self.join(def),
            Kind::Enter => self.combine(&levels).map(|mut l| {
                l.push(Ctx::Loop(frame_name(def)));
                l
            }),
            Kind::Exit => self.combine(&levels).and_then(|mut l| match l.pop() {
                Some(Ctx::Loop(_)) => Ok(l),
                _ => Err("an Exit outside a tf.while_loop frame".into()),
            }),
            _ => self.combine(&levels),
        };
        let level = match result {
            Ok(l) => l,
            Err(why) => {
                self.errors.insert(name, why);
                levels.into_iter().max_by_key(Vec::len).unwrap_or_default()
            }
        };
        self.level.insert(name, level);
    }

    /// A cond Merge: its two inputs are the two sides of one cond (one may be a value from
    /// outside it); the Merge's outputs live where the cond does.
    fn join(&mut self, def: &'a NodeDef) -> Result<Level<'a>, String> {
        let data: Vec<Level<'a>> = data_inputs(def).map(|i| self.tensor_level(i)).collect();
        if data.len() != 2 {
            return Err(format!(
                "a Merge of {} inputs (a tf.cond joins two)",
                data.len()
            ));
        }
        let deepest = data
            .iter()
            .max_by_key(|l| l.len())
            .cloned()
            .unwrap_or_default();
        let Some((Ctx::Branch(switch, side), parent)) = deepest.split_last() else {
            return Err(
                "a Merge that closes no tf.cond (none of its inputs is in a branch)".into(),
            );
        };
        let (switch, side, parent) = (*switch, *side, parent.to_vec());
        let mut sides = Vec::with_capacity(2);
        for l in &data {
            let ok = match l.split_last() {
                Some((last, rest)) if l.len() == deepest.len() => {
                    let this = self.same(&Ctx::Branch(switch, side), last);
                    let other = !this && self.same(&Ctx::Branch(switch, !side), last);
                    sides.push(if this { side } else { !side });
                    (this || other) && self.prefix(rest, &parent)
                }
                _ => {
                    sides.push(!side);
                    self.prefix(l, &parent)
                }
            };
            if !ok {
                return Err("a Merge whose inputs are not the two branches of one tf.cond".into());
            }
        }
        if sides[0] == sides[1] {
            return Err("a Merge whose inputs come from one side of a tf.cond only".into());
        }
        self.merges.push((def.name.as_str(), switch, sides));
        Ok(parent)
    }
}
