"""Fault-injection benchmark: driver kills, worker kills, malformed configs, a 2-node cluster."""
