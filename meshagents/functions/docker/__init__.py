"""Docker functions: list, exec (whitelisted), logs, enroll (light and deep mode)."""
