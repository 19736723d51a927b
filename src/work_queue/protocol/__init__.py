"""Sans-IO Work Queue protocol 11: bytes in, message objects out; message objects in, bytes out.

Nothing in this package touches sockets, clocks or files.
"""
