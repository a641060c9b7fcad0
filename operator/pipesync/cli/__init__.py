"""The `pipesync` command line: thin commands over the api, engine and runtime layers."""
