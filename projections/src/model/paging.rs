//! Paging, sorting and filtering of the read side, independent of any store.

use domain::JobStatus;
use serde::Serialize;
use utoipa::ToSchema;

/// A validated page request: `number` ≥ 1, `size` in 1…1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub number: u32,
    pub size: u32,
}

impl PageRequest {
    pub const MAX_NUMBER: u32 = 10_000;
    pub const MAX_SIZE: u32 = 1000;
    pub const DEFAULT_SIZE: u32 = 100;
    /// The most rows a numbered page may skip. An offset costs the store every row it
    /// skips; pages further in are reached by cursor (keyset), which costs what the page
    /// holds however deep it is.
    pub const MAX_OFFSET: i64 = 10_000;

    pub fn offset(self) -> i64 {
        i64::from(self.number - 1) * i64::from(self.size)
    }

    /// Stores fetch one row more than a page to learn whether another page follows.
    pub fn fetch_limit(self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Turns up to `size + 1` fetched rows into a page.
    pub fn into_page<T>(self, mut rows: Vec<T>) -> Page<T> {
        let has_more = rows.len() > self.size as usize;
        rows.truncate(self.size as usize);
        Page {
            page_item_count: rows.len() as u32,
            items: rows,
            page_number: self.number,
            page_size: self.size,
            has_more,
            next_cursor: None,
        }
    }
}

/// A page of one job's events or status history, which are ordered by sequence: a page
/// number or a place after a sequence (what a cursor holds), at most `page.size` entries.
/// A page of events also stops before [`Self::MAX_BYTES`] (with at least one event,
/// however large), so that neither the answer nor the server's memory grows with the
/// events' size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencePage {
    pub page: PageRequest,
    /// Only entries after this sequence, in the page's order (then the page number is 1).
    pub after_sequence: Option<i64>,
}

impl SequencePage {
    /// The stored payload and metadata a page of events holds at most, in bytes.
    pub const MAX_BYTES: usize = 1024 * 1024;

    /// Events with sequences above this one, skipping `offset()` of them.
    pub fn after(self) -> i64 {
        self.after_sequence.unwrap_or(0)
    }

    pub fn offset(self) -> i64 {
        match self.after_sequence {
            Some(_) => 0,
            None => self.page.offset(),
        }
    }

    /// Turns the events read into a page: `cut` when the byte bound stopped the read, so
    /// more follow whatever the count says.
    pub fn into_page<T>(self, rows: Vec<T>, cut: bool) -> Page<T> {
        let mut page = self.page.into_page(rows);
        page.has_more |= cut;
        page
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            number: 1,
            size: Self::DEFAULT_SIZE,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page_number: u32,
    pub page_size: u32,
    pub page_item_count: u32,
    pub has_more: bool,
    /// Where the next page starts, for endpoints that page by cursor: pass it as `cursor`.
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Ascending,
    Descending,
}

impl Direction {
    pub fn sql(self) -> &'static str {
        match self {
            Direction::Ascending => "ASC",
            Direction::Descending => "DESC",
        }
    }

    /// The comparison that keeps what comes after a key in this direction.
    pub fn after_sql(self) -> &'static str {
        match self {
            Direction::Ascending => ">",
            Direction::Descending => "<",
        }
    }
}

/// Which timestamp a job list is ordered by (ties broken by job id, which is time-ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobSort {
    #[default]
    CreatedAt,
    UpdatedAt,
}

impl JobSort {
    pub fn column(self) -> &'static str {
        match self {
            JobSort::CreatedAt => "created_at",
            JobSort::UpdatedAt => "updated_at",
        }
    }

    /// Where `job` stands in a list of this order.
    pub fn key_of(self, job: &crate::model::view::JobView) -> JobKey {
        JobKey {
            at: match self {
                JobSort::CreatedAt => job.created_at,
                JobSort::UpdatedAt => job.updated_at,
            },
            job_id: job.id,
        }
    }
}

/// Where a page of a job list continues (what its cursor holds): after the job with this
/// id and this value of the list's order, in the list's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKey {
    pub at: chrono::DateTime<chrono::Utc>,
    pub job_id: uuid::Uuid,
}

/// Filters of a job list; every one given must match. `created_from` is inclusive,
/// `created_to` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub statuses: Vec<JobStatus>,
    pub type_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub reference: Option<String>,
    pub created_from: Option<domain::Timestamp>,
    pub created_to: Option<domain::Timestamp>,
    pub sort: JobSort,
    pub direction: Direction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_fetch_means_more_pages() {
        let request = PageRequest { number: 2, size: 3 };
        assert_eq!(request.offset(), 3);
        let page = request.into_page(vec![1, 2, 3, 4]);
        assert_eq!(page.items, vec![1, 2, 3]);
        assert!(page.has_more);
        assert_eq!(page.page_item_count, 3);
        let last = request.into_page(vec![1, 2]);
        assert!(!last.has_more);
        assert_eq!(last.page_item_count, 2);
    }

    #[test]
    fn the_largest_offset_fits() {
        let request = PageRequest {
            number: u32::MAX,
            size: PageRequest::MAX_SIZE,
        };
        assert_eq!(request.offset(), 4_294_967_294_000);
    }
}
