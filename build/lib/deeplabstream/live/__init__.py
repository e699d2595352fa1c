"""The live path: the processes of a session, the session that runs them, self-tests."""
