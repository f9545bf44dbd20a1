//! For operator authors: the one builder every keyed operator is made with, and the engine's
//! pieces an operator needs (what pipeline writers never touch).
//!
//! [`keyed_operator`] builds an operator with one input of `(key, value)` records exchanged by
//! key, a main output and a side output. It does, once for every keyed operator (rolling
//! aggregates, `final_values`, windows, sessions, process and co-process functions, joins):
//! - the **exchange by key** ([`key_hash`]), so that each key's records meet on the worker that
//!   owns it;
//! - the **state registration**: the operator's state, a [`KeyedStore`], is registered with the
//!   worker under the operator's name, so that checkpoints snapshot it as of their cut and a
//!   restore loads the entries this worker owns among any number of workers;
//! - the **restored capabilities**: an operator restored from a checkpoint is handed, on its first
//!   activation, the cut and capabilities from which it derives those for what it restored (the
//!   windows and timers still to fire);
//! - **late-record counting**: records an operator drops as too late are counted in
//!   [`Activation::late_dropped`] and show in the job report under the operator's name.
//!
//! The operator's own logic says what happens to its input as the frontier passes. The rule it
//! must keep (the one checkpoints rely on, see [`tidal_engine::state`]): its state changes only in
//! time order, reflecting exactly the input with times below its input frontier; [`TimeBuffer`]
//! holds input per time until then.
//!
//! ```
//! use std::rc::Rc;
//! use tidal_operators::build::{keyed_operator, KeyedState, Time, TimeBuffer};
//! use tidal_operators::prelude::*;
//! use tidal_connectors::prelude::*;
//!
//! // Each key's first value, emitted once; the keys seen are checkpointed state.
//! let mut firsts: Vec<(char, u32)> = tidal_engine::Job::local(2).run(|env| {
//!     let pairs = env.from_iter(vec![('a', 1u32), ('b', 2), ('a', 3)]).keyed().into_stream();
//!     let ctx = Rc::clone(pairs.context());
//!     pairs
//!         .then("first", move |input, name| {
//!             let state = KeyedState::<char, u32>::new(name);
//!             let (out, _side) = keyed_operator(&ctx, input, name, state).build(|setup| {
//!                 let seen = setup.state;
//!                 let mut pending: TimeBuffer<Vec<((char, u32), Time)>> = TimeBuffer::new();
//!                 move |mut act: tidal_operators::build::Activation<'_, char, u32, (char, u32), ()>| {
//!                     act.input.for_each(|message, data| {
//!                         if let Some((_, buffer)) = pending.at(&message, 0) {
//!                             buffer.append(data);
//!                         }
//!                     });
//!                     let mut seen = seen.borrow_mut();
//!                     for (cap, records) in pending.ready(act.frontier) {
//!                         let mut session = act.output.session(&cap);
//!                         for ((k, v), ts) in records {
//!                             if seen.get(&k).is_none() {
//!                                 seen.insert(k, v);
//!                                 session.give(((k, v), ts));
//!                             }
//!                         }
//!                     }
//!                 }
//!             });
//!             out
//!         })
//!         .collect()
//! }).unwrap();
//! firsts.sort();
//! assert_eq!(firsts.len(), 2);
//! assert_eq!(firsts[1], ('b', 2));
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use timely::communication::Pull;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::Message;
use timely::dataflow::channels::pact::{Exchange, LogPuller, ParallelizationContract, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{InputHandleCore, OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::vec::Broadcast;
use timely::progress::frontier::MutableAntichain;
use timely::scheduling::Activator;

pub use tidal_engine::state::{
    ChangeWriter, Clear, EntryWriter, FastMap, KeyedState, KeyedStore, Owner, TimeBuffer, key_hash,
};
pub use tidal_engine::{JobClock, Time, WorkerContext, timely};

use crate::keyed::Key;

/// The input of a keyed operator: `(key, value)` records with their timestamps, exchanged by key.
pub type KeyedInput<K, V> = InputHandleCore<
    Time,
    Vec<((K, V), Time)>,
    LogPuller<Box<dyn Pull<Message<Time, Vec<((K, V), Time)>>>>>,
>;

/// The broadcast input of a keyed operator (see [`KeyedOperator::with_broadcast_input`]): every
/// record of the broadcast stream, on every worker.
pub type BroadcastInput<B> = InputHandleCore<
    Time,
    Vec<(B, Time)>,
    <Pipeline as ParallelizationContract<Time, Vec<(B, Time)>>>::Puller,
>;

/// An activated output of a keyed operator: records of type `O` with their timestamps.
pub type Output<'a, O> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<(O, Time)>>>;

/// The streams a keyed operator makes: its main output and its side output.
pub type Outputs<'s, O, D> = (
    StreamVec<'s, Time, (O, Time)>,
    StreamVec<'s, Time, (D, Time)>,
);

/// A keyed operator under construction (see the [module docs](self)); `B` is the type of its
/// broadcast input's records, if it has one.
pub struct KeyedOperator<'s, K, V, S, B: 'static = ()> {
    input: StreamVec<'s, Time, ((K, V), Time)>,
    broadcast: Option<StreamVec<'s, Time, (B, Time)>>,
    name: String,
    ctx: Rc<WorkerContext>,
    state: Rc<RefCell<S>>,
    keep_initial: bool,
}

/// Starts a keyed operator called `name` on `input` (a stream of a [`DataStream`]'s records,
/// as [`DataStream::then`](tidal_engine::DataStream::then) hands it) on the worker `ctx`,
/// keeping `state`.
///
/// [`DataStream`]: tidal_engine::DataStream
pub fn keyed_operator<'s, K, V, S>(
    ctx: &Rc<WorkerContext>,
    input: StreamVec<'s, Time, ((K, V), Time)>,
    name: &str,
    state: S,
) -> KeyedOperator<'s, K, V, S>
where
    K: Key,
    V: timely::ExchangeData,
    S: KeyedStore,
{
    let ctx = Rc::clone(ctx);
    let state = Rc::new(RefCell::new(state));
    ctx.register_state(name, Rc::clone(&state));
    KeyedOperator {
        input,
        broadcast: None,
        name: name.to_string(),
        ctx,
        state,
        keep_initial: false,
    }
}

/// What an operator's logic is made with, once, when the operator is built.
pub struct Setup<S> {
    /// The operator's state, registered for checkpoints.
    pub state: Rc<RefCell<S>>,
    /// Schedules the operator again (for processing-time work).
    pub activator: Activator,
    /// The job's processing-time clock.
    pub clock: JobClock,
    /// The worker the operator runs on.
    pub context: Rc<WorkerContext>,
}

/// The capabilities an operator starts with, handed to its first activation when it restores a
/// checkpoint (or when it asked for them with [`KeyedOperator::keep_initial_capabilities`]).
pub struct Initial {
    /// The cut of the restored checkpoint: the operator's state is as of this time, everything
    /// that fires at or after it is still to come.
    pub restored_cut: Option<Time>,
    /// A capability on the main output.
    pub output: Capability<Time>,
    /// A capability on the side output.
    pub side: Capability<Time>,
}

/// One activation of a keyed operator.
pub struct Activation<'a, K: 'static, V: 'static, O: 'static, D: 'static, B: 'static = ()> {
    /// The records that arrived, exchanged by key.
    pub input: &'a mut KeyedInput<K, V>,
    /// The records of the broadcast input that arrived (all of them, on every worker), when the
    /// operator has one.
    pub broadcast: Option<&'a mut BroadcastInput<B>>,
    /// The input frontier: one past the watermark (of both inputs, with a broadcast input).
    pub frontier: &'a MutableAntichain<Time>,
    /// The main output (port 0).
    pub output: Output<'a, O>,
    /// The side output (port 1): late records, or a process function's side output.
    pub side: Output<'a, D>,
    /// On the first activation only, when restoring (or asked for): the initial capabilities.
    pub initial: Option<Initial>,
    /// Records dropped as too late in this activation (add to it): the builder reports them in
    /// the job report under the operator's name.
    pub late_dropped: &'a mut u64,
}

impl<'s, K, V, S> KeyedOperator<'s, K, V, S>
where
    K: Key,
    V: timely::ExchangeData,
    S: KeyedStore,
{
    /// Gives the operator a second input whose records reach every worker (each worker gets every
    /// record), for state that every worker keeps whole, such as broadcast state. Its frontier
    /// joins the keyed input's in [`Activation::frontier`].
    pub fn with_broadcast_input<B: timely::ExchangeData + Clone>(
        self,
        records: StreamVec<'s, Time, (B, Time)>,
    ) -> KeyedOperator<'s, K, V, S, B> {
        self.with_optional_broadcast(Some(records))
    }

    /// [`with_broadcast_input`](Self::with_broadcast_input) when `records` is given; otherwise an
    /// operator without one whose [`Activation`] type still names `B`.
    pub(crate) fn with_optional_broadcast<B: timely::ExchangeData + Clone>(
        self,
        records: Option<StreamVec<'s, Time, (B, Time)>>,
    ) -> KeyedOperator<'s, K, V, S, B> {
        KeyedOperator {
            input: self.input,
            broadcast: records,
            name: self.name,
            ctx: self.ctx,
            state: self.state,
            keep_initial: self.keep_initial,
        }
    }
}

impl<'s, K, V, S, B> KeyedOperator<'s, K, V, S, B>
where
    K: Key,
    V: timely::ExchangeData,
    S: KeyedStore,
    B: timely::ExchangeData + Clone,
{
    /// Hands the initial capabilities to the first activation even when not restoring (for an
    /// operator that must be able to emit before any input arrives, such as one that emits its
    /// state when the input ends).
    pub fn keep_initial_capabilities(mut self) -> Self {
        self.keep_initial = true;
        self
    }

    /// Builds the operator: `logic` is made once from the [`Setup`] and called on every
    /// activation.
    pub fn build<O: 'static, D: 'static, L>(
        self,
        logic: impl FnOnce(Setup<S>) -> L,
    ) -> Outputs<'s, O, D>
    where
        L: FnMut(Activation<'_, K, V, O, D, B>) + 'static,
    {
        let KeyedOperator {
            input,
            broadcast,
            name,
            ctx,
            state,
            keep_initial,
        } = self;
        let scope = input.scope();
        let mut builder = OperatorBuilder::new(name.clone(), scope);
        let activator = scope.activator_for(builder.operator_info().address);
        let mut input = builder.new_input(
            input,
            Exchange::new(|((k, _), _): &((K, V), Time)| key_hash(k)),
        );
        let mut broadcast = broadcast.map(|b| builder.new_input(b.broadcast(), Pipeline));
        let (main_out, main_stream) = builder.new_output::<Vec<(O, Time)>>();
        let (side_out, side_stream) = builder.new_output::<Vec<(D, Time)>>();
        let mut main_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(main_out);
        let mut side_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(side_out);
        let restored_cut = ctx.restored_cut();
        let mut logic = logic(Setup {
            state,
            activator,
            clock: ctx.clock(),
            context: Rc::clone(&ctx),
        });
        builder.build(move |caps| {
            let mut initial = if restored_cut.is_some() || keep_initial {
                let mut caps = caps.into_iter();
                caps.next().zip(caps.next()).map(|(output, side)| Initial {
                    restored_cut,
                    output,
                    side,
                })
            } else {
                None
            };
            let mut dropped = 0u64;
            // With a broadcast input: the least of both inputs' frontiers.
            let mut both = MutableAntichain::new();
            move |frontiers| {
                let frontier = if broadcast.is_some() {
                    both.clear();
                    for f in frontiers.iter() {
                        both.update_iter(f.frontier().iter().map(|t| (*t, 1)));
                    }
                    &both
                } else {
                    &frontiers[0]
                };
                let activation = Activation {
                    input: &mut input,
                    broadcast: broadcast.as_mut(),
                    frontier,
                    output: main_out.activate(),
                    side: side_out.activate(),
                    initial: initial.take(),
                    late_dropped: &mut dropped,
                };
                logic(activation);
                if dropped > 0 {
                    ctx.report_late_dropped(&name, dropped);
                    dropped = 0;
                }
            }
        });
        (main_stream, side_stream)
    }
}
