"""Code shared by every ringstack server: HTTP plumbing, config, logging,
timestamps, metrics. One place for each, never copied into a server."""
