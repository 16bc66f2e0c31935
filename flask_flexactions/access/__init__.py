"""Who may call: callers and their credentials, permissions, row scopes, browser origins."""
