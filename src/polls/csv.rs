//! A CSV text field, as both the results export (`export`) and the sealed audit file
//! (`receipt::audit_file`) write it. Apart from `export` so that the store, which seals a poll,
//! can use it without depending on the export (which depends on the store).

/// A text field: neutralised if it looks like a formula, quoted if it needs to be.
pub fn field(text: &str) -> String {
    let neutral = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}
