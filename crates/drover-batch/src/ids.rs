//! Object ids and clocks, as OpenAI spells them: `file-…`, `batch_…`, Unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// A new file id, `file-` and 32 hex digits (random 122 bits).
pub(crate) fn file_id() -> String {
    format!("file-{}", uuid::Uuid::new_v4().simple())
}

/// A new batch id, `batch_` and 32 hex digits.
pub(crate) fn batch_id() -> String {
    format!("batch_{}", uuid::Uuid::new_v4().simple())
}

/// Now, Unix seconds (what every `*_at` field holds).
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether `id` could be one of ours: ids become file names, so nothing else may reach the disk.
pub(crate) fn is_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_openai_prefixes_and_are_path_safe() {
        let (f, b) = (file_id(), batch_id());
        assert!(f.starts_with("file-") && f.len() == 37, "{f}");
        assert!(b.starts_with("batch_") && b.len() == 38, "{b}");
        assert!(is_safe(&f) && is_safe(&b));
        assert_ne!(file_id(), f);
        assert!(!is_safe("../etc/passwd") && !is_safe("") && !is_safe("a/b"));
    }
}
