//! What Tidal knows of each operator of a dataflow: its identity, by which its state is found in
//! checkpoints, its metrics and its log lines are named.

use std::cell::RefCell;

/// What Tidal knows of the operator that produced a stream: its name (renamable with
/// [`DataStream::name`](crate::DataStream::name), for metrics, logs and checkpoint identities).
#[derive(Debug)]
pub struct OperatorMeta {
    name: RefCell<String>,
}

impl OperatorMeta {
    /// An operator called `name`.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        OperatorMeta {
            name: RefCell::new(name.into()),
        }
    }
    /// Gives the operator a new name.
    pub(crate) fn rename(&self, name: impl Into<String>) {
        *self.name.borrow_mut() = name.into();
    }
    /// The operator's current name.
    pub fn name(&self) -> String {
        self.name.borrow().clone()
    }
}
