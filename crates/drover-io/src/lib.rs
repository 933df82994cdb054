//! Input reader, templates, output writer and resume journal.
