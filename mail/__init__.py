"""Mail channel: parsing, loop detection and threading (this package) plus the transports."""
