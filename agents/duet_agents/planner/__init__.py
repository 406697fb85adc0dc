"""Requirements in, a validated and costed platform design out."""
