//! Azure clouds: which ARM, Graph and login hosts belong together.

use crate::dialect::{arm, Api};
use crate::error::Error;

/// A national cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    /// The public cloud.
    #[default]
    AzureCloud,
    /// Azure US Government.
    AzureUSGovernment,
    /// Azure operated by 21Vianet (China).
    AzureChinaCloud,
}

impl Cloud {
    /// Every cloud, the default first.
    pub const ALL: [Cloud; 3] = [
        Cloud::AzureCloud,
        Cloud::AzureUSGovernment,
        Cloud::AzureChinaCloud,
    ];

    /// The cloud's name, as `Connect-AzAccount -Environment` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "AzureCloud",
            Cloud::AzureUSGovernment => "AzureUSGovernment",
            Cloud::AzureChinaCloud => "AzureChinaCloud",
        }
    }

    /// Parses `AzureCloud`, `AzureUSGovernment` or `AzureChinaCloud` (any case).
    pub fn parse(s: &str) -> Result<Cloud, Error> {
        match s.to_ascii_lowercase().as_str() {
            "azurecloud" | "public" => Ok(Cloud::AzureCloud),
            "azureusgovernment" | "usgov" => Ok(Cloud::AzureUSGovernment),
            "azurechinacloud" | "china" => Ok(Cloud::AzureChinaCloud),
            _ => Err(Error::InvalidOptions(format!(
                "cloud must be \"AzureCloud\", \"AzureUSGovernment\" or \"AzureChinaCloud\" (got \"{s}\")"
            ))),
        }
    }

    /// The ARM endpoint.
    pub fn arm(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "https://management.azure.com",
            Cloud::AzureUSGovernment => "https://management.usgovcloudapi.net",
            Cloud::AzureChinaCloud => "https://management.chinacloudapi.cn",
        }
    }

    /// The Graph endpoint.
    pub fn graph(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "https://graph.microsoft.com",
            Cloud::AzureUSGovernment => "https://graph.microsoft.us",
            Cloud::AzureChinaCloud => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// How this cloud's ARM counts calls, as its documentation says: Azure
    /// operated by 21Vianet documents hourly counts; the others the regional
    /// token buckets.
    pub fn arm_model(self) -> arm::Model {
        match self {
            Cloud::AzureChinaCloud => arm::Model::Hourly,
            Cloud::AzureCloud | Cloud::AzureUSGovernment => arm::Model::TokenBucket,
        }
    }

    /// The Microsoft Entra login host.
    pub fn login(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "https://login.microsoftonline.com",
            Cloud::AzureUSGovernment => "https://login.microsoftonline.us",
            Cloud::AzureChinaCloud => "https://login.chinacloudapi.cn",
        }
    }

    /// The endpoint of `api` in this cloud.
    pub fn endpoint(self, api: Api) -> &'static str {
        match api {
            Api::Arm => self.arm(),
            Api::Graph => self.graph(),
        }
    }

    /// The resource (token audience) for `api` in this cloud. Tokens are asked
    /// for the cloud's own resource even when the endpoint is overridden.
    pub fn resource(self, api: Api) -> String {
        match api {
            Api::Arm => format!("{}/", self.arm()),
            Api::Graph => self.graph().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_go_together() {
        let gov = Cloud::parse("AzureUSGovernment").unwrap();
        assert_eq!(
            (gov.arm(), gov.graph(), gov.login()),
            (
                "https://management.usgovcloudapi.net",
                "https://graph.microsoft.us",
                "https://login.microsoftonline.us"
            )
        );
        let cn = Cloud::parse("azurechinacloud").unwrap();
        assert_eq!(
            (cn.arm(), cn.graph(), cn.login()),
            (
                "https://management.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://login.chinacloudapi.cn"
            )
        );
        assert_eq!(
            Cloud::default().resource(Api::Arm),
            "https://management.azure.com/"
        );
        assert_eq!(
            Cloud::default().resource(Api::Graph),
            "https://graph.microsoft.com"
        );
        assert!(Cloud::parse("mars")
            .unwrap_err()
            .to_string()
            .contains("\"mars\""));
    }
}
