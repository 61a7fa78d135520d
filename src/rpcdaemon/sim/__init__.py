"""A simulated Neutron cloud for the demo, tests and benchmarks. The daemon never imports it."""
