//! The token lifecycle routes (lifecycle.md §1, §3): rotating a token with
//! an overlap window, and searching the whole audit trail in the shape of
//! Unleash's `GET /api/admin/search/events` (its `IS:` / `IS_ANY_OF:`
//! operators, day ranges and paging). Parsing and answers only: the rules
//! are the domain's and the application's.

use actix_web::http::header::LOCATION;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use keywarden_application::{EventPage, EventSearch, RotateToken, SearchQuery};
use keywarden_domain::{representable, TokenRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Acting;
use crate::dto::{self, EventBody};
use crate::error::ApiError;
use crate::extract::{json_body, segment_from_end};
use crate::handlers::{percent_encode, UseCases};
#[allow(unused_imports)] // named in the OpenAPI annotations
use crate::openapi::{AdminResponses, ApiTokenSchema, ErrorBody, StorageUnavailable};

/// A rotation (`POST /api/admin/api-tokens/:token/rotate`). Unknown fields
/// are ignored.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RotateTokenRequest {
    /// When the current credential stops working: a past or present instant
    /// cuts it off at once; a future one gives clients time to switch. Not
    /// later than the token's own expiry.
    #[serde(deserialize_with = "dto::date_time")]
    #[schema(schema_with = dto::date_time_schema)]
    previous_expires_at: DateTime<Utc>,
    /// The new credential's expiry. Default: the old token's lifetime from
    /// now, else `tokens.default_lifetime`, else never (capped at
    /// `tokens.max_lifetime`).
    #[serde(default, deserialize_with = "dto::optional_date_time")]
    #[schema(schema_with = dto::optional_date_time_schema)]
    expires_at: Option<DateTime<Utc>>,
}

/// A rotation's successor as the rotation answers it: the token as created,
/// with its credential as `secret`, and the token it replaces.
#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RotatedToken {
    #[serde(flatten)]
    token: ApiTokenSchema,
    /// The selector of the token this one replaces.
    rotated_from: String,
}

#[utoipa::path(
    post,
    path = "/api/admin/api-tokens/{token}/rotate",
    tag = "API tokens",
    summary = "Replace a token by a successor, with an overlap",
    description = "The successor copies name, type, projects and environment; its credential (`secret`) is shown only here. The old credential works until `previousExpiresAt`. Admin tokens are rotated with `keywarden tokens rotate`.",
    params(("token" = String, Path, description = "The full credential or its selector, raw or percent-encoded")),
    request_body(content = RotateTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Rotated; the body is the successor with its credential and `rotatedFrom`", body = RotatedToken,
            headers(("Location" = String, description = "The token's get-by-name URL"))),
        (status = 400, description = "Invalid body, an admin token, previousExpiresAt later than the token's expiry, or an expiry against the lifetime policy", body = ErrorBody),
        AdminResponses,
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "The token has expired or was rotated already", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = ErrorBody),
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn rotate_api_token(
    Acting(actor): Acting,
    req: HttpRequest,
    payload: web::Payload,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let target = TokenRef::parse(&segment_from_end(&req, 1)?);
    let body: RotateTokenRequest = json_body(&req, payload).await?;
    let request = RotateToken {
        previous_expires_at: body.previous_expires_at,
        expires_at: body.expires_at,
    };
    let rotated = usecases.rotate_token(&actor, target, request).await?;
    let successor = &rotated.successor;
    Ok(HttpResponse::Created()
        .insert_header((
            LOCATION,
            format!(
                "/api/admin/api-tokens/{}",
                percent_encode(successor.name().as_str())
            ),
        ))
        .json(
            dto::created(successor, &rotated.credential)
                .rotated_from(Some(rotated.retired.selector().to_string())),
        ))
}

/// `{"events": [...], "total": N}`, as Unleash's event search answers.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventSearchResult {
    events: Vec<EventBody>,
    /// How many events match in all.
    total: u64,
}

impl EventSearchResult {
    fn of(page: EventPage) -> Self {
        Self {
            events: page.events.into_iter().map(EventBody::of).collect(),
            total: page.total,
        }
    }
}

fn bad(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_data(&format!("/query/{name}"), message)
}

/// `IS:<v>` or `IS_ANY_OF:<a>,<b>`: the values it matches.
fn operator_values(name: &str, text: &str) -> Result<Vec<String>, ApiError> {
    let values: Vec<String> = if let Some(list) = text.strip_prefix("IS_ANY_OF:") {
        list.split(',').map(str::to_string).collect()
    } else if let Some(one) = text.strip_prefix("IS:") {
        vec![one.to_string()]
    } else {
        return Err(bad(
            name,
            format!("{name} must be IS:<value> or IS_ANY_OF:<value>,<value>; got {text:?}"),
        ));
    };
    if values.iter().any(String::is_empty) {
        return Err(bad(name, format!("{name} names an empty value")));
    }
    Ok(values)
}

/// `IS:yyyy-MM-dd`: the start of that UTC day.
fn day(name: &str, text: &str) -> Result<NaiveDate, ApiError> {
    text.strip_prefix("IS:")
        .filter(|date| date.len() == 10)
        .and_then(|date| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
        .ok_or_else(|| bad(name, format!("{name} must be IS:yyyy-MM-dd; got {text:?}")))
}

/// The start of `date` in UTC; `None` past what storage can hold (the day
/// after 9999-12-31), which bounds nothing.
fn start_of(date: NaiveDate) -> Option<DateTime<Utc>> {
    Some(date.and_hms_opt(0, 0, 0)?.and_utc()).filter(representable)
}

fn whole_number(name: &str, text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| bad(name, format!("{name} must be a whole number of at least 0")))
}

/// The search's query string; each parameter at most once, others ignored.
fn search_query(query: &str) -> Result<SearchQuery, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| ApiError::bad_data("/query", "The query string is not valid."))?
        .into_inner();
    let mut seen = std::collections::HashSet::new();
    let mut result = SearchQuery::default();
    let mut search = EventSearch::default();
    for (name, value) in pairs {
        const KNOWN: [&str; 7] = [
            "type",
            "createdBy",
            "from",
            "to",
            "query",
            "offset",
            "limit",
        ];
        if !KNOWN.contains(&name.as_str()) {
            continue;
        }
        if !seen.insert(name.clone()) {
            return Err(bad(&name, format!("{name} may be given only once.")));
        }
        match name.as_str() {
            "type" => search.types = Some(operator_values(&name, &value)?),
            "createdBy" => search.created_by = Some(operator_values(&name, &value)?),
            "from" => search.from = start_of(day(&name, &value)?),
            // Inclusive: up to the start of the next day.
            "to" => search.before = day(&name, &value)?.succ_opt().and_then(start_of),
            "query" => search.text = Some(value).filter(|text| !text.is_empty()),
            "offset" => result.offset = Some(whole_number(&name, &value)?),
            _ => {
                let limit = whole_number(&name, &value)?;
                // The use case caps it at 1000.
                result.limit = Some(u32::try_from(limit).unwrap_or(u32::MAX));
            }
        }
    }
    result.search = search;
    Ok(result)
}

#[utoipa::path(
    get,
    path = "/api/admin/search/events",
    tag = "Admin",
    summary = "Search the whole audit trail, newest first, a page at a time",
    params(
        ("type" = Option<String>, Query, description = "`IS:<type>` or `IS_ANY_OF:<type>,<type>`, e.g. IS:api-token-created"),
        ("createdBy" = Option<String>, Query, description = "`IS:<name>` or `IS_ANY_OF:<name>,<name>`: the event's createdBy"),
        ("from" = Option<String>, Query, pattern = r"^IS:\d{4}-\d{2}-\d{2}$", description = "`IS:yyyy-MM-dd`: recorded on or after this UTC day"),
        ("to" = Option<String>, Query, pattern = r"^IS:\d{4}-\d{2}-\d{2}$", description = "`IS:yyyy-MM-dd`: recorded on or before this UTC day"),
        ("query" = Option<String>, Query, description = "Free text found, case-insensitively, in the type, the creator or the token's name"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Events to skip (default 0)"),
        ("limit" = Option<i64>, Query, minimum = 0, description = "At most this many (default 50; larger values give 1000)"),
    ),
    responses(
        (status = 200, description = "One page of the matching events and how many match in all", body = EventSearchResult),
        (status = 400, description = "A malformed operator, date or number, or a repeated parameter; details[].path names it", body = ErrorBody),
        AdminResponses,
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn search_events(
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let page = usecases
        .search_events(search_query(req.query_string())?)
        .await?;
    Ok(HttpResponse::Ok().json(EventSearchResult::of(page)))
}

/// An ISO 8601 duration (`P90D`, `P2W`, `PT12H`, `P1Y2M3DT4H5M6S`) as a
/// length of time; a year counts 365 days and a month 30 (how long a token
/// went unused need not follow the calendar). `None` when it is not one.
pub(crate) fn iso_duration(text: &str) -> Option<chrono::Duration> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut seconds: i64 = 0;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            // Units in their order, each at most once, each after a number.
            let at = units[next_unit..].iter().position(|(unit, _)| *unit == c)?;
            let size = units[next_unit + at].1;
            next_unit += at + 1;
            let amount: i64 = number.parse().ok()?;
            number.clear();
            seconds = seconds.checked_add(amount.checked_mul(size)?)?;
            any = true;
        }
        number.is_empty().then_some(())
    };
    add(
        date,
        &[
            ('Y', 365 * 86_400),
            ('M', 30 * 86_400),
            ('W', 7 * 86_400),
            ('D', 86_400),
        ],
    )?;
    if let Some(time) = time {
        add(time, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    if !any {
        return None;
    }
    chrono::Duration::try_seconds(seconds)
}

/// The `unusedFor` of a token list's query string, if given.
pub(crate) fn unused_for(query: &str) -> Result<Option<chrono::Duration>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| ApiError::bad_data("/query", "The query string is not valid."))?
        .into_inner();
    let mut found = None;
    for (name, value) in pairs.into_iter().filter(|(name, _)| name == "unusedFor") {
        if found.is_some() {
            return Err(bad(&name, "unusedFor may be given only once."));
        }
        found = Some(iso_duration(&value).ok_or_else(|| {
            bad(
                &name,
                format!("unusedFor must be an ISO 8601 duration such as P90D; got {value:?}"),
            )
        })?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {

    #[test]
    fn iso_durations_read_as_lengths_of_time() {
        let days = |n: i64| Some(chrono::Duration::days(n));
        assert_eq!(iso_duration("P90D"), days(90));
        assert_eq!(iso_duration("P2W"), days(14));
        assert_eq!(iso_duration("P1Y"), days(365));
        assert_eq!(iso_duration("P3M"), days(90));
        assert_eq!(iso_duration("PT12H"), Some(chrono::Duration::hours(12)));
        assert_eq!(iso_duration("PT5M"), Some(chrono::Duration::minutes(5)));
        assert_eq!(
            iso_duration("P1DT1H1M1S"),
            Some(chrono::Duration::seconds(86_400 + 3_661))
        );
        assert_eq!(iso_duration("P0D"), days(0));
        for bad in [
            "",
            "P",
            "PT",
            "90D",
            "P90",
            "PD",
            "P1H",
            "P1D2Y",
            "P1DT",
            "p90d",
            "P-1D",
            "P1.5D",
            "P99999999999999999999D",
            "P1DD",
        ] {
            assert_eq!(iso_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn unused_for_names_its_parameter_when_wrong() {
        assert_eq!(unused_for("").unwrap(), None);
        assert_eq!(
            unused_for("unusedFor=P1D&x=1").unwrap(),
            Some(chrono::Duration::days(1))
        );
        for query in ["unusedFor=90", "unusedFor=P1D&unusedFor=P2D", "unusedFor="] {
            let error = unused_for(query).unwrap_err();
            assert_eq!(
                path_of(error),
                Some("/query/unusedFor".to_string()),
                "{query}"
            );
        }
    }
    use super::*;
    use chrono::TimeZone;

    fn path_of(error: ApiError) -> Option<String> {
        error.path().map(str::to_string)
    }

    #[test]
    fn operators_and_days_parse_as_unleash_writes_them() {
        let query = search_query(
            "type=IS_ANY_OF:api-token-created,api-token-updated&createdBy=IS:alice&from=IS:2030-01-01&to=IS:2030-01-31&query=ci&offset=50&limit=10",
        )
        .unwrap();
        assert_eq!(
            query.search.types,
            Some(vec!["api-token-created".into(), "api-token-updated".into()])
        );
        assert_eq!(query.search.created_by, Some(vec!["alice".into()]));
        assert_eq!(
            query.search.from,
            Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(
            query.search.before,
            Some(Utc.with_ymd_and_hms(2030, 2, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(query.search.text.as_deref(), Some("ci"));
        assert_eq!((query.offset, query.limit), (Some(50), Some(10)));
        assert_eq!(search_query("").unwrap(), SearchQuery::default());
    }

    #[test]
    fn the_document_states_the_new_routes_parameters_and_bodies() {
        let document: serde_json::Value = serde_json::from_str(&crate::openapi_document()).unwrap();
        let search = &document["paths"]["/api/admin/search/events"]["get"];
        let names: Vec<&str> = search["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "type",
                "createdBy",
                "from",
                "to",
                "query",
                "offset",
                "limit"
            ]
        );
        let rotate = &document["paths"]["/api/admin/api-tokens/{token}/rotate"]["post"];
        for status in ["201", "400", "404", "409"] {
            assert!(rotate["responses"][status].is_object(), "{status}");
        }
        let schemas = &document["components"]["schemas"];
        assert!(schemas["RotatedToken"].to_string().contains("rotatedFrom"));
        assert_eq!(
            schemas["RotateTokenRequest"]["required"],
            serde_json::json!(["previousExpiresAt"])
        );
    }

    #[test]
    fn malformed_parameters_are_named() {
        for (query, name) in [
            ("type=api-token-created", "type"),
            ("type=IS:", "type"),
            ("createdBy=IS_ANY_OF:a,,b", "createdBy"),
            ("createdBy=alice", "createdBy"),
            ("from=2030-01-01", "from"),
            ("from=IS:2030-02-30", "from"),
            ("to=IS:30-01-01", "to"),
            ("offset=-1", "offset"),
            ("limit=ten", "limit"),
            ("limit=1&limit=2", "limit"),
        ] {
            let error = search_query(query).unwrap_err();
            assert_eq!(path_of(error), Some(format!("/query/{name}")), "{query}");
        }
    }
}
