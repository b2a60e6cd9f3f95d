//! Unit tests of [`NodeQueue`] on explicit time: admission, the window,
//! resends and backoff, requeueing on disconnect, the size bound.

use std::time::{Duration, Instant};

use proto::{Message, Operation};
use serde_json::json;

use super::*;

fn cfg() -> QueueConfig {
    QueueConfig::default()
}

/// An ack-needing pod message for object `uid`.
fn pod(op: Operation, uid: &str, rv: &str) -> Message {
    Message::new(
        "edgecontroller",
        "resource",
        op,
        format!("default/pod/{uid}"),
    )
    .with_resource_version(rv)
    .with_content(json!({"metadata": {"uid": uid, "resourceVersion": rv}}))
}

/// A message that needs no ack.
fn podlist() -> Message {
    Message::new(
        "edgecontroller",
        "resource",
        Operation::Update,
        "default/podlist",
    )
}

fn drain(q: &mut NodeQueue, now: Instant) -> Vec<Message> {
    std::iter::from_fn(|| q.poll_transmit(now).map(|t| t.msg)).collect()
}

#[test]
fn newest_resource_version_wins() {
    let t0 = Instant::now();
    let mut q = NodeQueue::new(cfg());
    assert_eq!(
        q.push(pod(Operation::Insert, "a", "5")),
        Admission::Queued { evicted: 0 }
    );
    assert_eq!(
        q.push(pod(Operation::Update, "a", "3")),
        Admission::Dropped(DropReason::Stale)
    );
    assert_eq!(
        q.push(pod(Operation::Update, "a", "5")),
        Admission::Dropped(DropReason::Stale)
    );
    assert_eq!(
        q.push(pod(Operation::Update, "a", "12")),
        Admission::Replaced
    );
    let sent = drain(&mut q, t0);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header.resource_version, "12");
    assert_eq!(sent[0].route.operation, Operation::Update);
}

#[test]
fn delete_supersedes_an_in_flight_update_and_is_never_superseded() {
    let t0 = Instant::now();
    let mut q = NodeQueue::new(cfg());
    q.push(pod(Operation::Update, "a", "5"));
    let first = drain(&mut q, t0).remove(0);
    assert_eq!(q.in_flight(), 1);
    assert_eq!(
        q.push(pod(Operation::Delete, "a", "6")),
        Admission::Replaced
    );
    assert_eq!(q.in_flight(), 0);
    assert_eq!(
        q.push(pod(Operation::Update, "a", "9")),
        Admission::Dropped(DropReason::Stale)
    );
    // The old message's ack arrives late: recognised, changes nothing.
    assert_eq!(q.ack(first.id()), AckOutcome::Duplicate);
    let delete = drain(&mut q, t0).remove(0);
    assert_eq!(delete.route.operation, Operation::Delete);
    assert!(matches!(q.ack(delete.id()), AckOutcome::Acked(m) if m.id() == delete.id()));
    assert_eq!(q.len(), 0);
    assert_eq!(q.ack("never-sent"), AckOutcome::Unknown);
}

#[test]
fn deletes_without_resource_version_are_kept_others_dropped() {
    let mut q = NodeQueue::new(cfg());
    assert_eq!(
        q.push(pod(Operation::Update, "a", "")),
        Admission::Dropped(DropReason::NoResourceVersion)
    );
    assert!(matches!(
        q.push(pod(Operation::Delete, "a", "")),
        Admission::Queued { .. }
    ));
}

#[test]
fn objects_without_uid_are_keyed_by_resource() {
    let mut q = NodeQueue::new(cfg());
    let cm = |rv: &str| {
        Message::new(
            "edgecontroller",
            "resource",
            Operation::Update,
            "default/configmap/c",
        )
        .with_resource_version(rv)
    };
    q.push(cm("1"));
    assert_eq!(q.push(cm("2")), Admission::Replaced);
    assert_eq!(q.len(), 1);
}

#[test]
fn no_ack_messages_are_sent_once() {
    let t0 = Instant::now();
    let mut q = NodeQueue::new(cfg());
    let m = podlist();
    q.push(m.clone());
    assert_eq!(q.push(m.clone()), Admission::Dropped(DropReason::Duplicate));
    assert_eq!(drain(&mut q, t0), vec![m.clone()]);
    assert_eq!(q.len(), 0);
    assert_eq!(q.poll_timeout(), None);
    // Sent once: a repeat is refused, an edge "OK" for it is a duplicate.
    assert_eq!(q.push(m.clone()), Admission::Dropped(DropReason::Duplicate));
    assert_eq!(q.ack(m.id()), AckOutcome::Duplicate);
}

#[test]
fn window_limits_unacked_messages_but_not_no_ack_ones() {
    let t0 = Instant::now();
    let mut q = NodeQueue::new(QueueConfig { window: 2, ..cfg() });
    for uid in ["a", "b", "c"] {
        q.push(pod(Operation::Insert, uid, "1"));
    }
    let list = podlist();
    q.push(list.clone());
    let sent = drain(&mut q, t0);
    let rvs: Vec<_> = sent.iter().map(|m| m.resource().to_owned()).collect();
    assert_eq!(rvs, ["default/pod/a", "default/pod/b", "default/podlist"]);
    assert!(!q.wants_transmit());
    assert!(matches!(q.ack(sent[0].id()), AckOutcome::Acked(_)));
    assert!(q.wants_transmit());
    let next = drain(&mut q, t0);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].resource(), "default/pod/c");
}

#[test]
fn resends_every_interval_then_backs_off() {
    let t0 = Instant::now();
    let c = cfg();
    let step = c.resend_interval;
    let mut q = NodeQueue::new(c.clone());
    q.push(pod(Operation::Insert, "a", "1"));
    let first = q.poll_transmit(t0).expect("sent");
    assert!(!first.resend);
    let mut now = t0;
    for round in 1..=c.max_resends {
        assert!(q.poll_transmit(now).is_none());
        now = q.poll_timeout().expect("a resend deadline");
        assert_eq!(now, t0 + step * round);
        q.handle_timeout(now);
        let again = q.poll_transmit(now).expect("resent");
        assert!(again.resend);
        assert_eq!(again.msg.id(), first.msg.id());
    }
    // The resends ran out: set aside for the backoff, then sent again.
    now = q.poll_timeout().expect("last deadline");
    q.handle_timeout(now);
    assert_eq!(q.in_flight(), 0);
    assert!(q.poll_transmit(now).is_none());
    let until = q.poll_timeout().expect("backoff deadline");
    assert_eq!(until - now, c.backoff_base);
    q.handle_timeout(until);
    let retry = q.poll_transmit(until).expect("requeued");
    assert!(retry.resend);
    // An ack during the next round removes it.
    assert!(matches!(q.ack(first.msg.id()), AckOutcome::Acked(_)));
    assert_eq!(q.poll_timeout(), None);
}

#[test]
fn backoff_doubles_and_is_capped() {
    let c = QueueConfig {
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(5),
        ..cfg()
    };
    assert_eq!(backoff(&c, 1), Duration::from_secs(1));
    assert_eq!(backoff(&c, 2), Duration::from_secs(2));
    assert_eq!(backoff(&c, 3), Duration::from_secs(4));
    assert_eq!(backoff(&c, 4), Duration::from_secs(5));
    assert_eq!(backoff(&c, 200), Duration::from_secs(5));
}

#[test]
fn disconnect_requeues_unacked_in_order() {
    let t0 = Instant::now();
    let mut q = NodeQueue::new(cfg());
    for uid in ["a", "b", "c"] {
        q.push(pod(Operation::Insert, uid, "1"));
    }
    let sent = drain(&mut q, t0);
    assert!(matches!(q.ack(sent[1].id()), AckOutcome::Acked(_)));
    q.push(pod(Operation::Insert, "d", "1"));
    q.disconnected();
    assert_eq!(q.poll_timeout(), None);
    let again: Vec<_> = std::iter::from_fn(|| q.poll_transmit(t0)).collect();
    let order: Vec<_> = again.iter().map(|t| t.msg.resource().to_owned()).collect();
    assert_eq!(order, ["default/pod/a", "default/pod/c", "default/pod/d"]);
    assert_eq!(
        again.iter().map(|t| t.resend).collect::<Vec<_>>(),
        [true, true, false]
    );
    // The same ids: an ack for the first send still counts.
    assert!(matches!(q.ack(sent[0].id()), AckOutcome::Acked(_)));
}

#[test]
fn full_queue_drops_oldest_no_ack_first_then_refuses() {
    let mut q = NodeQueue::new(QueueConfig {
        capacity: 3,
        ..cfg()
    });
    let (l1, l2) = (podlist(), podlist());
    q.push(l1.clone());
    q.push(l2.clone());
    q.push(pod(Operation::Insert, "a", "1"));
    assert_eq!(
        q.push(pod(Operation::Insert, "b", "1")),
        Admission::Queued { evicted: 1 }
    );
    assert_eq!(
        q.push(pod(Operation::Insert, "c", "1")),
        Admission::Queued { evicted: 1 }
    );
    assert_eq!(
        q.push(pod(Operation::Insert, "d", "1")),
        Admission::Dropped(DropReason::QueueFull)
    );
    // Replacing a stored object still works when full.
    assert_eq!(
        q.push(pod(Operation::Update, "a", "2")),
        Admission::Replaced
    );
    assert_eq!(q.len(), 3);
}

#[test]
fn discarded_messages_are_forgotten() {
    let t0 = Instant::now();
    let mut q = NodeQueue::new(cfg());
    q.push(pod(Operation::Insert, "a", "1"));
    let sent = q.poll_transmit(t0).expect("sent").msg;
    assert!(q.discard(sent.id()));
    assert_eq!(q.len(), 0);
    assert_eq!(q.poll_timeout(), None);
    assert_eq!(q.ack(sent.id()), AckOutcome::Duplicate);
    assert!(!q.discard("never-sent"));
}
