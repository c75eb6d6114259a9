//! A handler reply that is either ready now or comes from an atomic future.
//!
//! An actor that rejects a command and then stops must still deliver the rejection: a reply
//! wrapped in a future would be dropped with the stopping context, so ready replies are sent
//! at once instead.

use actix::dev::{MessageResponse, OneshotSender};
use actix::{Actor, AsyncContext, AtomicResponse, Message};

pub(crate) enum Reply<A: Actor, T> {
    /// Sent as soon as the handler returns.
    Now(T),
    /// Sent when the future completes; the actor handles nothing else meanwhile.
    Atomic(AtomicResponse<A, T>),
}

impl<A, M, T> MessageResponse<A, M> for Reply<A, T>
where
    A: Actor,
    A::Context: AsyncContext<A>,
    M: Message<Result = T>,
    T: 'static,
{
    fn handle(self, ctx: &mut A::Context, tx: Option<OneshotSender<T>>) {
        match self {
            Reply::Now(value) => {
                if let Some(tx) = tx {
                    // The caller may have given up waiting; nothing to do then.
                    let _ = tx.send(value);
                }
            }
            Reply::Atomic(response) => {
                <AtomicResponse<A, T> as MessageResponse<A, M>>::handle(response, ctx, tx)
            }
        }
    }
}
