"""The doors: the Messages URL, the console, the command line and the test client."""
