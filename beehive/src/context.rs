//! [`ModuleContext`]: what a running module holds — its name and group, its
//! mailbox, a [`Bus`] handle and its cancellation token.

use proto::Message;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::bus::Bus;

/// A module's view of the runtime, passed to every
/// [`Module::run`](crate::Module::run).
///
/// The runtime keeps one context per module for the module's whole life, so
/// messages queued while a module restarts wait in its mailbox.
#[derive(Debug)]
pub struct ModuleContext {
    name: String,
    group: String,
    mailbox: mpsc::Receiver<Message>,
    bus: Bus,
    cancel: CancellationToken,
}

impl ModuleContext {
    pub(crate) fn new(
        name: String,
        group: String,
        mailbox: mpsc::Receiver<Message>,
        bus: Bus,
        cancel: CancellationToken,
    ) -> Self {
        ModuleContext {
            name,
            group,
            mailbox,
            bus,
            cancel,
        }
    }

    /// A context for driving a module by hand in a unit test, with a fresh
    /// cancellation token (see [`cancellation_token`](Self::cancellation_token)).
    ///
    /// Register the module's name as an endpoint to get both its mailbox and a
    /// bus on which it can be reached:
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), beehive::BuildError> {
    /// let mut builder = beehive::BeehiveBuilder::new();
    /// let mailbox = builder.endpoint("twin", "twin");
    /// let _meta = builder.endpoint("metamanager", "meta");
    /// let hive = builder.build()?;
    /// let ctx = beehive::ModuleContext::new_test("twin", "twin", mailbox, hive.bus());
    /// // module.run(&mut ctx).await, while the test sends on hive.bus()
    /// # drop(ctx);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_test(
        name: impl Into<String>,
        group: impl Into<String>,
        mailbox: mpsc::Receiver<Message>,
        bus: Bus,
    ) -> Self {
        Self::new(
            name.into(),
            group.into(),
            mailbox,
            bus,
            CancellationToken::new(),
        )
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The module's group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The bus, for sending, requests and replies.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The next message, or `None` once the module is cancelled or its
    /// mailbox is closed. Cancellation wins over queued messages.
    pub async fn recv(&mut self) -> Option<Message> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => None,
            msg = self.mailbox.recv() => msg,
        }
    }

    /// The next message if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        if self.cancel.is_cancelled() {
            return None;
        }
        self.mailbox.try_recv().ok()
    }

    /// The mailbox itself, for modules that select over it directly.
    pub fn mailbox(&mut self) -> &mut mpsc::Receiver<Message> {
        &mut self.mailbox
    }

    /// The module's cancellation token; clone it into sub-tasks (or take
    /// `child_token()`s) so they stop with the module.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the module has been told to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the module is told to stop.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use proto::Operation;

    use super::*;
    use crate::runtime::BeehiveBuilder;

    #[tokio::test]
    async fn recv_yields_messages_then_none_on_cancel() {
        let mut builder = BeehiveBuilder::new();
        let mailbox = builder.endpoint("twin", "twin");
        let hive = builder.build().unwrap();
        let mut ctx = ModuleContext::new_test("twin", "twin", mailbox, hive.bus());
        assert_eq!((ctx.name(), ctx.group()), ("twin", "twin"));
        let m = Message::new("test", "twin", Operation::Update, "device/x");
        hive.bus().send("twin", m.clone()).await.unwrap();
        assert!(ctx.try_recv().is_some_and(|got| got == m));
        assert!(ctx.try_recv().is_none());
        hive.bus().send("twin", m.clone()).await.unwrap();
        assert_eq!(ctx.recv().await, Some(m.clone()));
        hive.bus().send("twin", m).await.unwrap();
        ctx.cancellation_token().cancel();
        assert!(ctx.is_cancelled());
        assert_eq!(ctx.recv().await, None);
        assert_eq!(ctx.try_recv(), None);
    }
}
