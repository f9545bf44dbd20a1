//! Fixed points: `iterate` applies a step to a collection until nothing changes, incrementally —
//! when the input changes, only the consequences of the change are recomputed.

use std::rc::Rc;

use differential_dataflow::operators::Iterate;
use timely::dataflow::scope::Iterative;
use timely::order::Product;

use super::{Collection, CollectionTime, Row};
use tidal_engine::WorkerContext;

/// The scope inside [`Collection::iterate`]: collections from outside enter it with
/// [`Collection::enter`]. Its times are the outer time and a round counter.
pub struct Iteration<'i, T: CollectionTime> {
    scope: Iterative<'i, T, u64>,
    ctx: Rc<WorkerContext>,
}

impl<'s, D: Row, T: CollectionTime> Collection<'s, D, T> {
    /// The fixed point of `step`: starting from this collection `x`, repeats `x = step(x)` until
    /// `x` no longer changes, and keeps it up to date as the inputs change. `step` must end with
    /// an operator that consolidates (`distinct`, `reduce`, an aggregate, or
    /// [`consolidate`](Self::consolidate)), or rows that cancel could keep the loop going.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// // Nodes reachable from node 1.
    /// let mut out: Vec<u32> = tidal_engine::Job::local(2).run(|env| {
    ///     let edges = env.from_iter(vec![(1u32, 2u32), (2, 3), (4, 5)]).into_collection();
    ///     let roots = env.from_iter(vec![1u32]).into_collection();
    ///     roots.iterate(move |scope, reached| {
    ///         let edges = edges.enter(scope);
    ///         reached.clone().map(|n| (n, ())).join(edges)
    ///             .map(|(_, ((), next))| next)
    ///             .concat(reached)
    ///             .distinct()
    ///     }).final_table().collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![1, 2, 3]);
    /// ```
    pub fn iterate<F>(self, step: F) -> Self
    where
        for<'i> F: FnOnce(
            &Iteration<'i, T>,
            Collection<'i, D, Product<T, u64>>,
        ) -> Collection<'i, D, Product<T, u64>>,
    {
        let ctx = Rc::clone(&self.ctx);
        let inner = self.inner.clone().iterate(move |scope, x| {
            let iteration = Iteration {
                scope,
                ctx: Rc::clone(&ctx),
            };
            let x = Collection {
                inner: x,
                ctx: Rc::clone(&ctx),
            };
            step(&iteration, x).inner
        });
        self.wrap(inner)
    }

    /// This collection inside an iteration's scope (the same rows in every round).
    pub fn enter<'i>(self, scope: &Iteration<'i, T>) -> Collection<'i, D, Product<T, u64>> {
        Collection {
            inner: self.inner.enter(scope.scope),
            ctx: Rc::clone(&scope.ctx),
        }
    }
}
