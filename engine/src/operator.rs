//! What Tidal knows of each operator of a dataflow: its identity, by which its state is found in
//! checkpoints, its metrics and its log lines are named.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What Tidal knows of the operator that produced a stream: its name (renamable with
/// [`DataStream::name`](crate::DataStream::name), for metrics, logs and checkpoint identities),
/// and the operator it reads from.
#[derive(Debug)]
pub struct OperatorMeta {
    name: RefCell<String>,
    /// Whether the name was given by the job (not a default `kind#N`).
    named: Cell<bool>,
    upstream: Option<Rc<OperatorMeta>>,
}

impl OperatorMeta {
    /// An operator called `name` that reads from `upstream` (none for a source).
    pub(crate) fn new(name: impl Into<String>, upstream: Option<Rc<OperatorMeta>>) -> Self {
        OperatorMeta {
            name: RefCell::new(name.into()),
            named: Cell::new(false),
            upstream,
        }
    }
    /// Gives the operator a new name.
    pub(crate) fn rename(&self, name: impl Into<String>) {
        *self.name.borrow_mut() = name.into();
        self.named.set(true);
    }
    /// The name the job gave this operator or the nearest one upstream of it.
    pub(crate) fn named_origin(&self) -> Option<String> {
        let mut at = self;
        loop {
            if at.named.get() {
                return Some(at.name());
            }
            at = at.upstream.as_deref()?;
        }
    }
    /// The operator's current name.
    pub fn name(&self) -> String {
        self.name.borrow().clone()
    }
}
