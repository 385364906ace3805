"""Browser tests of the fleet console: Playwright driving Debian's chromium."""
