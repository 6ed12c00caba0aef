use super::*;

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
