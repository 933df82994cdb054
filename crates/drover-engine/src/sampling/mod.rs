//! How a request's next token is chosen: its validated parameters and the picker built from them.

mod params;
mod picker;

pub use params::SamplingParams;
pub use picker::TokenPicker;
