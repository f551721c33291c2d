"""Plain helpers for the tests (not fixtures, not collected): seeding, producing, reading."""
