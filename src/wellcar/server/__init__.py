"""The Wellcar update server: Omaha endpoint, fleet model, rollout policy, REST API."""
