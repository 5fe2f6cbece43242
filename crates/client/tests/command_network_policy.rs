//! `Command::network_policy` on both backends: the policy lands in the
//! start parameters, and it reaches the backend (which refuses a network
//! policy without a sandbox, naming `networkPolicy`).

use execd_client::Environment;
use execd_protocol::network::{NetworkPolicy, NetworkRule, NetworkVerdict};
use execd_test_support::{both_backends, Backend, RUN_TIMEOUT};

async fn the_policy_goes_with_the_start(env: Environment) {
    let policy = NetworkPolicy::new(vec![NetworkRule {
        host: "example.com".into(),
        port: Some(443),
        decision: NetworkVerdict::Allow,
    }]);
    let mut command = env.command("true");
    command.network_policy(policy.clone());
    assert_eq!(command.params().network_policy.as_ref(), Some(&policy));
    // No sandbox: the backend must see the policy to refuse it.
    let result = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .expect("answered in time");
    let Err(err) = result else {
        panic!("a network policy without a sandbox started");
    };
    assert!(
        err.to_string().contains("networkPolicy needs a sandbox"),
        "{err}"
    );
}

both_backends!(
    #[tokio::test]
    Backend::run:
    the_policy_goes_with_the_start,
);
