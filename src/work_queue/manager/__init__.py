"""I/O shell of the manager library: sockets, files, logs around the pure core."""
