"""The runtime wires adapters, core and plugins: consumer thread, reactor, executor."""
