use super::*;
use keywarden_domain::{Actor, AuditEvent};

#[test]
fn backoff_doubles_from_a_second_up_to_ten_minutes_within_its_upper_half() {
    assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
    assert_eq!(backoff(2, 1.0), Duration::from_secs(2));
    assert_eq!(backoff(5, 1.0), Duration::from_secs(16));
    assert_eq!(backoff(11, 1.0), Duration::from_secs(600));
    assert_eq!(backoff(u32::MAX, 1.0), Duration::from_secs(600));
    assert_eq!(backoff(30, 0.0), Duration::from_secs(300));
}

#[test]
fn endpoints_are_shown_without_what_their_url_may_hide() {
    assert_eq!(
        redact_endpoint("https://user:pw@hooks.example.com:8443/in/keywarden?token=abc#x"),
        "https://hooks.example.com:8443/in/keywarden"
    );
    assert_eq!(
        redact_endpoint("http://127.0.0.1:9000"),
        "http://127.0.0.1:9000"
    );
    assert_eq!(redact_endpoint("http://a@b"), "http://b");
}

#[test]
fn an_endpoint_takes_the_types_it_names_or_all() {
    let all = Endpoint {
        url: "http://x/".into(),
        key: SigningKey::new(vec![1]),
        events: None,
    };
    assert!(EventType::ALL.into_iter().all(|kind| all.takes(kind)));
    let some = Endpoint {
        events: Some(vec![EventType::ApiTokenExpiring]),
        ..all
    };
    assert!(some.takes(EventType::ApiTokenExpiring));
    assert!(!some.takes(EventType::ApiTokenCreated));
    assert_eq!(format!("{:?}", some.key), "SigningKey(<redacted>)");
}

mod dispatcher {
    use super::*;
    use crate::ports::{LogPosition, MockNotificationStore, PendingEvent};
    use crate::MockClock;
    use keywarden_domain::fixtures::{at, token};
    use keywarden_domain::TokenType;
    use mockall::predicate::eq;

    fn pending(id: i64, event: AuditEvent) -> PendingEvent {
        PendingEvent {
            position: LogPosition { commit: 0, id },
            stored: StoredEvent { id, event },
        }
    }

    fn dispatcher(store: MockNotificationStore, sender: MockWebhookSender) -> Dispatcher {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(at(100));
        let endpoint = Endpoint {
            url: "http://hooks/".into(),
            key: SigningKey::new(vec![7; 32]),
            events: Some(vec![EventType::ApiTokenDeleted]),
        };
        Dispatcher::new(
            endpoint,
            "me".into(),
            Arc::new(store),
            Arc::new(sender),
            Arc::new(clock),
            chrono::Duration::days(3),
        )
    }

    /// A failure after events the endpoint does not take passes over them
    /// and still counts as the next attempt at the failing event.
    #[tokio::test]
    async fn a_failure_after_skipped_events_keeps_counting_attempts() {
        let (ci, _) = token(1, "ci", TokenType::Client, &["*"], at(0));
        let actor = Actor::named("t");
        let mut store = MockNotificationStore::new();
        store.expect_claim_endpoint().returning(|_, _, _, _| {
            Ok(Some(EndpointState {
                attempts: 2,
                next_attempt_at: None,
            }))
        });
        let events = vec![
            pending(1, AuditEvent::token_created(&ci, &actor, at(50))),
            pending(2, AuditEvent::token_deleted(&ci, &actor, at(60))),
        ];
        store
            .expect_pending_events()
            .returning(move |_, _| Ok(events.clone()));
        store
            .expect_record_delivered()
            .withf(|_, owner, delivered, _| {
                owner == "me" && *delivered == Delivered::skipped(LogPosition { commit: 0, id: 1 })
            })
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        store
            .expect_record_failure()
            .withf(|_, _, state, error, _| {
                state.attempts == 3
                    && state.next_attempt_at.is_some_and(|next| next > at(100))
                    && error == "answered HTTP 503"
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        let mut sender = MockWebhookSender::new();
        sender
            .expect_send()
            .withf(|_, event, _| event.id == 2)
            .times(1)
            .returning(|_, _, _| Err(DeliveryError("answered HTTP 503".into())));
        let mut dispatcher = dispatcher(store, sender);
        assert!(matches!(dispatcher.round().await, Ok(Round::Idle)));
        assert_eq!(dispatcher.state.attempts, 3);
    }

    /// A delivery failing past `give_up_after` is given up and counted, and
    /// the next event goes out.
    #[tokio::test]
    async fn old_failures_are_given_up_and_the_next_event_is_sent() {
        let (ci, _) = token(1, "ci", TokenType::Client, &["*"], at(0));
        let actor = Actor::named("t");
        let ancient = at(100) - chrono::Duration::days(4);
        let mut store = MockNotificationStore::new();
        store.expect_claim_endpoint().returning(|_, _, _, _| {
            Ok(Some(EndpointState {
                attempts: 9,
                next_attempt_at: None,
            }))
        });
        let events = vec![
            pending(1, AuditEvent::token_deleted(&ci, &actor, ancient)),
            pending(2, AuditEvent::token_deleted(&ci, &actor, at(90))),
        ];
        store
            .expect_pending_events()
            .with(eq("http://hooks/".to_string()), eq(BATCH))
            .returning(move |_, _| Ok(events.clone()));
        let mut sequence = mockall::Sequence::new();
        store
            .expect_record_delivered()
            .withf(|_, _, d, _| d.through.id == 1 && d.given_up == 1 && d.error.is_some())
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _, _, _| Ok(true));
        store
            .expect_record_delivered()
            .withf(|_, _, d, _| d.through.id == 2 && d.sent == 1 && d.given_up == 0)
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _, _, _| Ok(true));
        let mut sender = MockWebhookSender::new();
        sender
            .expect_send()
            .withf(|_, event, _| event.id == 1)
            .returning(|_, _, _| Err(DeliveryError("could not connect".into())));
        sender
            .expect_send()
            .withf(|_, event, _| event.id == 2)
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut dispatcher = dispatcher(store, sender);
        assert!(matches!(dispatcher.round().await, Ok(Round::Idle)));
        assert_eq!(dispatcher.state.attempts, 0);
    }
}
