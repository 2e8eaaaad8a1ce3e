"""Training scripts of the bundled model zoo (need Debian's data packages; see README)."""
