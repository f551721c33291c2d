"""Who may do what: the roles\x27 grants applied to Kafka (ACLs) from `ops.runtime.roles`."""
