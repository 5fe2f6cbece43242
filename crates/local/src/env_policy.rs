//! The child's environment under `envPolicy`, built the way codex's own exec
//! server builds it, from the server's own environment, in this order:
//! 1. start from all of it, the core variables, or nothing (`inherit`);
//! 2. unless `ignoreDefaultExcludes`, drop names matching `*KEY*`,
//!    `*SECRET*` or `*TOKEN*`;
//! 3. drop names matching an `exclude` pattern;
//! 4. insert `set`;
//! 5. if `includeOnly` is not empty, keep only names matching one of it;
//! 6. lay the request's `env` on top.
//!
//! Patterns are codex's: `*` matches any run of characters, `?` exactly one,
//! nothing else is special, and case is ignored (the `wildmatch` crate,
//! which codex uses too). Without `envPolicy`, `env` is the whole
//! environment, as in the seed protocol.

use std::collections::HashMap;

use execd_protocol::env_policy::{EnvInherit, EnvPolicy};
use wildmatch::WildMatchPattern;

/// Inherited under `inherit: "core"` (codex's list for Unix).
pub const CORE_VARIABLES: &[&str] = &[
    "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME", "PATH", "SHELL", "TEMP", "TMP", "TMPDIR",
    "USER",
];

/// Dropped unless `ignoreDefaultExcludes`.
pub const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

type Pattern = WildMatchPattern<'*', '?'>;

fn patterns<S: AsRef<str>>(sources: &[S]) -> Vec<Pattern> {
    sources
        .iter()
        .map(|source| Pattern::new_case_insensitive(source.as_ref()))
        .collect()
}

fn matches_any(name: &str, patterns: &[Pattern]) -> bool {
    patterns.iter().any(|pattern| pattern.matches(name))
}

/// The environment `policy` builds from `server_env`, with `env` on top.
pub fn build_env(
    policy: &EnvPolicy,
    server_env: impl IntoIterator<Item = (String, String)>,
    env: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut built: HashMap<String, String> = match policy.inherit {
        EnvInherit::All => server_env.into_iter().collect(),
        EnvInherit::None => HashMap::new(),
        EnvInherit::Core => server_env
            .into_iter()
            .filter(|(name, _)| CORE_VARIABLES.contains(&name.as_str()))
            .collect(),
    };
    if !policy.ignore_default_excludes {
        let defaults = patterns(DEFAULT_EXCLUDES);
        built.retain(|name, _| !matches_any(name, &defaults));
    }
    if !policy.exclude.is_empty() {
        let exclude = patterns(&policy.exclude);
        built.retain(|name, _| !matches_any(name, &exclude));
    }
    built.extend(policy.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !policy.include_only.is_empty() {
        let include = patterns(&policy.include_only);
        built.retain(|name, _| matches_any(name, &include));
    }
    built.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    built
}

/// The child's environment for a start: `env` alone without a policy,
/// otherwise the policy over this process's environment (variables whose
/// name or value is not UTF-8 are left out), then `env`.
pub fn child_env(
    policy: Option<&EnvPolicy>,
    env: &HashMap<String, String>,
) -> HashMap<String, String> {
    match policy {
        None => env.clone(),
        Some(policy) => build_env(
            policy,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            env,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Vec<(String, String)> {
        [
            ("HOME", "/root"),
            ("PATH", "/usr/bin"),
            ("SHELL", "/bin/bash"),
            ("LANG", "C.UTF-8"),
            ("TERM", "xterm"),
            ("OPENAI_API_KEY", "k"),
            ("my_secret_thing", "s"),
            ("GITHUB_TOKEN", "t"),
            ("CODEX_VERSION", "1"),
            ("CODEX_HOME", "/c"),
            ("AB", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn names(env: &HashMap<String, String>) -> Vec<&str> {
        let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn policy(inherit: EnvInherit, ignore_default_excludes: bool) -> EnvPolicy {
        EnvPolicy {
            inherit,
            ignore_default_excludes,
            ..EnvPolicy::default()
        }
    }

    #[test]
    fn inherit_all_keeps_everything_when_default_excludes_are_ignored() {
        let env = build_env(&policy(EnvInherit::All, true), server(), &HashMap::new());
        assert_eq!(env.len(), server().len());
        assert_eq!(env["OPENAI_API_KEY"], "k");
    }

    #[test]
    fn inherit_core_keeps_only_core_variables() {
        let env = build_env(&policy(EnvInherit::Core, true), server(), &HashMap::new());
        assert_eq!(names(&env), vec!["HOME", "LANG", "PATH", "SHELL"]);
    }

    #[test]
    fn inherit_none_starts_empty() {
        let env = build_env(&policy(EnvInherit::None, true), server(), &HashMap::new());
        assert!(env.is_empty());
    }

    #[test]
    fn default_excludes_drop_keys_secrets_and_tokens_in_any_case() {
        let env = build_env(&policy(EnvInherit::All, false), server(), &HashMap::new());
        assert!(!env.contains_key("OPENAI_API_KEY"));
        assert!(!env.contains_key("my_secret_thing"));
        assert!(!env.contains_key("GITHUB_TOKEN"));
        assert!(env.contains_key("HOME") && env.contains_key("TERM"));
    }

    #[test]
    fn exclude_patterns_match_like_codex() {
        let mut p = policy(EnvInherit::All, true);
        // Exact names, `*` runs, `?` single characters, any case.
        p.exclude = vec!["codex_version".into(), "TER*".into(), "A?".into()];
        let env = build_env(&p, server(), &HashMap::new());
        assert!(!env.contains_key("CODEX_VERSION"));
        assert!(!env.contains_key("TERM"));
        assert!(!env.contains_key("AB"));
        assert!(env.contains_key("CODEX_HOME"));
        // `?` is exactly one character and `[` is not special.
        p.exclude = vec!["A???".into(), "[AB]".into()];
        let env = build_env(&p, server(), &HashMap::new());
        assert!(env.contains_key("AB"));
    }

    #[test]
    fn set_is_applied_after_excludes() {
        let mut p = policy(EnvInherit::All, false);
        p.set = HashMap::from([
            ("MY_TOKEN".to_string(), "kept".to_string()),
            ("HOME".to_string(), "/h".to_string()),
        ]);
        let env = build_env(&p, server(), &HashMap::new());
        assert_eq!(env["MY_TOKEN"], "kept");
        assert_eq!(env["HOME"], "/h");
    }

    #[test]
    fn include_only_filters_last_set_included() {
        let mut p = policy(EnvInherit::All, true);
        p.set = HashMap::from([("EXTRA".to_string(), "x".to_string())]);
        p.include_only = vec!["path".into(), "HO*".into()];
        let env = build_env(&p, server(), &HashMap::new());
        assert_eq!(names(&env), vec!["HOME", "PATH"]);
    }

    #[test]
    fn env_goes_on_top_of_everything() {
        let mut p = policy(EnvInherit::None, false);
        p.include_only = vec!["NOTHING".into()];
        let env = HashMap::from([
            ("TERM".to_string(), "dumb".to_string()),
            ("API_KEY".to_string(), "given".to_string()),
        ]);
        let built = build_env(&p, server(), &env);
        assert_eq!(built, env);
        // And it overrides an inherited value.
        let built = build_env(&policy(EnvInherit::All, true), server(), &env);
        assert_eq!(built["TERM"], "dumb");
    }

    #[test]
    fn without_a_policy_env_is_the_whole_environment() {
        let env = HashMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(child_env(None, &env), env);
        // With one, the server's own environment comes in (PATH is set for
        // any test run).
        let built = child_env(Some(&policy(EnvInherit::All, true)), &env);
        assert_eq!(built["A"], "1");
        assert!(built.contains_key("PATH"));
    }
}
