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
    pub const MAX_NUMBER: u32 = 2_147_483;
    pub const MAX_SIZE: u32 = 1000;
    pub const DEFAULT_SIZE: u32 = 100;

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
        }
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
            number: PageRequest::MAX_NUMBER,
            size: PageRequest::MAX_SIZE,
        };
        assert_eq!(request.offset(), 2_147_482_000);
    }
}
