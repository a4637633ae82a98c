//! TF1 control flow ("control flow v1"): finding the `tf.cond` and `tf.while_loop` frames of a
//! graph so each can be imported as one `If` or `Loop` (frames_import.rs).
//!
//! TF1 writes control flow as dataflow on "dead" tensors: `Switch(data, pred)` forwards `data`
//! to output 1 when `pred` holds (0 otherwise), the other output being dead; `Merge` forwards
//! whichever input is alive. A while loop is a frame of nodes named by the `frame_name` of its
//! `Enter` nodes: `Enter → Merge(←NextIteration) → Switch(pred = LoopCond) → Identity (output 1,
//! the body) / Exit (output 0)`. Only these whole-frame patterns have a meaning as If/Loop, so
//! every node gets the *context* its outputs live in — a stack of cond branches and loop frames,
//! computed in one pass in dependency order (frames/pass.rs; data and control edges, the
//! NextIteration back edges left out): a cond `Switch` pushes its branch on each output, a `Merge` joining the two
//! branches of one cond pops it, `Enter` pushes its frame, `Exit` pops it. Switches of one cond
//! are the ones whose outputs meet (in a node or at a Merge) with the same predicate (through
//! Identity); two conds on the same predicate stay apart unless their branches meet, which keeps
//! sequential conds on one flag (a TF1 `training` placeholder) from becoming one cycle. A node
//! that reads two different branches, a Merge that closes no branch and an Exit outside a frame
//! are refused by name when the import needs them. What a frame reads from outside (its
//! Switches' data, loop invariants, values read without a Switch or Enter) is found by walking
//! back from its results through the nodes of its context, so the import can bind exactly those.

use std::collections::{HashMap, HashSet};
use tract_tensorflow::tfpb::tensorflow::NodeDef;

/// One context a node's outputs live in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ctx<'a> {
    /// A branch (false/true) of the cond whose Switches have this one as representative.
    Branch(&'a str, bool),
    /// The body of the while frame of this name.
    Loop(&'a str),
}

/// Contexts from the outermost in.
pub type Level<'a> = Vec<Ctx<'a>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Switch,
    Merge,
    Enter,
    Exit,
    Next,
    LoopCond,
    Other,
}

fn kind(op: &str) -> Kind {
    match op {
        "Switch" | "RefSwitch" => Kind::Switch,
        "Merge" | "RefMerge" => Kind::Merge,
        "Enter" | "RefEnter" => Kind::Enter,
        "Exit" | "RefExit" => Kind::Exit,
        "NextIteration" | "RefNextIteration" => Kind::Next,
        "LoopCond" => Kind::LoopCond,
        _ => Kind::Other,
    }
}

/// Whether `op` is one of the control flow v1 ops this module gives a meaning.
pub fn is_v1_control(op: &str) -> bool {
    kind(op) != Kind::Other
}

/// `node:port` of a data reference.
pub fn split_ref(r: &str) -> (&str, usize) {
    match r.rsplit_once(':') {
        Some((n, p)) => match p.parse() {
            Ok(p) => (n, p),
            Err(_) => (r, 0),
        },
        None => (r, 0),
    }
}

fn data_inputs(def: &NodeDef) -> impl Iterator<Item = &str> {
    def.input
        .iter()
        .filter(|i| !i.starts_with('^'))
        .map(String::as_str)
}

fn all_inputs(def: &NodeDef) -> impl Iterator<Item = &str> {
    def.input.iter().map(|i| i.trim_start_matches('^'))
}

/// A `tf.cond`: its Switches, the Merges that close it and what each branch reads.
pub struct CondFrame<'a> {
    pub parent: Level<'a>,
    pub key: &'a str,
    /// The predicate, as the first Switch (in graph order) reads it.
    pub pred: &'a str,
    pub switches: Vec<&'a str>,
    pub merges: Vec<&'a str>,
    /// Per side (false, true), per Merge: the input carrying that side's value.
    pub results: [Vec<&'a str>; 2],
    /// Values from outside the frame either branch reads (Switch data inputs, captures).
    pub inputs: Vec<&'a str>,
}

/// One loop variable of a `tf.while_loop`.
pub struct LoopVar<'a> {
    pub enter: &'a NodeDef,
    pub merge: &'a str,
    pub switch: &'a str,
    /// What NextIteration gets: the variable's value for the next iteration.
    pub next: &'a str,
    pub exit: Option<&'a str>,
}

/// A `tf.while_loop` frame.
pub struct LoopFrame<'a> {
    pub name: &'a str,
    pub parent: Level<'a>,
    pub vars: Vec<LoopVar<'a>>,
    /// `is_constant` Enters: loop invariants.
    pub invariants: Vec<&'a NodeDef>,
    /// What LoopCond gets.
    pub cond: &'a str,
    /// Values from outside read without an Enter.
    pub captures: Vec<&'a str>,
}

/// Per node, the nodes reading it and which of its outputs they read.
type Users<'a> = HashMap<&'a str, Vec<(&'a NodeDef, usize)>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameId {
    Cond(usize),
    Loop(usize),
}

/// The frames of one graph and the context of every node.
pub struct Frames<'a> {
    nodes: HashMap<&'a str, &'a NodeDef>,
    level: HashMap<&'a str, Level<'a>>,
    /// Each cond Switch's representative (loop Switches have none).
    switch_rep: HashMap<&'a str, &'a str>,
    errors: HashMap<&'a str, String>,
    pub conds: Vec<CondFrame<'a>>,
    pub loops: Vec<LoopFrame<'a>>,
    outputs: HashMap<&'a str, FrameId>,
}

mod pass;

use pass::{canonical, topo_order, Pass, Union};

impl<'a> Frames<'a> {
    /// `None` when the graph has no control flow v1 op (nothing to do).
    pub fn analyze(nodes: &'a [NodeDef]) -> Option<Frames<'a>> {
        if !nodes.iter().any(|n| is_v1_control(&n.op)) {
            return None;
        }
        let by_name: HashMap<&str, &NodeDef> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let mut pass = Pass {
            nodes: &by_name,
            level: HashMap::new(),
            loop_switch: HashSet::new(),
            errors: HashMap::new(),
            union: Union::default(),
            pred: HashMap::new(),
            merges: Vec::new(),
        };
        for def in topo_order(nodes, &by_name) {
            pass.visit(def);
        }
        let Pass {
            mut level,
            loop_switch,
            errors,
            union,
            merges,
            pred,
            ..
        } = pass;
        // Cond representatives settle only at the end of the pass.
        for l in level.values_mut() {
            for c in l.iter_mut() {
                if let Ctx::Branch(s, _) = c {
                    *s = union.find(s);
                }
            }
        }
        let switch_rep = pred
            .keys()
            .filter(|s| !loop_switch.contains(*s))
            .map(|&s| (s, union.find(s)))
            .collect();
        let mut frames = Frames {
            nodes: by_name,
            level,
            switch_rep,
            errors,
            conds: Vec::new(),
            loops: Vec::new(),
            outputs: HashMap::new(),
        };
        frames.build_conds(nodes, &merges);
        frames.build_loops(nodes);
        Some(frames)
    }

    /// The context of output `port` of `node` (a cond Switch's outputs are in its branches).
    fn tensor_level(&self, node: &str, port: usize) -> Level<'a> {
        let mut l = self.level.get(node).cloned().unwrap_or_default();
        if let Some(&rep) = self.switch_rep.get(node) {
            l.push(Ctx::Branch(rep, port == 1));
        }
        l
    }

    /// The frame `node` closes when it is read at `level`.
    pub fn output_at(&self, node: &str, level: &Level<'a>) -> Option<FrameId> {
        let id = *self.outputs.get(node)?;
        (self.level.get(node) == Some(level)).then_some(id)
    }

    /// Why `node`, needed at `level`, cannot be imported (a control flow v1 op that closes no
    /// frame here, or a value read outside the branch or loop it lives in).
    pub fn misplaced(&self, node: &str, level: &Level<'a>) -> Option<String> {
        if let Some(why) = self.errors.get(node) {
            return Some(why.clone());
        }
        let def = self.nodes.get(node)?;
        let here = self.level.get(node).cloned().unwrap_or_default();
        let inside = here.len() > level.len() || here[..] != level[..here.len()];
        match kind(&def.op) {
            Kind::Merge | Kind::Exit if self.outputs.contains_key(node) => Some(
                "closes a frame that is read at another nesting level (a value of a tf.cond or \
                 tf.while_loop used outside the frame around it)"
                    .into(),
            ),
            Kind::Other if !inside => None,
            Kind::Other => Some(
                "a value computed inside a tf.cond branch or tf.while_loop, read outside it \
                 without its Merge or Exit (only whole frames are supported)"
                    .into(),
            ),
            _ => Some(format!(
                "a control flow v1 {} that is not part of a recognizable tf.cond or \
                 tf.while_loop frame",
                def.op
            )),
        }
    }

    /// What importing frame `id` reads from the scope around it.
    pub fn inputs(&self, id: FrameId) -> Vec<&'a str> {
        match id {
            FrameId::Cond(i) => {
                let f = &self.conds[i];
                std::iter::once(f.pred)
                    .chain(f.inputs.iter().copied())
                    .collect()
            }
            FrameId::Loop(i) => {
                let f = &self.loops[i];
                let enters = f
                    .vars
                    .iter()
                    .map(|v| v.enter)
                    .chain(f.invariants.iter().copied());
                enters
                    .filter_map(|e| data_inputs(e).next())
                    .chain(f.captures.iter().copied())
                    .collect()
            }
        }
    }

    fn build_conds(&mut self, nodes: &'a [NodeDef], merges: &[(&'a str, &'a str, Vec<bool>)]) {
        // Merges and Switches grouped by cond (in graph order), in one pass each.
        let mut keys: Vec<&'a str> = Vec::new();
        let mut closing: HashMap<&'a str, Vec<(&'a str, &[bool])>> = HashMap::new();
        for (m, switch, sides) in merges {
            let key = self.switch_rep.get(switch).copied().unwrap_or(switch);
            let group = closing.entry(key).or_default();
            if group.is_empty() {
                keys.push(key);
            }
            group.push((m, sides));
        }
        let mut switches: HashMap<&'a str, Vec<&'a str>> = HashMap::new();
        for n in nodes {
            if let Some(&key) = self.switch_rep.get(n.name.as_str()) {
                switches.entry(key).or_default().push(n.name.as_str());
            }
        }
        for key in keys {
            let group = closing.remove(key).unwrap_or_default();
            let Some(&(first, _)) = group.first() else {
                continue;
            };
            let mut frame = CondFrame {
                parent: self.level.get(first).cloned().unwrap_or_default(),
                key,
                pred: "",
                switches: switches.remove(key).unwrap_or_default(),
                merges: Vec::new(),
                results: [Vec::new(), Vec::new()],
                inputs: Vec::new(),
            };
            for (m, sides) in group {
                let Some(&def) = self.nodes.get(m) else {
                    continue;
                };
                if self.level.get(m) != Some(&frame.parent) {
                    let why =
                        "a Merge of a tf.cond whose other Merges are at another nesting level";
                    self.errors.insert(m, why.into());
                    continue;
                }
                frame.merges.push(m);
                for (input, &side) in data_inputs(def).zip(sides) {
                    frame.results[usize::from(side)].push(input);
                }
            }
            if frame.merges.is_empty() {
                continue;
            }
            let first = frame.switches.first().and_then(|s| self.nodes.get(s));
            frame.pred = first.and_then(|d| data_inputs(d).nth(1)).unwrap_or("");
            let stop: HashSet<&'a str> = frame.switches.iter().copied().collect();
            let mut seen = HashSet::new();
            for side in [false, true] {
                let mut level = frame.parent.clone();
                level.push(Ctx::Branch(key, side));
                let (reached, outside) =
                    self.walk(&frame.results[usize::from(side)], &level, &stop);
                let switched = reached
                    .iter()
                    .filter_map(|s| self.nodes.get(s).and_then(|d| data_inputs(d).next()));
                for r in switched.chain(outside) {
                    if seen.insert(split_ref(r)) {
                        frame.inputs.push(r);
                    }
                }
            }
            let id = FrameId::Cond(self.conds.len());
            for m in &frame.merges {
                self.outputs.insert(m, id);
            }
            self.conds.push(frame);
        }
    }

    fn build_loops(&mut self, nodes: &'a [NodeDef]) {
        let mut users: Users<'a> = HashMap::new();
        for def in nodes {
            for i in data_inputs(def) {
                let (src, port) = split_ref(i);
                users.entry(src).or_default().push((def, port));
            }
        }
        let mut names: Vec<&'a str> = Vec::new();
        for def in nodes.iter().filter(|d| kind(&d.op) == Kind::Enter) {
            if !names.contains(&frame_name(def)) {
                names.push(frame_name(def));
            }
        }
        for name in names {
            let enters: Vec<&'a NodeDef> = nodes
                .iter()
                .filter(|d| kind(&d.op) == Kind::Enter && frame_name(d) == name)
                .collect();
            match self.build_loop(name, &enters, &users) {
                Ok(frame) => {
                    let id = FrameId::Loop(self.loops.len());
                    for exit in frame.vars.iter().filter_map(|v| v.exit) {
                        self.outputs.insert(exit, id);
                    }
                    self.loops.push(frame);
                }
                Err(why) => {
                    let exits = nodes.iter().filter(|d| {
                        kind(&d.op) == Kind::Exit
                            && data_inputs(d).next().is_some_and(|i| {
                                self.level.get(split_ref(i).0).and_then(|l| l.last())
                                    == Some(&Ctx::Loop(name))
                            })
                    });
                    for exit in exits {
                        let why = format!("tf.while_loop frame '{name}': {why}");
                        self.errors.insert(exit.name.as_str(), why);
                    }
                }
            }
        }
    }

    /// One frame's loop variables, its invariants and condition.
    fn build_loop(
        &self,
        name: &'a str,
        enters: &[&'a NodeDef],
        users: &Users<'a>,
    ) -> Result<LoopFrame<'a>, String> {
        let first = enters.first().map_or("", |e| e.name.as_str());
        let inner = self.level.get(first).cloned().unwrap_or_default();
        let mut frame = LoopFrame {
            name,
            parent: inner[..inner.len().saturating_sub(1)].to_vec(),
            vars: Vec::new(),
            invariants: Vec::new(),
            cond: "",
            captures: Vec::new(),
        };
        let mut loop_cond: Option<&str> = None;
        for &enter in enters {
            if self.level.get(enter.name.as_str()) != Some(&inner) {
                let at = &enter.name;
                return Err(format!("Enter '{at}' is at another nesting level"));
            }
            if data_inputs(enter).next().is_none() {
                return Err(format!("Enter '{}' has no input", enter.name));
            }
            if is_constant(enter) {
                frame.invariants.push(enter);
                continue;
            }
            let (var, lc) = self.loop_var(enter, users)?;
            if loop_cond.is_some_and(|c| c != lc) {
                return Err("its Switches read different LoopConds".into());
            }
            loop_cond = Some(lc);
            frame.vars.push(var);
        }
        let lc = loop_cond
            .and_then(|c| self.nodes.get(c))
            .ok_or("it has no loop variable")?;
        frame.cond = data_inputs(lc).next().ok_or("its LoopCond has no input")?;
        let stop: HashSet<&'a str> = frame
            .vars
            .iter()
            .flat_map(|v| [v.merge, v.switch])
            .chain(frame.invariants.iter().map(|e| e.name.as_str()))
            .collect();
        let roots: Vec<&'a str> = frame
            .vars
            .iter()
            .map(|v| v.next)
            .chain([frame.cond])
            .collect();
        frame.captures = self.walk(&roots, &inner, &stop).1;
        Ok(frame)
    }

    /// The variable a non-constant Enter starts, `Enter → Merge(←NextIteration) → Switch →
    /// Exit`, and the LoopCond its Switch reads.
    fn loop_var(
        &self,
        enter: &'a NodeDef,
        users: &Users<'a>,
    ) -> Result<(LoopVar<'a>, &'a str), String> {
        let of = |node: &str, port: usize, k: Kind| -> Vec<&'a NodeDef> {
            users.get(node).map_or(Vec::new(), |u| {
                u.iter()
                    .filter(|(d, p)| *p == port && kind(&d.op) == k)
                    .map(|(d, _)| *d)
                    .collect()
            })
        };
        let what = |k: &str| format!("loop variable '{}' has no single {k}", enter.name);
        let [merge] = of(&enter.name, 0, Kind::Merge)[..] else {
            return Err(what("Merge"));
        };
        let next = data_inputs(merge)
            .filter_map(|i| self.nodes.get(split_ref(i).0))
            .find(|d| kind(&d.op) == Kind::Next)
            .and_then(|d| data_inputs(d).next())
            .ok_or_else(|| what("NextIteration"))?;
        let switches: Vec<&NodeDef> = of(&merge.name, 0, Kind::Switch)
            .into_iter()
            .filter(|s| !self.switch_rep.contains_key(s.name.as_str()))
            .collect();
        let [switch] = switches[..] else {
            return Err(what("Switch on LoopCond"));
        };
        let lc = canonical(&self.nodes, data_inputs(switch).nth(1).unwrap_or("")).0;
        let exits = of(&switch.name, 0, Kind::Exit);
        let var = LoopVar {
            enter,
            merge: merge.name.as_str(),
            switch: switch.name.as_str(),
            next,
            exit: exits.first().map(|e| e.name.as_str()),
        };
        Ok((var, lc))
    }

    /// The nodes standing for frame `id`'s results: its Merges, or its Exits.
    pub fn outputs_of(&self, id: FrameId) -> Vec<&'a str> {
        match id {
            FrameId::Cond(i) => self.conds[i].merges.clone(),
            FrameId::Loop(i) => self.loops[i].vars.iter().filter_map(|v| v.exit).collect(),
        }
    }

    /// Walks back from `roots` through the nodes living in `level` (or deeper), stopping at
    /// `stop`; returns the `stop` nodes reached and the references read from outside.
    fn walk(
        &self,
        roots: &[&'a str],
        level: &Level<'a>,
        stop: &HashSet<&'a str>,
    ) -> (Vec<&'a str>, Vec<&'a str>) {
        let mut seen = HashSet::new();
        let mut reached = Vec::new();
        let mut outside: Vec<&'a str> = Vec::new();
        let mut outside_keys = HashSet::new();
        let mut todo: Vec<&'a str> = roots.to_vec();
        while let Some(r) = todo.pop() {
            let (node, port) = split_ref(r);
            let Some((&name, &def)) = self.nodes.get_key_value(node) else {
                if outside_keys.insert((node, port)) {
                    outside.push(r);
                }
                continue;
            };
            if stop.contains(name) {
                if !reached.contains(&name) {
                    reached.push(name);
                }
            } else if self.tensor_level(name, port).starts_with(level) {
                if seen.insert(name) {
                    todo.extend(data_inputs(def));
                }
            } else if outside_keys.insert((node, port)) {
                outside.push(r);
            }
        }
        (reached, outside)
    }
}

fn frame_name(def: &NodeDef) -> &str {
    use tract_tensorflow::tfpb::tensorflow::attr_value::Value;
    match def.attr.get("frame_name").and_then(|a| a.value.as_ref()) {
        Some(Value::S(s)) => std::str::from_utf8(s).unwrap_or(""),
        _ => "",
    }
}

fn is_constant(def: &NodeDef) -> bool {
    use tract_tensorflow::tfpb::tensorflow::attr_value::Value;
    matches!(
        def.attr.get("is_constant").and_then(|a| a.value.as_ref()),
        Some(Value::B(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_tensorflow::tfpb::tensorflow::{attr_value::Value, AttrValue};

    fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn enter(name: &str, input: &str, constant: bool) -> NodeDef {
        let mut n = node(name, "Enter", &[input]);
        let attr = |v| AttrValue { value: Some(v) };
        n.attr
            .insert("frame_name".into(), attr(Value::S(b"f".to_vec())));
        n.attr
            .insert("is_constant".into(), attr(Value::B(constant)));
        n
    }

    fn inputs() -> Vec<NodeDef> {
        vec![node("x", "Placeholder", &[]), node("p", "Placeholder", &[])]
    }

    #[test]
    fn a_merge_with_a_value_from_outside_closes_the_cond() {
        let mut g = inputs();
        g.extend([
            node("s", "Switch", &["x", "p"]),
            node("c", "Const", &[]),
            node("t", "Neg", &["s:1"]),
            node("m", "Merge", &["c", "t"]),
        ]);
        let f = Frames::analyze(&g).unwrap();
        assert_eq!(f.conds.len(), 1);
        assert_eq!(f.conds[0].results, [vec!["c"], vec!["t"]]);
        assert_eq!(f.output_at("m", &vec![]), Some(FrameId::Cond(0)));
        // The predicate, then what the false side reads, then the true side.
        assert_eq!(f.inputs(FrameId::Cond(0)), ["p", "c", "x"]);
    }

    #[test]
    fn two_conds_on_one_predicate_in_sequence_stay_apart() {
        let mut g = inputs();
        g.extend([
            node("s1", "Switch", &["x", "p"]),
            node("a", "Neg", &["s1:1"]),
            node("b", "Abs", &["s1"]),
            node("m1", "Merge", &["b", "a"]),
            node("s2", "Switch", &["m1", "p"]),
            node("c", "Neg", &["s2:1"]),
            node("d", "Abs", &["s2:0"]),
            node("m2", "Merge", &["d", "c"]),
        ]);
        let f = Frames::analyze(&g).unwrap();
        assert_eq!(f.conds.len(), 2);
        assert_eq!(f.inputs(FrameId::Cond(1)), ["p", "m1"]);
    }

    #[test]
    fn a_merge_of_one_side_and_a_value_read_past_its_branch_are_refused() {
        let mut g = inputs();
        g.extend([
            node("s", "Switch", &["x", "p"]),
            node("t", "Neg", &["s:1"]),
            node("m", "Merge", &["s:1", "t"]),
            node("u", "Abs", &["t"]),
        ]);
        let f = Frames::analyze(&g).unwrap();
        assert!(f.misplaced("m", &vec![]).unwrap().contains("one side"));
        assert!(f
            .misplaced("u", &vec![])
            .unwrap()
            .contains("inside a tf.cond"));
        assert!(f.misplaced("s", &vec![]).unwrap().contains("Switch"));
    }

    #[test]
    fn a_loop_frame_has_its_variable_invariant_and_condition() {
        let mut g = inputs();
        g.extend([
            enter("e", "x", false),
            enter("en", "p", true),
            node("m", "Merge", &["e", "next"]),
            node("less", "Less", &["m", "en"]),
            node("lc", "LoopCond", &["less"]),
            node("sw", "Switch", &["m", "lc"]),
            node("id", "Identity", &["sw:1"]),
            node("one", "Const", &["^id"]),
            node("add", "AddV2", &["id", "one"]),
            node("next", "NextIteration", &["add"]),
            node("exit", "Exit", &["sw"]),
        ]);
        let f = Frames::analyze(&g).unwrap();
        assert_eq!(f.loops.len(), 1);
        let l = &f.loops[0];
        assert_eq!((l.vars.len(), l.invariants.len(), l.cond), (1, 1, "less"));
        assert_eq!((l.vars[0].next, l.vars[0].exit), ("add", Some("exit")));
        assert!(l.captures.is_empty());
        assert_eq!(f.output_at("exit", &vec![]), Some(FrameId::Loop(0)));
        assert_eq!(f.inputs(FrameId::Loop(0)), ["x", "p"]);
        // Inside the frame, reached from outside without the Exit.
        assert!(f.misplaced("add", &vec![]).is_some());
    }
}
