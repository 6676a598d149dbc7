//! The desired state: what should exist, read from TOML, validated with every problem
//! reported at once, typed by kind, and linked into a dependency graph by references.
//! Nothing here does network I/O; the loader only reads the folder it is given.

pub mod catalog;
pub mod expand;
pub mod format;
pub mod json_schema;
pub mod kinds;
pub mod load;
pub mod model;
pub mod refs;
pub mod schema;
pub mod secrets;
pub mod source;
pub mod validate;
pub mod values;

pub use expand::{Environment, Inputs};
pub use kinds::{Kind, Spec};
pub use model::{DesiredState, Lifecycle, Mode, Resource, Settings};
pub use refs::{Address, Reference};
pub use validate::{ValidationErrors, load, load_with};
