"""rpcdaemon: keeps Neutron DHCP and L3 services available when network nodes fail."""

__version__ = "2.0.0.dev0"
