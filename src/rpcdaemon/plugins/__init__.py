"""Plugins: Dump (observer) and the pure L3Agent / DHCPAgent planners."""
