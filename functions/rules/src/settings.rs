//! The rule settings and their defaults from the rules page.

use crate::result::ScanSettings;

/// Required tag keys when none are configured.
pub const DEFAULT_REQUIRED_TAGS: [&str; 3] = ["Environment", "Owner", "CostCenter"];

/// Ports that must not be open to the world when none are configured.
pub const DEFAULT_RESTRICTED_PORTS: [u16; 16] = [
    20, 21, 22, 23, 25, 445, 1433, 1521, 3306, 3389, 5432, 5900, 6379, 9200, 11211, 27017,
];

/// Tag key that exempts an instance when none is configured.
pub const DEFAULT_EXEMPT_TAG_KEY: &str = "ComplianceExempt";

impl Default for ScanSettings {
    fn default() -> Self {
        ScanSettings {
            required_tags: DEFAULT_REQUIRED_TAGS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            restricted_ports: DEFAULT_RESTRICTED_PORTS.to_vec(),
            exempt_tag_key: DEFAULT_EXEMPT_TAG_KEY.to_string(),
        }
    }
}

impl ScanSettings {
    /// The settings in canonical form: blank and duplicate tag keys dropped (first one kept, so the
    /// configured order is the order of `missing_tags`), ports sorted and deduplicated.
    pub fn normalized(mut self) -> Self {
        let mut seen = std::collections::HashSet::new();
        self.required_tags = self
            .required_tags
            .into_iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty() && seen.insert(k.clone()))
            .collect();
        self.restricted_ports.sort_unstable();
        self.restricted_ports.dedup();
        self.exempt_tag_key = self.exempt_tag_key.trim().to_string();
        self
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
        }
        .normalized();
        assert_eq!(s.required_tags, ["Owner", "Team"]);
        assert_eq!(s.restricted_ports, [22, 3389]);
        assert_eq!(s.exempt_tag_key, "Skip");
    }
}
