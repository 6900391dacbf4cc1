//! The two batch dialects AzBatch speaks, and what differs between them.

use crate::error::Error;
use crate::limits;

/// Which batch dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Azure Resource Manager, `POST {endpoint}/batch`.
    Arm,
    /// Microsoft Graph, `POST {endpoint}/{v1.0|beta}/$batch`.
    Graph,
}

/// Graph's versions; the first is the default.
pub const GRAPH_VERSIONS: [&str; 2] = ["v1.0", "beta"];

/// The API versions the ARM batch endpoint accepts; the first is the default.
pub const ARM_BATCH_API_VERSIONS: [&str; 2] = ["2020-06-01", "2015-11-01"];

impl Api {
    /// Parses `arm` or `graph` (any case).
    pub fn parse(s: &str) -> Result<Api, Error> {
        match s.to_ascii_lowercase().as_str() {
            "arm" => Ok(Api::Arm),
            "graph" => Ok(Api::Graph),
            other => Err(Error::InvalidOptions(format!(
                "api must be \"arm\" or \"graph\" (got \"{other}\")"
            ))),
        }
    }

    /// The name options and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Api::Arm => "arm",
            Api::Graph => "graph",
        }
    }

    /// Most items one batch may hold.
    pub fn max_batch(self) -> usize {
        match self {
            Api::Arm => limits::ARM_MAX_BATCH,
            Api::Graph => limits::GRAPH_MAX_BATCH,
        }
    }

    /// The body key of a paged answer's link to the next page.
    pub fn next_link_key(self) -> &'static str {
        match self {
            Api::Arm => "nextLink",
            Api::Graph => "@odata.nextLink",
        }
    }
}
