//! Query-string parsing for the list endpoints: paging, sorting and filters, each bad value
//! a 400 problem naming the parameter. Unknown parameters are refused too, so a misspelt
//! filter never silently returns everything. The OpenAPI descriptions of these parameters
//! ([`Paging`], [`JobSortBy`], [`HistorySortBy`], [`SortDirection`]) sit at the end.

use crate::http::cursors::{invalid_cursor, EventCursor, FeedCursor, HistoryCursor, JobCursor};
use crate::http::error::ApiError;
use crate::http::problem::{excerpt, ProblemType};
use projections::{Direction, JobFilter, JobKey, JobSort, PageRequest, SequencePage};
use utoipa::{IntoParams, ToSchema};

pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    fn take_all(&mut self, name: &str) -> Vec<String> {
        let (taken, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(key, _)| key == name);
        self.0 = rest;
        taken.into_iter().map(|(_, value)| value).collect()
    }

    fn take_one(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.take_all(name);
        if values.len() > 1 {
            return Err(ApiError::bad_request(
                ProblemType::InvalidQuery,
                format!("{name} may be given only once"),
            ));
        }
        Ok(values.pop())
    }

    fn take_parsed<T>(
        &mut self,
        name: &str,
        problem: ProblemType,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.take_one(name)? {
            None => Ok(None),
            Some(raw) => parse(&raw).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    problem,
                    format!("{name} must be {expected}; got {}", excerpt(&raw)),
                )
            }),
        }
    }

    pub fn paging(&mut self) -> Result<PageRequest, ApiError> {
        let defaults = PageRequest::default();
        let in_range =
            |max: u32| move |raw: &str| raw.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
        let number = self.take_parsed(
            "pageNumber",
            ProblemType::InvalidPaging,
            &format!("an integer from 1 to {}", PageRequest::MAX_NUMBER),
            in_range(PageRequest::MAX_NUMBER),
        )?;
        let size = self.take_parsed(
            "pageSize",
            ProblemType::InvalidPaging,
            &format!("an integer from 1 to {}", PageRequest::MAX_SIZE),
            in_range(PageRequest::MAX_SIZE),
        )?;
        let page = PageRequest {
            number: number.unwrap_or(defaults.number),
            size: size.unwrap_or(defaults.size),
        };
        if page.offset() > PageRequest::MAX_OFFSET {
            return Err(ApiError::bad_request(
                ProblemType::InvalidPaging,
                format!(
                    "a numbered page may start at most {} items in (pageNumber {} of {} \
                     starts at {}); further pages are reached by cursor: pass the \
                     nextCursor of the page before as cursor",
                    PageRequest::MAX_OFFSET,
                    page.number,
                    page.size,
                    page.offset()
                ),
            ));
        }
        Ok(page)
    }

    /// `pageNumber` and `pageSize`, or a `cursor` from an earlier page's `nextCursor` with
    /// `pageSize` (not with `pageNumber`): the page asked for, and the cursor's text.
    fn page_or_cursor(&mut self) -> Result<(PageRequest, Option<String>), ApiError> {
        let has_number = self.0.iter().any(|(name, _)| name == "pageNumber");
        let page = self.paging()?;
        let cursor = self.take_one("cursor")?;
        if cursor.is_some() && has_number {
            return Err(ApiError::bad_request(
                ProblemType::InvalidPaging,
                "give cursor or pageNumber, not both",
            ));
        }
        Ok((page, cursor))
    }

    /// The paging of a job list with `filter`: a page number, or the place after the job a
    /// cursor names (which must come from a list with the same order and filters).
    pub fn job_paging(
        &mut self,
        filter: &JobFilter,
    ) -> Result<(PageRequest, Option<JobKey>), ApiError> {
        let (page, cursor) = self.page_or_cursor()?;
        let after = cursor
            .map(|cursor| {
                JobCursor::read(&cursor, filter).ok_or_else(|| {
                    invalid_cursor("this job list (with the same sortBy, direction and filters)")
                })
            })
            .transpose()?;
        Ok((page, after))
    }

    /// The paging of a job's status history in `direction`.
    pub fn history_paging(&mut self, direction: Direction) -> Result<SequencePage, ApiError> {
        let (page, cursor) = self.page_or_cursor()?;
        let after_sequence = cursor
            .map(|cursor| {
                HistoryCursor::read(&cursor, direction).ok_or_else(|| {
                    invalid_cursor("this job's status history (in the same direction)")
                })
            })
            .transpose()?;
        Ok(SequencePage {
            page,
            after_sequence,
        })
    }

    pub fn direction(&mut self) -> Result<Direction, ApiError> {
        Ok(self
            .take_parsed(
                "direction",
                ProblemType::InvalidQuery,
                "ascending or descending",
                |raw| match raw {
                    "ascending" => Some(Direction::Ascending),
                    "descending" => Some(Direction::Descending),
                    _ => None,
                },
            )?
            .unwrap_or_default())
    }

    pub fn sort(&mut self, allowed: &[(&str, JobSort)]) -> Result<JobSort, ApiError> {
        let expected = allowed
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(" or ");
        Ok(self
            .take_parsed("sortBy", ProblemType::InvalidQuery, &expected, |raw| {
                allowed
                    .iter()
                    .find(|(name, _)| *name == raw)
                    .map(|(_, sort)| *sort)
            })?
            .unwrap_or_default())
    }

    pub fn job_filter(&mut self) -> Result<JobFilter, ApiError> {
        let mut statuses = Vec::new();
        for raw in self.take_all("status") {
            let status = domain::JobStatus::parse(&raw).ok_or_else(|| {
                ApiError::bad_request(
                    ProblemType::InvalidQuery,
                    format!("status {} is not a job status", excerpt(&raw)),
                )
            })?;
            statuses.push(status);
        }
        let positive = |raw: &str| raw.parse::<i64>().ok().filter(|n| *n >= 1);
        let timestamp = domain::parse_timestamp;
        Ok(JobFilter {
            statuses,
            type_id: self.take_parsed(
                "typeId",
                ProblemType::InvalidQuery,
                "an integer of at least 1",
                positive,
            )?,
            contact_id: self.take_parsed(
                "contactId",
                ProblemType::InvalidQuery,
                "an integer of at least 1",
                positive,
            )?,
            reference: self.take_parsed(
                "reference",
                ProblemType::InvalidQuery,
                "text without NUL characters",
                |raw| (!raw.contains('\0')).then(|| raw.to_owned()),
            )?,
            created_from: self.take_parsed(
                "createdFrom",
                ProblemType::InvalidQuery,
                "an RFC 3339 timestamp between years 0000 and 9999",
                timestamp,
            )?,
            created_to: self.take_parsed(
                "createdTo",
                ProblemType::InvalidQuery,
                "an RFC 3339 timestamp between years 0000 and 9999",
                timestamp,
            )?,
            sort: self.sort(&[
                ("createdAt", JobSort::CreatedAt),
                ("updatedAt", JobSort::UpdatedAt),
            ])?,
            direction: self.direction()?,
        })
    }

    /// The paging of a job's events: `pageNumber`/`pageSize` as for every list, or a
    /// `cursor` from an earlier page's `nextCursor` (with `pageSize`, without
    /// `pageNumber`).
    pub fn event_paging(&mut self) -> Result<SequencePage, ApiError> {
        let (page, cursor) = self.page_or_cursor()?;
        let after_sequence = cursor
            .map(|cursor| {
                EventCursor::read(&cursor).ok_or_else(|| invalid_cursor("this job's events"))
            })
            .transpose()?;
        Ok(SequencePage {
            page,
            after_sequence,
        })
    }

    /// The change feed's `cursor`, `limit` and `wait`.
    pub fn feed_paging(&mut self) -> Result<FeedRequest, ApiError> {
        let after = self
            .take_one("cursor")?
            .map(|cursor| {
                FeedCursor::read(&cursor).ok_or_else(|| invalid_cursor("the change feed"))
            })
            .transpose()?
            .unwrap_or(projections::log::LogCursor::START);
        let limit = self.take_parsed(
            "limit",
            ProblemType::InvalidPaging,
            "an integer from 1 to 1000",
            |raw| raw.parse::<i64>().ok().filter(|n| (1..=1000).contains(n)),
        )?;
        let wait = self.take_parsed(
            "wait",
            ProblemType::InvalidQuery,
            "a whole number of seconds from 0 to 30",
            |raw| raw.parse::<u64>().ok().filter(|n| *n <= 30),
        )?;
        Ok(FeedRequest {
            after,
            limit: limit.unwrap_or(100),
            wait: std::time::Duration::from_secs(wait.unwrap_or(0)),
        })
    }

    /// Refuses whatever parameter is left unread.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.first() {
            None => Ok(()),
            Some((name, _)) => Err(ApiError::bad_request(
                ProblemType::InvalidQuery,
                format!("unknown query parameter {}", excerpt(name)),
            )),
        }
    }
}

/// The OpenAPI description of the paging parameters [`QueryParams::paging`] reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)] // documentation only: read by `QueryParams::paging`
pub struct Paging {
    /// 1…10000, default 1; not with `cursor`. A numbered page may start at most 10 000
    /// items in (`(pageNumber - 1) × pageSize ≤ 10000`, else 400 `invalid-paging`); pages
    /// further in are reached by `cursor`.
    #[param(minimum = 1, maximum = 10000)]
    page_number: Option<u32>,
    /// 1…1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<u32>,
    /// The `nextCursor` of the previous page (of the same list: same order, direction and
    /// filters): the page starts right after its last item. Following `nextCursor` reads
    /// every item once, at the same cost however deep, and items added meanwhile never
    /// shift a page (a job changed meanwhile may move in an `updatedAt` order, or leave or
    /// enter a status filter).
    cursor: Option<String>,
}

/// A request for a page of the change feed.
pub struct FeedRequest {
    pub after: projections::log::LogCursor,
    pub limit: i64,
    pub wait: std::time::Duration,
}

/// The OpenAPI description of the change feed's parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)] // documentation only: read by `QueryParams::feed_paging`
pub struct FeedPaging {
    /// The `nextCursor` of the previous page; without it, the feed starts at the first event.
    cursor: Option<String>,
    /// 1…1000, default 100: the most events a page holds.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// 0…30, default 0: seconds to hold a request that finds nothing new, answering as soon
    /// as something commits (held at most 29 s, under the request timeout).
    #[param(minimum = 0, maximum = 30)]
    wait: Option<u32>,
}

/// The OpenAPI description of the paging parameters of a job's events.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)] // documentation only: read by `QueryParams::event_paging`
pub struct EventPaging {
    /// 1…10000, default 1; not with `cursor`. A numbered page may start at most 10 000
    /// events in; further pages are reached by `cursor`.
    #[param(minimum = 1, maximum = 10000)]
    page_number: Option<u32>,
    /// 1…1000, default 100: the most events a page holds. A page also stops before its
    /// events pass 1 MiB (it holds at least one), so it may hold fewer with more to come.
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<u32>,
    /// The `nextCursor` of the previous page: the page starts after its last event. Follow
    /// `nextCursor` to read every event exactly once; page numbers count `pageSize` events
    /// per page, so after a page cut short by its byte bound they skip events.
    cursor: Option<String>,
}

/// The orders a job list can have (documentation of `sortBy`; parsed by `QueryParams`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // documentation only: `QueryParams` parses the text itself
pub enum JobSortBy {
    CreatedAt,
    UpdatedAt,
}

/// The order of a status history (documentation of `sortBy`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // documentation only: `QueryParams` parses the text itself
pub enum HistorySortBy {
    CreatedAt,
}

/// Documentation of `direction`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // documentation only: `QueryParams` parses the text itself
pub enum SortDirection {
    Ascending,
    Descending,
}
