//! The job graph: Tidal's operators and the streams between them, as the dataflow was built.
//!
//! Every worker builds the same dataflow, so one worker's view is the job's. The graph is made
//! from timely's own record of the operators and channels it built (its `timely` log: one event
//! per operator and per channel, logged while the dataflow is built) and from the ranges of
//! timely operator identifiers each Tidal operator was built in: a Tidal operator (a `map`, a
//! windowed aggregation, a source) is made of one or more timely operators, and its node
//! stands for all of them. Timely operators outside every range (sinks written directly on
//! timely, say) are nodes of their own under their timely name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// The job graph (see the [module docs](self)).
///
/// ```
/// use tidal_engine::metrics::{JobGraph, GraphNode};
/// let graph = JobGraph {
///     nodes: vec![
///         GraphNode { id: 0, name: "input files".into(), kind: "source".into(), parts: vec!["input files".into()] },
///         GraphNode { id: 1, name: "split words".into(), kind: "flat_map".into(), parts: vec!["flat_map#1".into()] },
///     ],
///     edges: vec![(0, 1)],
///     workers: 2,
/// };
/// assert!(graph.to_text().contains("input files -> split words"));
/// assert!(graph.to_dot().starts_with("digraph job {"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGraph {
    /// The operators, in the order they were built (sources first).
    pub nodes: Vec<GraphNode>,
    /// Streams between operators: `(from, to)` node ids.
    pub edges: Vec<(usize, usize)>,
    /// Workers (parallel instances of every operator) in the job.
    pub workers: usize,
}

/// One operator of the [`JobGraph`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    /// Its position in [`JobGraph::nodes`].
    pub id: usize,
    /// Its name (as given with `.name(..)`, or its kind and a number).
    pub name: String,
    /// What it is: `source`, `map`, `window`, … (the kind it was built as), or the timely
    /// operator's name for operators built directly on timely.
    pub kind: String,
    /// The timely operators it is made of, by their timely names.
    pub parts: Vec<String>,
}

/// A timely operator as logged: its identifier, address and name.
#[derive(Debug, Clone)]
pub(crate) struct TimelyOperator {
    pub(crate) id: usize,
    pub(crate) addr: Vec<usize>,
    pub(crate) name: String,
}

/// A timely channel as logged: the scope it is in and its ends (operator index in that scope,
/// port).
#[derive(Debug, Clone)]
pub(crate) struct TimelyChannel {
    pub(crate) scope: Vec<usize>,
    pub(crate) source: (usize, usize),
    pub(crate) target: (usize, usize),
}

/// A Tidal operator as registered when it was built: its name, kind and the range of timely
/// identifiers allocated while it was built.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) ids: (usize, usize),
}

/// The graph of dataflow `dataflow` (see [`Built`]).
pub(crate) fn build(
    dataflow: usize,
    operators: &BTreeMap<usize, TimelyOperator>,
    channels: &BTreeMap<usize, TimelyChannel>,
    registered: &[Registered],
    workers: usize,
) -> Built {
    let mut graph = JobGraph {
        workers,
        ..JobGraph::default()
    };
    // Timely id -> node id, for the dataflow's top-level operators (nested scopes' operators
    // belong to the top-level operator that holds them).
    let mut node_of_id: BTreeMap<usize, usize> = BTreeMap::new();
    // Operator index in the dataflow's scope -> timely id.
    let mut id_of_index: BTreeMap<usize, usize> = BTreeMap::new();
    let mut node_of_registered: BTreeMap<usize, usize> = BTreeMap::new();
    for op in operators.values() {
        if op.addr.len() != 2 || op.addr[0] != dataflow {
            continue;
        }
        id_of_index.insert(op.addr[1], op.id);
        // The outermost Tidal operator whose range holds it.
        let owner = registered
            .iter()
            .enumerate()
            .filter(|(_, r)| r.ids.0 <= op.id && op.id < r.ids.1)
            .max_by_key(|(_, r)| (r.ids.1 - r.ids.0, std::cmp::Reverse(r.ids.0)))
            .map(|(k, _)| k);
        let node = match owner.and_then(|k| node_of_registered.get(&k).copied()) {
            Some(node) => {
                graph.nodes[node].parts.push(op.name.clone());
                node
            }
            None => {
                let id = graph.nodes.len();
                let (name, kind) = match owner {
                    Some(k) => (registered[k].name.clone(), registered[k].kind.clone()),
                    None => (op.name.clone(), op.name.clone()),
                };
                graph.nodes.push(GraphNode {
                    id,
                    name,
                    kind,
                    parts: vec![op.name.clone()],
                });
                if let Some(k) = owner {
                    node_of_registered.insert(k, id);
                }
                id
            }
        };
        node_of_id.insert(op.id, node);
    }
    let mut edges = BTreeSet::new();
    for ch in channels.values() {
        if ch.scope.as_slice() != [dataflow] {
            continue;
        }
        let ends = (
            id_of_index
                .get(&ch.source.0)
                .and_then(|id| node_of_id.get(id)),
            id_of_index
                .get(&ch.target.0)
                .and_then(|id| node_of_id.get(id)),
        );
        if let (Some(&from), Some(&to)) = ends
            && from != to
        {
            edges.insert((from, to));
        }
    }
    graph.edges = edges.into_iter().collect();
    for node in &mut graph.nodes {
        // The probes Tidal adds (checkpoints, metrics) are not the job's operators.
        if node.parts.len() > 1 {
            node.parts.retain(|p| p != "Probe");
        }
        // Built directly on timely, with nothing downstream: a sink.
        if node.kind == node.parts[0] && !graph.edges.iter().any(|(from, _)| *from == node.id) {
            node.kind = "sink".to_string();
        }
    }
    Built {
        graph,
        node_of_id,
        node_of_registered,
    }
}

/// A built graph, with the node of each top-level timely operator (by timely id) and of each
/// registered Tidal operator (by its place in the registration list).
pub(crate) struct Built {
    pub(crate) graph: JobGraph,
    pub(crate) node_of_id: BTreeMap<usize, usize>,
    pub(crate) node_of_registered: BTreeMap<usize, usize>,
}

impl JobGraph {
    /// The graph as text: one line per operator (its kind and the timely operators it is
    /// made of), then one per stream.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "job graph: {} operators, {} streams, {} worker(s) each",
            self.nodes.len(),
            self.edges.len(),
            self.workers
        );
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "  [{}] {} ({}: {})",
                n.id,
                n.name,
                n.kind,
                n.parts.join(", ")
            );
        }
        for (from, to) in &self.edges {
            let _ = writeln!(
                out,
                "  {} -> {}",
                self.nodes[*from].name, self.nodes[*to].name
            );
        }
        out
    }

    /// The graph in Graphviz's DOT language (`dot -Tsvg`).
    pub fn to_dot(&self) -> String {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::from("digraph job {\n  rankdir=LR;\n  node [shape=box];\n");
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "  n{} [label=\"{}\\n{}\"];",
                n.id,
                quote(&n.name),
                quote(&n.kind)
            );
        }
        for (from, to) in &self.edges {
            let _ = writeln!(out, "  n{from} -> n{to};");
        }
        out.push_str("}\n");
        out
    }
}
