"""Budget alerts: when a key's or team's spend reaches a threshold of a limit, one signed webhook event."""
