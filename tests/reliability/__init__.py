"""The reliability suite: faults, bad input, redelivery and scale-out (issue 13)."""
