"""Local fake HTTP servers that speak external APIs; the real client libraries talk to them."""
