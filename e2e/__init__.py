"""Browser tests of the pages against the split deployment (command, listener, query roles)."""
