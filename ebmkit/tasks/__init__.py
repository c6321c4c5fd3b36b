"""What the commands do beyond sampling, as library functions: each takes a loaded method and tensors and
returns tensors and a report, so the CLI only parses, loads, calls one of these, writes and prints."""
