"""Results of a run: per-kernel and per-case records written as versioned JSON (placeholder)."""
