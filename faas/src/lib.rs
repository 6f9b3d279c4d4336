pub use faas_api::*;
