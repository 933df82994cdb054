//! Result lines: `drover run`'s line format (drover-job's [`LineMaker`]), plus the record of a
//! request the completion window left unanswered.

use drover_types::ErrorCode;

pub(crate) use drover_job::lines::LineMaker;

/// OpenAI's message for requests a batch's completion window left unanswered.
const EXPIRED: &str = "This request could not be executed before the completion window expired.";

/// The `batch_expired` line of an unanswered request, serialized with its newline.
pub(crate) fn expired(maker: &mut LineMaker, line: u64, custom_id: &str) -> Vec<u8> {
    let record = maker.unsent(
        line,
        custom_id.to_string(),
        ErrorCode::BatchExpired,
        EXPIRED.to_string(),
    );
    let mut out = serde_json::to_vec(&record).expect("line serializes");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_lines_read_back_as_failed_results() {
        let bytes = expired(&mut LineMaker::new(), 7, "a\"b");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["custom_id"], "a\"b");
        assert_eq!(v["response"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], "batch_expired");
        assert_eq!(v["drover"]["line"], 7);
        assert!(v["id"].as_str().unwrap().starts_with("batch_req_"));
        assert!(bytes.ends_with(b"\n") && bytes.iter().filter(|&&b| b == b'\n').count() == 1);
    }
}
