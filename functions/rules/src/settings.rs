//! The rule settings and their defaults from the rules page.

use crate::result::ScanSettings;

// The defaults are part of the provider's contract with the functions, so they live there.
pub use crate::contract::{
    DEFAULT_EXEMPT_TAG_KEY, DEFAULT_REQUIRED_TAGS, DEFAULT_RESTRICTED_PORTS,
};

impl Default for ScanSettings {
    fn default() -> Self {
        ScanSettings {
            required_tags: DEFAULT_REQUIRED_TAGS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            restricted_ports: DEFAULT_RESTRICTED_PORTS.to_vec(),
            exempt_tag_key: DEFAULT_EXEMPT_TAG_KEY.to_string(),
            exemptions: Vec::new(),
        }
    }
}

impl ScanSettings {
    /// The settings as a scan applies them: empty and duplicate tag keys dropped (the first one
    /// kept, so the configured order is the order of `missing_tags`), ports sorted and
    /// deduplicated. Keys are otherwise kept as given: EC2 allows surrounding spaces in a key.
    /// Exemptions are kept as configured: the result records them so.
    pub fn canonical(mut self) -> Self {
        let mut seen = std::collections::HashSet::new();
        self.required_tags
            .retain(|k| !k.is_empty() && seen.insert(k.clone()));
        self.restricted_ports.sort_unstable();
        self.restricted_ports.dedup();
        self
    }

    /// [`canonical`](Self::canonical) after trimming every key, for settings typed by hand:
    /// blank keys are dropped too.
    pub fn normalized(mut self) -> Self {
        self.required_tags = self
            .required_tags
            .into_iter()
            .map(|k| k.trim().to_string())
            .collect();
        self.exempt_tag_key = self.exempt_tag_key.trim().to_string();
        self.canonical()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_rules_page() {
        let s = ScanSettings::default();
        assert_eq!(s.required_tags, ["Environment", "Owner", "CostCenter"]);
        assert_eq!(s.exempt_tag_key, "ComplianceExempt");
        assert_eq!(s.restricted_ports.len(), 16);
        assert!(s.restricted_ports.contains(&22) && s.restricted_ports.contains(&27017));
    }

    #[test]
    fn normalized_drops_blanks_and_duplicates_and_sorts_ports() {
        let s = ScanSettings {
            required_tags: vec!["Owner".into(), " ".into(), "Team".into(), "Owner".into()],
            restricted_ports: vec![3389, 22, 22],
            exempt_tag_key: " Skip ".into(),
            exemptions: Vec::new(),
        }
        .normalized();
        assert_eq!(s.required_tags, ["Owner", "Team"]);
        assert_eq!(s.restricted_ports, [22, 3389]);
        assert_eq!(s.exempt_tag_key, "Skip");
    }

    #[test]
    fn canonical_keeps_keys_as_given() {
        let s = ScanSettings {
            required_tags: vec![" Owner".into(), "".into(), "Team".into(), " Owner".into()],
            restricted_ports: vec![3389, 22, 22],
            exempt_tag_key: " Skip ".into(),
            exemptions: Vec::new(),
        }
        .canonical();
        assert_eq!(s.required_tags, [" Owner", "Team"]);
        assert_eq!(s.restricted_ports, [22, 3389]);
        assert_eq!(s.exempt_tag_key, " Skip ");
    }
}
