"""Tests of the transports package: wire parsers in memory, transports against real servers."""
