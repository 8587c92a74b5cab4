"""The web portal: accounts and sessions, the web chat, signed links (photo pages live here too)."""
