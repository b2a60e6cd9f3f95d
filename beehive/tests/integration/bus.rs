//! Bus behaviour through the public API: delivery, backpressure, group
//! fan-out, request/reply correlation, timeouts and unknown names.

use std::pin::pin;
use std::time::Duration;

use beehive::{BeehiveBuilder, Bus, BusError};
use futures::poll;
use proto::{Message, Operation};
use tokio::sync::mpsc;

fn msg(resource: &str) -> Message {
    Message::new("test", "meta", Operation::Query, resource)
}

/// A bus with one endpoint per `(name, group)`, capacity `capacity`.
fn bus_with(capacity: usize, names: &[(&str, &str)]) -> (Bus, Vec<mpsc::Receiver<Message>>) {
    let mut builder = BeehiveBuilder::new().mailbox_capacity(capacity);
    let rxs = names
        .iter()
        .map(|(name, group)| builder.endpoint(name, group))
        .collect();
    (builder.build().expect("build").bus(), rxs)
}

#[tokio::test]
async fn send_delivers_in_order() {
    let (bus, mut rxs) = bus_with(8, &[("metamanager", "meta")]);
    for i in 0..5 {
        bus.send("metamanager", msg(&format!("r{i}")))
            .await
            .unwrap();
    }
    for i in 0..5 {
        assert_eq!(rxs[0].recv().await.unwrap().resource(), format!("r{i}"));
    }
}

#[tokio::test]
async fn full_mailbox_applies_backpressure() {
    let (bus, mut rxs) = bus_with(2, &[("sink", "g")]);
    bus.send("sink", msg("a")).await.unwrap();
    bus.try_send("sink", msg("b")).unwrap();
    assert_eq!(
        bus.try_send("sink", msg("dropped")),
        Err(BusError::Full {
            module: "sink".into()
        })
    );
    let mut blocked = pin!(bus.send("sink", msg("c")));
    assert!(poll!(&mut blocked).is_pending());
    assert_eq!(rxs[0].recv().await.unwrap().resource(), "a");
    assert_eq!(poll!(&mut blocked), std::task::Poll::Ready(Ok(())));
    assert_eq!(rxs[0].recv().await.unwrap().resource(), "b");
    assert_eq!(rxs[0].recv().await.unwrap().resource(), "c");
}

#[tokio::test]
async fn group_send_reaches_every_member_despite_a_full_one() {
    let (bus, mut rxs) = bus_with(
        1,
        &[("eventbus", "bus"), ("servicebus", "bus"), ("twin", "twin")],
    );
    assert_eq!(bus.group_members("bus"), ["eventbus", "servicebus"]);
    bus.send("eventbus", msg("filler")).await.unwrap();

    let mut fan_out = pin!(bus.send_to_group("bus", msg("hello")));
    assert!(poll!(&mut fan_out).is_pending(), "eventbus is full");
    // The free member already has its copy while eventbus is still full.
    assert_eq!(rxs[1].try_recv().unwrap().resource(), "hello");

    assert_eq!(rxs[0].recv().await.unwrap().resource(), "filler");
    assert_eq!(fan_out.await, Ok(2));
    assert_eq!(rxs[0].recv().await.unwrap().resource(), "hello");
    assert!(rxs[2].try_recv().is_err(), "other groups get nothing");
}

#[tokio::test]
async fn unknown_names_are_errors() {
    let (bus, _rxs) = bus_with(4, &[("twin", "twin")]);
    let unknown = BusError::UnknownModule {
        module: "nobody".into(),
    };
    assert_eq!(bus.send("nobody", msg("x")).await, Err(unknown.clone()));
    assert_eq!(bus.try_send("nobody", msg("x")), Err(unknown.clone()));
    assert_eq!(
        bus.request("nobody", msg("x"), Duration::from_secs(1))
            .await,
        Err(unknown)
    );
    assert_eq!(
        bus.send_to_group("nogroup", msg("x")).await,
        Err(BusError::UnknownGroup {
            group: "nogroup".into()
        })
    );
    assert!(bus.group_members("nogroup").is_empty());
    assert_eq!(bus.modules(), ["twin"]);
}

#[tokio::test(start_paused = true)]
async fn request_times_out_and_cleans_up() {
    let (bus, mut rxs) = bus_with(4, &[("silent", "g")]);
    let err = bus
        .request("silent", msg("x"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Timeout { ref module, .. } if module == "silent"));
    assert_eq!(bus.pending_requests(), 0);

    // The request was delivered with sync set; a late reply finds nobody.
    let request = rxs[0].recv().await.unwrap();
    assert!(request.header.sync);
    assert!(!bus.respond(request.reply("too late")));
}

#[tokio::test(start_paused = true)]
async fn request_timeout_covers_a_full_mailbox() {
    let (bus, _rxs) = bus_with(1, &[("busy", "g")]);
    bus.send("busy", msg("filler")).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = bus
        .request("busy", msg("x"), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Timeout { .. }));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test]
async fn dropped_request_leaves_nothing_pending() {
    let (bus, _rxs) = bus_with(4, &[("silent", "g")]);
    {
        let mut request = pin!(bus.request("silent", msg("x"), Duration::ZERO));
        assert!(poll!(&mut request).is_pending());
        assert_eq!(bus.pending_requests(), 1);
    }
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test]
async fn concurrent_requests_get_their_own_replies() {
    let (bus, mut rxs) = bus_with(4, &[("metamanager", "meta")]);
    let mut rx = rxs.remove(0);
    let responder_bus = bus.clone();
    let responder = tokio::spawn(async move {
        // Take both requests, then answer in reverse order.
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        for request in [second, first] {
            let answer = format!("answer to {}", request.resource());
            assert!(responder_bus.respond(request.reply(answer)));
        }
    });
    let a = msg("a");
    let b = msg("b");
    let (a_id, b_id) = (a.id().to_owned(), b.id().to_owned());
    let (ra, rb) = tokio::join!(
        bus.request("metamanager", a, Duration::ZERO),
        bus.request("metamanager", b, Duration::ZERO),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.parent_id(), Some(a_id.as_str()));
    assert_eq!(ra.content, "answer to a");
    assert_eq!(rb.parent_id(), Some(b_id.as_str()));
    assert_eq!(rb.content, "answer to b");
    responder.await.unwrap();
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test]
async fn reply_nobody_waits_for_is_dropped() {
    let (bus, _rxs) = bus_with(4, &[("twin", "twin")]);
    assert!(!bus.respond(msg("orphan").reply("x")));
    assert!(!bus.respond(msg("no parent")));
}

#[tokio::test]
async fn duplicate_request_id_is_refused() {
    let (bus, _rxs) = bus_with(4, &[("silent", "g")]);
    let m = msg("x");
    let mut first = pin!(bus.request("silent", m.clone(), Duration::ZERO));
    assert!(poll!(&mut first).is_pending());
    assert!(matches!(
        bus.request("silent", m, Duration::ZERO).await,
        Err(BusError::DuplicateRequest { .. })
    ));
    assert_eq!(bus.pending_requests(), 1);
}
